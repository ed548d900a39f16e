/* Notifications: filters, the hub (notifier list, bounded queue, dispatch
 * thread), the built-in log-line notifier and the two event formatters.
 *
 * The hub has one mutex, `lock`, over the queue and the notifier list. It is
 * never held while a notifier runs (nor while a filter's regexes run), so
 * pm__ahub_post, which the engine calls during evaluation, only ever waits
 * for other short holds of it.
 *
 * Counters:
 *   QUEUED   events accepted by pm__ahub_post (at least one notifier
 *            registered), one per event whatever the number of notifiers;
 *   DROPPED  queued events discarded without being delivered: the oldest one
 *            when the queue is full, and (manual mode) those still queued
 *            when the hub is freed;
 *   SENT / FAILED  notifier calls that returned 0 / non-0; an event whose
 *            filter rejects a notifier makes no call for it.
 * So once the queue is empty, QUEUED = delivered + DROPPED, where each
 * delivered event made one SENT or FAILED call per notifier that passed it;
 * with one notifier that passes everything, QUEUED = SENT + FAILED + DROPPED.
 *
 * Delivery: with a dispatch thread (started by the first pm__ahub_add), the
 * thread pops events in order and hands each to every notifier in
 * registration order that was registered when the event was posted (one
 * added later starts with later events); pm__ahub_free lets it deliver what is queued, then
 * joins it. Without one (manual mode), pm__ahub_deliver does the same on the
 * caller's thread, one caller at a time, and pm__ahub_free discards what is
 * still queued (counted as DROPPED): a host that wants it delivered calls
 * pm__ahub_deliver first. Either way a notifier is never called by two
 * threads at once. */
#include "internal/alert_internal.h"
#include "internal/format_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ filters */

pm_status_t pm_alert_filter_new(pm_alert_filter_t **out)
{
    if (!out) return PM_EINVAL;
    pm_alert_filter_t *f = pm__calloc(&pm__default_alloc, sizeof *f);
    *out = f;
    if (!f) return PM_ENOMEM;
    f->min_severity = PM_SEVERITY_INFO;
    f->send_resolved = true;
    return PM_OK;
}

void pm_alert_filter_free(pm_alert_filter_t *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->nm; i++) pm__amatcher_fini(&f->m[i]);
    pm__free(&pm__default_alloc, f->m);
    for (size_t i = 0; i < f->nrules; i++) pm__free(&pm__default_alloc, f->rules[i]);
    pm__free(&pm__default_alloc, f->rules);
    pm__free(&pm__default_alloc, f);
}

pm_status_t pm_alert_filter_set_min_severity(pm_alert_filter_t *f, pm_severity_t s)
{
    if (!f || s < PM_SEVERITY_INFO || s > PM_SEVERITY_CRITICAL) return PM_EINVAL;
    f->min_severity = s;
    return PM_OK;
}

pm_status_t pm_alert_filter_set_send_resolved(pm_alert_filter_t *f, int enabled)
{
    if (!f) return PM_EINVAL;
    f->send_resolved = enabled != 0;
    return PM_OK;
}

pm_status_t pm_alert_filter_add_matcher(pm_alert_filter_t *f, const char *label, const char *op,
                                        const char *value)
{
    pm__match_op mop;
    if (!f || !label || !value || !pm__match_op_parse(op, &mop)) return PM_EINVAL;
    /* alertname and severity are reserved for rules' own labels, but they
     * are labels of every event, so a filter may match on them. */
    if (!pm__valid_label_name(label) && strcmp(label, "alertname") != 0 &&
        strcmp(label, "severity") != 0)
        return PM_EBADLABEL;
    if (f->nm >= SIZE_MAX / sizeof(pm__amatcher) - 1) return PM_ENOMEM;
    pm__amatcher *m = pm__alloc(&pm__default_alloc, (f->nm + 1) * sizeof *m);
    if (!m) return PM_ENOMEM;
    /* No err argument in the public call: a bad regex is just PM_EPARSE. */
    pm_status_t st = pm__amatcher_init(&m[f->nm], label, mop, value, PM__SRCPOS_START, NULL);
    if (st != PM_OK) {
        pm__free(&pm__default_alloc, m);
        return st;
    }
    /* Moving a compiled regex_t is fine: glibc and musl keep the compiled
     * program behind a pointer inside it, not in it. */
    if (f->nm) memcpy(m, f->m, f->nm * sizeof *m);
    pm__free(&pm__default_alloc, f->m);
    f->m = m;
    f->nm++;
    return PM_OK;
}

pm_status_t pm_alert_filter_add_rule(pm_alert_filter_t *f, const char *rule)
{
    if (!f || !rule) return PM_EINVAL;
    for (size_t i = 0; i < f->nrules; i++)
        if (!strcmp(f->rules[i], rule)) return PM_OK; /* already allowed */
    if (f->nrules >= SIZE_MAX / sizeof(char *) - 1) return PM_ENOMEM;
    char **r = pm__alloc(&pm__default_alloc, (f->nrules + 1) * sizeof *r);
    char *copy = pm__strdup(&pm__default_alloc, rule);
    if (!r || !copy) {
        pm__free(&pm__default_alloc, r);
        pm__free(&pm__default_alloc, copy);
        return PM_ENOMEM;
    }
    if (f->nrules) memcpy(r, f->rules, f->nrules * sizeof *r);
    r[f->nrules] = copy;
    pm__free(&pm__default_alloc, f->rules);
    f->rules = r;
    f->nrules++;
    return PM_OK;
}

/* The value a matcher sees for `name`: the label, or for the two labels
 * every engine event carries, the event's own fields when an event was
 * built without them. */
static const char *filter_label(const pm_alert_event_t *ev, const char *name)
{
    const char *v = pm_alert_event_label(ev, name);
    if (v) return v;
    if (!strcmp(name, "alertname")) return ev->rule;
    if (!strcmp(name, "severity")) return pm_severity_name(ev->severity);
    return NULL;
}

int pm_alert_filter_match(const pm_alert_filter_t *f, const pm_alert_event_t *ev)
{
    if (!ev) return 0;
    if (!f) return 1;
    if (ev->severity < f->min_severity) return 0;
    if (ev->state == PM_ALERT_RESOLVED && !f->send_resolved) return 0;
    if (f->nrules) {
        size_t i = 0;
        while (i < f->nrules && strcmp(f->rules[i], ev->rule) != 0) i++;
        if (i == f->nrules) return 0;
    }
    for (size_t i = 0; i < f->nm; i++)
        if (!pm__amatcher_match(&f->m[i], filter_label(ev, f->m[i].name))) return 0;
    return 1;
}

pm_status_t pm__afilter_copy(const pm_alert_filter_t *f, pm_alert_filter_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!f) return PM_OK; /* no filter: everything passes */
    pm_alert_filter_t *c;
    pm_status_t st = pm_alert_filter_new(&c);
    if (st != PM_OK) return st;
    c->min_severity = f->min_severity;
    c->send_resolved = f->send_resolved;
    if (f->nm && !(c->m = pm__calloc(&pm__default_alloc, f->nm * sizeof *c->m))) st = PM_ENOMEM;
    for (size_t i = 0; st == PM_OK && i < f->nm; i++) {
        st = pm__amatcher_copy(&c->m[i], &f->m[i]);
        if (st == PM_OK) c->nm++;
    }
    if (st == PM_OK && f->nrules &&
        !(c->rules = pm__calloc(&pm__default_alloc, f->nrules * sizeof *c->rules)))
        st = PM_ENOMEM;
    for (size_t i = 0; st == PM_OK && i < f->nrules; i++) {
        if (!(c->rules[i] = pm__strdup(&pm__default_alloc, f->rules[i])))
            st = PM_ENOMEM;
        else
            c->nrules++;
    }
    if (st != PM_OK) {
        pm_alert_filter_free(c);
        return st;
    }
    *out = c;
    return PM_OK;
}

/* ------------------------------------------------------------ the hub */

typedef struct hub_notifier {
    struct hub_notifier *next;
    char *name;
    pm_alert_filter_t *filter; /* NULL: everything */
    pm_alert_notify_fn fn;
    void *user;
    pm_release_fn release;
    uint64_t after; /* gets the events posted after this sequence number */
    unsigned busy;  /* calls in progress (under lock) */
    bool removed;   /* being removed: no new calls, invisible to look-ups */
} hub_notifier;

/* A queued event reference and its post sequence number. */
struct qent {
    pm_alert_event_t *ev;
    uint64_t seq;
};

struct pm__ahub {
    pm_alloc_t a;
    pthread_mutex_t lock;  /* queue, notifier list, busy flags */
    pthread_cond_t work;   /* queue not empty, or stop */
    pthread_cond_t idle;   /* a call of a removed notifier returned */
    pthread_mutex_t dlock; /* manual mode: one deliverer at a time */
    struct qent *q;        /* ring of event references */
    uint64_t seq;          /* posts so far */
    size_t qcap;           /* allocated slots, grown on demand up to cap */
    size_t cap;            /* the configured bound */
    size_t head, n;
    hub_notifier *notifiers;
    size_t live; /* notifiers not being removed */
    bool want_thread, thread_started, stop;
    pthread_t thread;
    _Atomic uint64_t queued, sent, failed, dropped;
};

/* Depth of notifier calls on this thread (a notifier of one hub may run
 * inside pm__ahub_deliver called from a notifier of another: refused, but
 * counted right). */
static PM_TLS unsigned in_notifier;

bool pm__ahub_in_notifier(void) { return in_notifier != 0; }

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

pm_status_t pm__ahub_new(const pm_alloc_t *a, size_t queue_cap, bool dispatch_thread,
                         pm__ahub **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (queue_cap == 0 || queue_cap > SIZE_MAX / sizeof(struct qent)) return PM_EINVAL;
    if (!a) a = &pm__default_alloc;
    pm__ahub *h = pm__calloc(a, sizeof *h);
    if (!h) return PM_ENOMEM;
    h->a = *a;
    h->cap = queue_cap;
    h->want_thread = dispatch_thread;
    atomic_init(&h->queued, 0);
    atomic_init(&h->sent, 0);
    atomic_init(&h->failed, 0);
    atomic_init(&h->dropped, 0);
    /* CLOCK_MONOTONIC is irrelevant here: the hub never waits with a timeout. */
    bool m1 = pthread_mutex_init(&h->lock, NULL) == 0;
    bool m2 = m1 && pthread_mutex_init(&h->dlock, NULL) == 0;
    bool c1 = m2 && pthread_cond_init(&h->work, NULL) == 0;
    bool c2 = c1 && pthread_cond_init(&h->idle, NULL) == 0;
    if (!c2) {
        if (c1) pthread_cond_destroy(&h->work);
        if (m2) pthread_mutex_destroy(&h->dlock);
        if (m1) pthread_mutex_destroy(&h->lock);
        pm__free(a, h);
        return PM_ENOMEM;
    }
    *out = h;
    return PM_OK;
}

/* Under lock. The oldest event (NULL when empty) and its sequence number. */
static pm_alert_event_t *q_pop(pm__ahub *h, uint64_t *seq)
{
    if (h->n == 0) return NULL;
    struct qent e = h->q[h->head];
    h->q[h->head].ev = NULL;
    h->head = (h->head + 1) % h->qcap;
    h->n--;
    if (seq) *seq = e.seq;
    return e.ev;
}

/* Under lock: doubles the ring up to cap, unwrapping it. False when at cap
 * or out of memory (the caller then drops the oldest, as when full). */
static bool q_grow(pm__ahub *h)
{
    if (h->qcap >= h->cap) return false;
    size_t ncap = h->qcap ? h->qcap * 2 : 64;
    if (ncap > h->cap || ncap < h->qcap) ncap = h->cap;
    struct qent *nq = pm__alloc(&h->a, ncap * sizeof *nq);
    if (!nq) return false;
    for (size_t i = 0; i < h->n; i++) nq[i] = h->q[(h->head + i) % h->qcap];
    pm__free(&h->a, h->q);
    h->q = nq;
    h->qcap = ncap;
    h->head = 0;
    return true;
}

void pm__ahub_post(pm__ahub *h, pm_alert_event_t *ev)
{
    if (!h || !ev) return;
    pm_alert_event_t *old = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->live == 0) {
        pthread_mutex_unlock(&h->lock);
        return;
    }
    if (h->n == h->qcap && !q_grow(h)) {
        /* Full (or no memory to grow): the oldest goes. With no ring at all
         * (its first allocation failed) the new event itself is dropped. */
        count(&h->queued, 1);
        count(&h->dropped, 1);
        if (h->n == 0) {
            pthread_mutex_unlock(&h->lock);
            return;
        }
        old = q_pop(h, NULL);
    } else {
        count(&h->queued, 1);
    }
    h->q[(h->head + h->n) % h->qcap] = (struct qent){pm__aevent_ref(ev), ++h->seq};
    h->n++;
    if (h->thread_started) pthread_cond_signal(&h->work);
    pthread_mutex_unlock(&h->lock);
    /* Freeing an event can take a while; not under the lock. */
    pm__aevent_unref(old);
}

/* Under lock (dropped around each call): hands ev, posted as number `seq`,
 * to every notifier registered before it was posted whose filter passes it
 * (so a notifier added during a delivery, or re-added under the name of one
 * just removed, never sees an event twice). A notifier being removed gets no
 * new call; one removed
 * during its call stays linked until the call returns (pm__ahub_remove
 * waits for busy == 0 before unlinking), so its `next` is still valid when
 * the lock is retaken. */
static void deliver_one(pm__ahub *h, pm_alert_event_t *ev, uint64_t seq)
{
    hub_notifier *nt = h->notifiers;
    while (nt) {
        if (nt->removed || nt->after >= seq) {
            nt = nt->next;
            continue;
        }
        nt->busy++;
        pthread_mutex_unlock(&h->lock);
        int called = 0, rc = 0;
        if (pm_alert_filter_match(nt->filter, ev)) {
            called = 1;
            in_notifier++;
            rc = nt->fn(ev, nt->user);
            in_notifier--;
        }
        pthread_mutex_lock(&h->lock);
        if (called) count(rc == 0 ? &h->sent : &h->failed, 1);
        hub_notifier *next = nt->next;
        if (--nt->busy == 0 && nt->removed) pthread_cond_broadcast(&h->idle);
        nt = next;
    }
}

static void *dispatch_main(void *arg)
{
    pm__ahub *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (h->n == 0 && !h->stop) pthread_cond_wait(&h->work, &h->lock);
        uint64_t seq = 0;
        pm_alert_event_t *ev = q_pop(h, &seq);
        if (!ev) break; /* stopping, and everything queued was delivered */
        deliver_one(h, ev, seq);
        pthread_mutex_unlock(&h->lock);
        pm__aevent_unref(ev);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static bool valid_notifier_name(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= PM_MAX_LABEL_VALUE && pm__valid_utf8(name, n);
}

pm_status_t pm__ahub_add(pm__ahub *h, const char *name, const pm_alert_filter_t *filter,
                         pm_alert_notify_fn fn, void *user, pm_release_fn release)
{
    if (!h || !name || !fn || !valid_notifier_name(name)) return PM_EINVAL;
    hub_notifier *nt = pm__calloc(&h->a, sizeof *nt);
    if (!nt) return PM_ENOMEM;
    pm_status_t st = pm__afilter_copy(filter, &nt->filter);
    if (st == PM_OK && !(nt->name = pm__strdup(&h->a, name))) st = PM_ENOMEM;
    if (st != PM_OK) goto fail;
    nt->fn = fn;
    nt->user = user;
    nt->release = release;

    pthread_mutex_lock(&h->lock);
    hub_notifier **tail = &h->notifiers;
    for (; *tail; tail = &(*tail)->next)
        if (!(*tail)->removed && !strcmp((*tail)->name, name)) st = PM_EEXIST;
    if (st == PM_OK && h->want_thread && !h->thread_started) {
        if (pthread_create(&h->thread, NULL, dispatch_main, h) == 0)
            h->thread_started = true;
        else
            st = PM_ETHREAD;
    }
    if (st == PM_OK) {
        nt->after = h->seq;
        *tail = nt;
        h->live++;
    }
    pthread_mutex_unlock(&h->lock);
    if (st == PM_OK) return PM_OK;
fail:
    /* The caller keeps `user`: no release on error. */
    pm_alert_filter_free(nt->filter);
    pm__free(&h->a, nt->name);
    pm__free(&h->a, nt);
    return st;
}

static void notifier_free(pm__ahub *h, hub_notifier *nt)
{
    if (nt->release) nt->release(nt->user);
    pm_alert_filter_free(nt->filter);
    pm__free(&h->a, nt->name);
    pm__free(&h->a, nt);
}

pm_status_t pm__ahub_remove(pm__ahub *h, const char *name)
{
    if (!h || !name) return PM_EINVAL;
    /* Waiting for a call in progress from inside a call could wait for
     * itself; a notifier of another hub could wait in a cycle. */
    if (pm__ahub_in_notifier()) return PM_ESTATE;
    pthread_mutex_lock(&h->lock);
    hub_notifier *nt = h->notifiers;
    while (nt && (nt->removed || strcmp(nt->name, name) != 0)) nt = nt->next;
    if (!nt) {
        pthread_mutex_unlock(&h->lock);
        return PM_ENOENT;
    }
    nt->removed = true;
    h->live--;
    while (nt->busy) pthread_cond_wait(&h->idle, &h->lock);
    for (hub_notifier **p = &h->notifiers; *p; p = &(*p)->next)
        if (*p == nt) {
            *p = nt->next;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    notifier_free(h, nt);
    return PM_OK;
}

pm_status_t pm__ahub_deliver(pm__ahub *h, size_t max, size_t *delivered)
{
    if (delivered) *delivered = 0;
    if (!h) return PM_EINVAL;
    if (h->want_thread || pm__ahub_in_notifier()) return PM_ESTATE;
    pthread_mutex_lock(&h->dlock);
    pthread_mutex_lock(&h->lock);
    /* "All" means what is queued now, so a host posting from another thread
     * cannot keep this call going forever. */
    if (max == 0 || max > h->n) max = h->n;
    size_t done = 0;
    pm_alert_event_t *ev;
    uint64_t seq = 0;
    while (done < max && (ev = q_pop(h, &seq)) != NULL) {
        deliver_one(h, ev, seq);
        pthread_mutex_unlock(&h->lock);
        pm__aevent_unref(ev);
        done++;
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&h->dlock);
    if (delivered) *delivered = done;
    return PM_OK;
}

void pm__ahub_free(pm__ahub *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    bool joined = h->thread_started;
    pthread_cond_broadcast(&h->work);
    pthread_mutex_unlock(&h->lock);
    /* The thread delivers everything queued before it sees `stop`. */
    if (joined) pthread_join(h->thread, NULL);
    /* Manual mode: what the host did not deliver is dropped. */
    pm_alert_event_t *ev;
    while ((ev = q_pop(h, NULL)) != NULL) {
        count(&h->dropped, 1);
        pm__aevent_unref(ev);
    }
    hub_notifier *nt = h->notifiers;
    h->notifiers = NULL;
    while (nt) {
        hub_notifier *next = nt->next;
        notifier_free(h, nt);
        nt = next;
    }
    pm__free(&h->a, h->q);
    pthread_cond_destroy(&h->idle);
    pthread_cond_destroy(&h->work);
    pthread_mutex_destroy(&h->dlock);
    pthread_mutex_destroy(&h->lock);
    pm_alloc_t a = h->a;
    pm__free(&a, h);
}

uint64_t pm__ahub_stat(const pm__ahub *h, pm_alert_stat_t which)
{
    if (!h) return 0;
    switch (which) {
    case PM_ALERT_STAT_NOTIFY_QUEUED:
        return atomic_load_explicit(&h->queued, memory_order_relaxed);
    case PM_ALERT_STAT_NOTIFY_SENT: return atomic_load_explicit(&h->sent, memory_order_relaxed);
    case PM_ALERT_STAT_NOTIFY_FAILED:
        return atomic_load_explicit(&h->failed, memory_order_relaxed);
    case PM_ALERT_STAT_NOTIFY_DROPPED:
        return atomic_load_explicit(&h->dropped, memory_order_relaxed);
    default: return 0;
    }
}

/* ------------------------------------------------------------ engine wrappers */

pm_status_t pm_alert_engine_add_notifier(pm_alert_engine_t *e, const char *name,
                                         const pm_alert_filter_t *filter, pm_alert_notify_fn fn,
                                         void *user, pm_release_fn release)
{
    if (!e || !name || !fn) return PM_EINVAL;
    pm__ahub *h = pm__aengine_hub(e);
    return h ? pm__ahub_add(h, name, filter, fn, user, release) : PM_EINVAL;
}

pm_status_t pm_alert_engine_remove_notifier(pm_alert_engine_t *e, const char *name)
{
    if (!e || !name) return PM_EINVAL;
    pm__ahub *h = pm__aengine_hub(e);
    return h ? pm__ahub_remove(h, name) : PM_EINVAL;
}

pm_status_t pm_alert_engine_deliver(pm_alert_engine_t *e, size_t max, size_t *delivered)
{
    if (delivered) *delivered = 0;
    if (!e) return PM_EINVAL;
    pm__ahub *h = pm__aengine_hub(e);
    return h ? pm__ahub_deliver(h, max, delivered) : PM_EINVAL;
}

/* The log notifier's user data is the caller's FILE. */
static int log_notify(const pm_alert_event_t *ev, void *user)
{
    FILE *f = user;
    pm_buf_t *b = NULL;
    if (pm_buf_new(&b) != PM_OK) return 1;
    int rc = 1;
    if (pm_alert_event_format_line(ev, b) == PM_OK &&
        fwrite(pm_buf_data(b), 1, pm_buf_len(b), f) == pm_buf_len(b) && fflush(f) == 0)
        rc = 0;
    pm_buf_free(b);
    return rc;
}

pm_status_t pm_alert_engine_add_log_notifier(pm_alert_engine_t *e, const char *name,
                                             const pm_alert_filter_t *filter, FILE *f)
{
    if (!e || !name || !f) return PM_EINVAL;
    return pm_alert_engine_add_notifier(e, name, filter, log_notify, f, NULL);
}

/* ------------------------------------------------------------ formatters */

#define RFC3339_MS_LEN 24u /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */

/* Unix ns as RFC 3339 UTC with milliseconds (truncated, as Go's .000 layout
 * does). int64 ns spans years 1677..2262, so the year always has 4 digits.
 * The calendar is computed here (days to civil date, proleptic Gregorian) so
 * no time-zone state of the C library is involved. */
static void fmt_rfc3339_ms(char out[RFC3339_MS_LEN + 1], int64_t ns)
{
    int64_t secs = ns / PM__NS_PER_S, rem = ns % PM__NS_PER_S;
    if (rem < 0) {
        rem += PM__NS_PER_S;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2));
    int field[7] = {year, month, day, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60),
                    (int)(rem / 1000000)};
    static const int width[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char sep[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *p = out;
    for (int i = 0; i < 7; i++) {
        for (int k = width[i] - 1, v = field[i]; k >= 0; k--, v /= 10) p[k] = (char)('0' + v % 10);
        p += width[i];
        *p++ = sep[i];
    }
    *p = '\0';
}

static void w_time(pm__writer_t *w, int64_t ns)
{
    char t[RFC3339_MS_LEN + 1];
    fmt_rfc3339_ms(t, ns);
    pm__w_bytes(w, t, RFC3339_MS_LEN);
}

static const char *state_upper(pm_alert_state_t s)
{
    switch (s) {
    case PM_ALERT_INACTIVE: return "INACTIVE";
    case PM_ALERT_PENDING: return "PENDING";
    case PM_ALERT_FIRING: return "FIRING";
    case PM_ALERT_RESOLVED: return "RESOLVED";
    }
    return "UNKNOWN";
}

static bool reserved_label(const char *name)
{
    return !strcmp(name, "alertname") || !strcmp(name, "severity");
}

pm_status_t pm_alert_event_format_line(const pm_alert_event_t *ev, pm_buf_t *out)
{
    if (!ev || !out) return PM_EINVAL;
    pm__writer_t w;
    pm_status_t st = pm__writer_init_buf(&w, out);
    if (st != PM_OK) return st;
    w_time(&w, ev->at);
    pm__w_char(&w, ' ');
    pm__w_str(&w, state_upper(ev->state));
    pm__w_char(&w, ' ');
    pm__w_str(&w, pm_severity_name(ev->severity));
    pm__w_char(&w, ' ');
    pm__w_str(&w, ev->rule);
    /* As in the exposition formats: no braces when no label is left. */
    bool open = false;
    for (size_t i = 0; i < ev->nlabels; i++) {
        if (reserved_label(ev->lname[i])) continue;
        pm__w_char(&w, open ? ',' : '{');
        open = true;
        pm__w_str(&w, ev->lname[i]);
        PM__W_LIT(&w, "=\"");
        pm__w_escaped_label(&w, ev->lvalue[i]);
        pm__w_char(&w, '"');
    }
    if (open) pm__w_char(&w, '}');
    PM__W_LIT(&w, " value=");
    pm__w_double(&w, ev->value);
    for (size_t i = 0; i < ev->nannots; i++) {
        pm__w_char(&w, ' ');
        pm__w_str(&w, ev->aname[i]);
        PM__W_LIT(&w, "=\"");
        pm__w_escaped_label(&w, ev->avalue[i]); /* LF -> \n keeps it one line */
        pm__w_char(&w, '"');
    }
    pm__w_char(&w, '\n');
    return pm__writer_finish(&w);
}

/* Writes {"k":"v",...} of n pairs. */
static void w_json_map(pm__writer_t *w, const char *const *k, const char *const *v, size_t n)
{
    pm__w_char(w, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) pm__w_char(w, ',');
        pm__w_json_string(w, k[i]);
        pm__w_char(w, ':');
        pm__w_json_string(w, v[i]);
    }
    pm__w_char(w, '}');
}

pm_status_t pm_alert_format_alertmanager(const pm_alert_event_t *const *evs, size_t n,
                                         const char *generator_url, pm_buf_t *out)
{
    if (!out || (n && !evs)) return PM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!evs[i]) return PM_EINVAL;
    pm__writer_t w;
    pm_status_t st = pm__writer_init_buf(&w, out);
    if (st != PM_OK) return st;
    pm__w_char(&w, '[');
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        const pm_alert_event_t *ev = evs[i];
        /* Alertmanager knows firing and resolved alerts only. */
        if (ev->state != PM_ALERT_FIRING && ev->state != PM_ALERT_RESOLVED) continue;
        if (!first) pm__w_char(&w, ',');
        first = false;
        PM__W_LIT(&w, "{\"labels\":");
        w_json_map(&w, ev->lname, ev->lvalue, ev->nlabels);
        PM__W_LIT(&w, ",\"annotations\":");
        w_json_map(&w, ev->aname, ev->avalue, ev->nannots);
        /* startsAt: when it fired; an instance resolved without ever firing
         * (or an event built without it) falls back to when it became
         * active, then to the event time. */
        int64_t starts = ev->starts_at != INT64_MIN   ? ev->starts_at
                         : ev->active_at != INT64_MIN ? ev->active_at
                                                      : ev->at;
        PM__W_LIT(&w, ",\"startsAt\":\"");
        w_time(&w, starts);
        pm__w_char(&w, '"');
        if (ev->state == PM_ALERT_RESOLVED) {
            PM__W_LIT(&w, ",\"endsAt\":\"");
            w_time(&w, ev->ends_at != INT64_MIN ? ev->ends_at : ev->at);
            pm__w_char(&w, '"');
        }
        if (generator_url) {
            PM__W_LIT(&w, ",\"generatorURL\":");
            pm__w_json_string(&w, generator_url);
        }
        pm__w_char(&w, '}');
    }
    pm__w_char(&w, ']');
    return pm__writer_finish(&w);
}
