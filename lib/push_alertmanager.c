/* Alertmanager destinations: a notifier on an alert engine that queues each
 * firing or resolved event as a POST /api/v2/alerts body
 * (pm_alert_format_alertmanager), and, on the destination's sender thread
 * every resend_s seconds, the engine's active firing instances again.
 * Alertmanager ends an alert it hears nothing about after its
 * resolve_timeout (endsAt is left out for firing alerts, so it sets
 * now + resolve_timeout); the resend keeps alive what is still firing, and
 * a resolved event carries endsAt so it ends at once. */
#include "internal/alert_internal.h"
#include "internal/push_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct am {
    pm_alert_engine_t *engine;
    pm_alert_filter_t *filter; /* our copy, for the resend; NULL passes all */
    char *name;
    char *generator_url;
    char *path;
} am;

static void am_fini(void *state)
{
    am *a = state;
    if (!a) return;
    pm_alert_filter_free(a->filter);
    free(a->name);
    free(a->generator_url);
    free(a->path);
    free(a);
}

static int queue_events(pm_push *p, const pm_alert_event_t *const *evs, size_t n)
{
    am *a = pm__push_state(p);
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    if (st == PM_OK) st = pm_alert_format_alertmanager(evs, n, a->generator_url, b);
    if (st != PM_OK) {
        pm_buf_free(b);
        return 1;
    }
    if (pm_buf_len(b) <= 2) { /* "[]": pending only, nothing for Alertmanager */
        pm_buf_free(b);
        return 0;
    }
    return pm__push_enqueue_json_array(p, "POST", a->path, b, "application/json") == PM_OK ? 0
                                                                                          : 1;
}

static int am_notify(const pm_alert_event_t *ev, void *user)
{
    if (pm_alert_event_state(ev) == PM_ALERT_PENDING) return 0;
    return queue_events(user, &ev, 1);
}

/* The resend, on the sender thread: every active firing instance passing the
 * filter, in one body. */
static void am_resend(pm_push *p)
{
    am *a = pm__push_state(p);
    pm_alert_list_t *l = NULL;
    if (pm_alert_engine_active(a->engine, &l) != PM_OK) return;
    size_t n = pm_alert_list_count(l), k = 0;
    const pm_alert_event_t **evs = malloc((n ? n : 1) * sizeof *evs);
    if (evs) {
        for (size_t i = 0; i < n; i++) {
            const pm_alert_event_t *ev = pm_alert_list_get(l, i);
            if (pm_alert_event_state(ev) == PM_ALERT_FIRING && pm_alert_filter_match(a->filter, ev))
                evs[k++] = ev;
        }
        if (k) (void)queue_events(p, evs, k);
        free(evs);
    }
    pm_alert_list_free(l);
}

static void am_detach(pm_push *p)
{
    am *a = pm__push_state(p);
    (void)pm_alert_engine_remove_notifier(a->engine, a->name);
}

pm_status_t pm_push_alertmanager_new(pm_alert_engine_t *e, const char *url,
                                     const pm_alert_filter_t *filter, double resend_s,
                                     const char *generator_url, const pm_push_opts_t *o,
                                     pm_push_t **out)
{
    if (out) *out = NULL;
    if (!e || !url || !out || !(resend_s > 0) || resend_s > 1e6) return PM_EINVAL;
    am *a = calloc(1, sizeof *a);
    if (!a) return PM_ENOMEM;
    a->engine = e;
    if ((filter && pm__afilter_copy(filter, &a->filter) != PM_OK) ||
        !(a->name = strdup(pm__push_opts_name(o, "alertmanager"))) ||
        (generator_url && !(a->generator_url = strdup(generator_url)))) {
        am_fini(a);
        return PM_ENOMEM;
    }
    pm_push *p = NULL;
    pm_status_t st = pm__push_http_new("alertmanager", url, o, a, am_fini, &p);
    if (st != PM_OK) return st;
    const char *base = pm__push_url_path(p);
    size_t bl = strcspn(base, "?");
    while (bl > 0 && base[bl - 1] == '/') bl--;
    a->path = malloc(bl + sizeof "/api/v2/alerts");
    if (!a->path) {
        pm__push_discard(p);
        return PM_ENOMEM;
    }
    memcpy(a->path, base, bl);
    memcpy(a->path + bl, "/api/v2/alerts", sizeof "/api/v2/alerts");
    pm__push_set_periodic(p, resend_s, am_resend);
    st = pm_alert_engine_add_notifier(e, a->name, filter, am_notify, p, NULL);
    if (st != PM_OK) {
        pm__push_discard(p);
        return st;
    }
    pm__push_set_detach(p, am_detach);
    *out = p;
    return PM_OK;
}
