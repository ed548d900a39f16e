/* StatsD and DogStatsD over UDP, aggregated on this side
 * (include/perfmetrics/push.h, doc/push-formats.md).
 *
 * StatsD has no notion of a cumulative counter: a "|c" line is an increase.
 * So the kind keeps, per series, what the previous export saw (a counter's
 * value, a histogram's count and sum) and sends the difference; a series
 * that did not move sends nothing for its counters. The table is rebuilt on
 * every export from the series present, so series that went away are
 * forgotten (one that comes back sends its whole value, as after a restart).
 *
 * The exporter sends itself: a connect()ed non-blocking UDP socket, lines
 * packed into datagrams of at most 1432 bytes (a 1500-byte MTU less IPv6 and
 * UDP headers and some room for tunnels, the usual StatsD client limit). A
 * send that fails (EAGAIN: the socket buffer is full; ECONNREFUSED: the ICMP
 * answer to an earlier datagram, nothing listens) drops that datagram and is
 * counted; nothing is retried and nothing waits. */
#include "internal/format_internal.h"
#include "internal/push_encode.h"
#include "internal/push_internal.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define PM__STATSD_DATAGRAM 1432u

/* ------------------------------------------------------------ previous values */

typedef struct pm__sd_ent {
    char *key; /* NULL: empty slot */
    size_t klen;
    uint64_t hash;
    double value; /* counter value, or histogram sum */
    uint64_t count;
    bool moved; /* old table: the key now belongs to the new one (the slot stays, for probing) */
} pm__sd_ent;

typedef struct pm__sd_table {
    pm__sd_ent *slot;
    size_t cap, n; /* cap a power of two, or 0 */
} pm__sd_table;

static uint64_t pm__sd_hash(const char *k, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * UINT64_C(0x100000001b3);
    return h;
}

static pm__sd_ent *pm__sd_find(pm__sd_table *t, const char *k, size_t n, uint64_t h)
{
    if (!t->cap) return NULL;
    for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        pm__sd_ent *e = &t->slot[i];
        if (!e->key) return e;
        if (e->hash == h && e->klen == n && memcmp(e->key, k, n) == 0) return e;
    }
}

static void pm__sd_table_free(pm__sd_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (!t->slot[i].moved) free(t->slot[i].key);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ state */

typedef struct pm__sd_state {
    int fd;
    pm_statsd_flavor_t flavor;
    pm__push_view_t view;
    pm__sd_table prev, cur;
    pm_buf_t *key, *line, *tags, *prefix; /* scratch texts, reused */
    char dgram[PM__STATSD_DATAGRAM];
    size_t dlen;
    pm_push *p;
} pm__sd_state;

static void pm__sd_fini(void *state)
{
    pm__sd_state *st = state;
    if (!st) return;
    if (st->fd >= 0) close(st->fd);
    pm__push_view_fini(&st->view);
    pm__sd_table_free(&st->prev);
    pm__sd_table_free(&st->cur);
    pm_buf_free(st->key);
    pm_buf_free(st->line);
    pm_buf_free(st->tags);
    pm_buf_free(st->prefix);
    free(st);
}

static void pm__sd_flush(pm__sd_state *st)
{
    if (!st->dlen) return;
    /* Each datagram is a payload: queued = sent + dropped, as for HTTP. */
    pm__push_count(st->p, PM_PUSH_STAT_QUEUED, 1);
    pm__push_count(st->p, PM_PUSH_STAT_ATTEMPTS, 1);
    ssize_t n = send(st->fd, st->dgram, st->dlen, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == (ssize_t)st->dlen) {
        pm__push_count(st->p, PM_PUSH_STAT_SENT, 1);
        pm__push_count(st->p, PM_PUSH_STAT_BYTES, st->dlen);
    } else {
        pm__push_count(st->p, PM_PUSH_STAT_FAILED, 1);
        pm__push_count(st->p, PM_PUSH_STAT_DROPPED, 1);
    }
    st->dlen = 0;
}

/* Adds the line in st->line to the datagram, sending the datagram first when
 * the line would not fit. A line longer than a datagram is dropped, counted. */
static void pm__sd_emit(pm__sd_state *st)
{
    size_t n = st->line->len;
    if (n > PM__STATSD_DATAGRAM) {
        pm__push_count(st->p, PM_PUSH_STAT_QUEUED, 1);
        pm__push_count(st->p, PM_PUSH_STAT_DROPPED, 1);
        return;
    }
    if (st->dlen && st->dlen + 1 + n > PM__STATSD_DATAGRAM) pm__sd_flush(st);
    if (st->dlen) st->dgram[st->dlen++] = '\n';
    memcpy(st->dgram + st->dlen, st->line->data, n);
    st->dlen += n;
}

/* ------------------------------------------------------------ text */

/* StatsD names and DogStatsD tags share a wire with ':', '|', '@', '#', ','
 * and newlines as separators: anything outside [A-Za-z0-9_-] (and '.' where
 * it is allowed) becomes '_'. */
static pm_status_t pm__sd_put_clean(pm_buf_t *b, const char *s, bool dot_ok)
{
    size_t n = strlen(s);
    pm_status_t st = pm__buf_reserve(b, b->len, n);
    if (st != PM_OK) return st;
    char *d = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (dot_ok && c == '.');
        d[i] = ok ? (char)c : '_';
    }
    b->len += n;
    b->data[b->len] = '\0';
    return PM_OK;
}

static pm_status_t pm__sd_put(pm_buf_t *b, const char *s, size_t n)
{
    pm_status_t st = pm__buf_reserve(b, b->len, n);
    if (st != PM_OK) return st;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PM_OK;
}

static pm_status_t pm__sd_put_tag(pm_buf_t *b, const char *k, const char *v)
{
    pm_status_t st = pm__sd_put(b, b->len ? "," : "|#", b->len ? 1 : 2);
    if (st == PM_OK) st = pm__sd_put_clean(b, k, true);
    if (st == PM_OK) st = pm__sd_put(b, ":", 1);
    if (st == PM_OK) st = pm__sd_put_clean(b, v, true);
    return st;
}

/* One line: <prefix><suffix>:<value>|<type><tags>. Plain StatsD reads a
 * gauge with a sign as a change, so a negative gauge is sent as a 0 first
 * and then the value. Non-finite values have no StatsD spelling: skipped. */
static pm_status_t pm__sd_line(pm__sd_state *st, const char *suffix, double v, char type)
{
    if (!isfinite(v)) return PM_OK;
    char num[PM__NUM_MAX];
    size_t nn = pm__fmt_double(num, v);
    for (int pass = (type == 'g' && v < 0 && st->flavor == PM_STATSD_PLAIN) ? 0 : 1; pass < 2;
         pass++) {
        pm_buf_t *l = st->line;
        l->len = 0;
        const char t[2] = {'|', type};
        pm_status_t s = pm__sd_put(l, st->prefix->data, st->prefix->len);
        if (s == PM_OK && suffix) s = pm__sd_put(l, suffix, strlen(suffix));
        if (s == PM_OK) s = pm__sd_put(l, ":", 1);
        if (s == PM_OK) s = pass == 0 ? pm__sd_put(l, "0", 1) : pm__sd_put(l, num, nn);
        if (s == PM_OK) s = pm__sd_put(l, t, 2);
        if (s == PM_OK && st->tags->len) s = pm__sd_put(l, st->tags->data, st->tags->len);
        if (s != PM_OK) return s;
        pm__sd_emit(st);
    }
    return PM_OK;
}

/* The name and tags of series s of family f into st->prefix and st->tags,
 * and its table key into st->key. */
static pm_status_t pm__sd_series_text(pm__sd_state *st, const pm_snap_family_t *f,
                                      const pm_snap_series_t *s)
{
    bool dog = st->flavor == PM_STATSD_DOGSTATSD;
    bool ovf = pm_snap_series_is_overflow(s) != 0;
    size_t nl = pm_snap_family_label_count(f);
    const pm__push_view_t *v = &st->view;
    st->prefix->len = st->tags->len = st->key->len = 0;
    pm_status_t r = PM_OK;
    const char *fam = pm_snap_family_name(f);
    r = pm__sd_put(st->key, fam, strlen(fam) + 1);
    for (size_t i = 0; i < nl && r == PM_OK; i++) {
        const char *val = pm_snap_series_label_value(s, i);
        r = pm__sd_put(st->key, val, strlen(val) + 1);
    }
    if (r == PM_OK && ovf) r = pm__sd_put(st->key, "\xff", 1); /* "" values, but not the same series */
    if (dog) {
        for (size_t i = 0; i < v->nlabels && r == PM_OK; i++)
            r = pm__sd_put_tag(st->tags, v->label_name[i], v->label_value[i]);
        if (r == PM_OK) r = pm__sd_put_clean(st->prefix, fam, true);
        if (ovf) {
            if (r == PM_OK) r = pm__sd_put_tag(st->tags, "pm_overflow", "true");
        } else {
            for (size_t i = 0; i < nl && r == PM_OK; i++) {
                const char *val = pm_snap_series_label_value(s, i);
                if (val[0]) r = pm__sd_put_tag(st->tags, pm_snap_family_label_name(f, i), val);
            }
        }
        return r;
    }
    /* Plain: the destination's label values, the name, the series' label
     * values, dot-separated; dots inside a value would add levels, so they
     * are replaced too; an empty value is "_". */
    for (size_t i = 0; i < v->nlabels && r == PM_OK; i++) {
        r = pm__sd_put_clean(st->prefix, v->label_value[i], false);
        if (r == PM_OK) r = pm__sd_put(st->prefix, ".", 1);
    }
    if (r == PM_OK) r = pm__sd_put_clean(st->prefix, fam, true);
    if (ovf) {
        if (r == PM_OK) r = pm__sd_put(st->prefix, ".pm_overflow", 12);
    } else {
        for (size_t i = 0; i < nl && r == PM_OK; i++) {
            const char *val = pm_snap_series_label_value(s, i);
            r = pm__sd_put(st->prefix, ".", 1);
            if (r == PM_OK) r = val[0] ? pm__sd_put_clean(st->prefix, val, false) : pm__sd_put(st->prefix, "_", 1);
        }
    }
    return r;
}

/* Records this export's value for the series keyed st->key in the new table,
 * returning the previous one (found: false when the series is new). The key
 * moves from the old table to the new one. */
static pm_status_t pm__sd_remember(pm__sd_state *st, double value, uint64_t count, double *pv,
                                   uint64_t *pc, bool *found)
{
    const char *k = st->key->data;
    size_t n = st->key->len;
    uint64_t h = pm__sd_hash(k, n);
    pm__sd_ent *old = pm__sd_find(&st->prev, k, n, h);
    *found = old && old->key && !old->moved;
    char *key;
    if (*found) {
        *pv = old->value;
        *pc = old->count;
        key = old->key;
        old->moved = true;
    } else {
        key = malloc(n);
        if (!key) return PM_ENOMEM;
        memcpy(key, k, n);
    }
    pm__sd_ent *e = pm__sd_find(&st->cur, k, n, h);
    if (e->key) { /* the same series twice: not produced by snapshots */
        free(key);
        return PM_OK;
    }
    *e = (pm__sd_ent){key, n, h, value, count, false};
    st->cur.n++;
    return PM_OK;
}

static pm_status_t pm__sd_export(const pm_snapshot_t *s, pm_push *p)
{
    pm__sd_state *st = pm__push_state(p);
    const pm__push_view_t *v = &st->view;
    /* The new table holds every series of this export at under half load. */
    size_t total = 0, nf = pm_snapshot_family_count(s);
    for (size_t i = 0; i < nf; i++) total += pm_snap_family_series_count(pm_snapshot_family(s, i));
    size_t cap = pm__pow2_at_least(2 * total + 2);
    st->cur.slot = calloc(cap, sizeof *st->cur.slot);
    if (!st->cur.slot) return PM_ENOMEM;
    st->cur.cap = cap;
    st->cur.n = 0;
    st->dlen = 0;

    pm_status_t r = PM_OK;
    for (size_t fi = 0; fi < nf && r == PM_OK; fi++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, fi);
        if (!f || (v->wants && !v->wants(v->wants_ctx, pm_snap_family_name(f)))) continue;
        pm_type_t type = pm_snap_family_type(f);
        size_t ns = pm_snap_family_series_count(f);
        for (size_t si = 0; si < ns && r == PM_OK; si++) {
            const pm_snap_series_t *se = pm_snap_family_series(f, si);
            r = pm__sd_series_text(st, f, se);
            if (r != PM_OK) break;
            double pv = 0;
            uint64_t pc = 0;
            bool found = false;
            if (type == PM_TYPE_GAUGE) {
                r = pm__sd_line(st, NULL, pm_snap_series_value(se), 'g');
            } else if (type == PM_TYPE_COUNTER) {
                double val = pm_snap_series_value(se);
                r = pm__sd_remember(st, val, 0, &pv, &pc, &found);
                /* A counter below its last value was reset: all of it is new. */
                double d = !found || val < pv ? val : val - pv;
                if (r == PM_OK && d != 0) r = pm__sd_line(st, NULL, d, 'c');
            } else {
                uint64_t c = pm_snap_series_count(se);
                double sum = pm_snap_series_sum(se);
                r = pm__sd_remember(st, sum, c, &pv, &pc, &found);
                bool reset = !found || c < pc;
                uint64_t dc = reset ? c : c - pc;
                if (r == PM_OK && dc) {
                    r = pm__sd_line(st, ".count", (double)dc, 'c');
                    double ds = reset ? sum : sum - pv;
                    if (r == PM_OK && ds != 0) r = pm__sd_line(st, ".sum", ds, 'c');
                }
                static const struct {
                    const char *sfx;
                    double q;
                } qs[] = {{".p50", 0.5}, {".p90", 0.9}, {".p99", 0.99}};
                for (size_t k = 0; k < 3 && r == PM_OK && c; k++) {
                    double q;
                    if (pm_snap_series_quantile(se, qs[k].q, &q) == PM_OK)
                        r = pm__sd_line(st, qs[k].sfx, q, 'g');
                }
                if (r == PM_OK && c) r = pm__sd_line(st, ".max", pm_snap_series_max(se), 'g');
            }
        }
    }
    if (r == PM_OK) pm__sd_flush(st);
    /* On failure the new table is incomplete: keep it anyway (what it holds
     * was sent); series not reached send their whole increase next time. */
    pm__sd_table_free(&st->prev);
    st->prev = st->cur;
    memset(&st->cur, 0, sizeof st->cur);
    st->dlen = 0;
    return r;
}

/* ------------------------------------------------------------ creation */

/* host:port, host a name, an IPv4 address or a bracketed IPv6 one. */
static int pm__sd_connect(const char *host_port)
{
    const char *colon = strrchr(host_port, ':');
    if (!colon || !colon[1]) return -1;
    size_t hl = (size_t)(colon - host_port);
    const char *h = host_port;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1; /* an IPv6 address needs brackets */
    }
    if (hl == 0 || hl >= 256) return -1;
    char host[256];
    memcpy(host, h, hl);
    host[hl] = '\0';
    for (const char *q = colon + 1; *q; q++)
        if (*q < '0' || *q > '9') return -1;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

pm_status_t pm_push_statsd_new(pm_registry_t *r, const char *host_port, pm_statsd_flavor_t flavor,
                               const pm_push_opts_t *o, pm_push_t **out)
{
    if (out) *out = NULL;
    if (!r || !host_port || !out || (flavor != PM_STATSD_PLAIN && flavor != PM_STATSD_DOGSTATSD))
        return PM_EINVAL;
    pm__sd_state *st = calloc(1, sizeof *st);
    if (!st) return PM_ENOMEM;
    st->flavor = flavor;
    st->fd = -1;
    if (pm_buf_new(&st->key) != PM_OK || pm_buf_new(&st->line) != PM_OK ||
        pm_buf_new(&st->tags) != PM_OK || pm_buf_new(&st->prefix) != PM_OK) {
        pm__sd_fini(st);
        return PM_ENOMEM;
    }
    st->fd = pm__sd_connect(host_port);
    if (st->fd < 0) {
        pm__sd_fini(st);
        return PM_EIO;
    }
    pm_push *p = NULL;
    pm_status_t s = pm__push_local_new("statsd", o, st, pm__sd_fini, &p);
    if (s != PM_OK) return s;
    st->p = p;
    s = pm__push_view_init(&st->view, p);
    if (s == PM_OK) s = pm__push_attach_exporter(p, r, pm__sd_export);
    if (s != PM_OK) {
        pm__push_discard(p);
        return s;
    }
    *out = p;
    return PM_OK;
}
