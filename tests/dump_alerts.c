/* Prints, for tests/validate_alertmanager.py, a fixed set of alert events
 * (built with pm__aevent_new, so no engine or clock is involved):
 *   dump_alerts alertmanager   the pm_alert_format_alertmanager body, then "\n"
 *   dump_alerts fingerprints   one "<alertname> <fingerprint as 16 hex>" line
 *                              per event, pending ones included
 * Keep EVENTS in step with EXPECTED in validate_alertmanager.py. */
#include "internal/alert_internal.h"

#include <perfmetrics/perfmetrics.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* 2023-11-14T22:13:20.123Z: in the past, so Alertmanager keeps firing alerts
 * active (it sets their endsAt to now + resolve_timeout). */
#define T0 (1700000000LL * PM__NS_PER_S + 123000000LL)
#define SEC PM__NS_PER_S
#define UNSET INT64_MIN
#define GENERATOR "http://127.0.0.1:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D&g0.tab=1"

typedef struct spec {
    const char *rule;
    pm_alert_state_t state, prev;
    pm_severity_t sev;
    double value;
    int64_t at, active_at, starts_at, ends_at;
    const char *labels[16]; /* name, value, ..., NULL; sorted by name */
    const char *annots[8];
} spec;

static const spec EVENTS[] = {
    {"HighErrorRate", PM_ALERT_FIRING, PM_ALERT_PENDING, PM_SEVERITY_CRITICAL, 0.0712, T0,
     T0 - 300 * SEC, T0, UNSET,
     {"alertname", "HighErrorRate", "path", "/v1/items?q=\"a\\b\"\nline2", "service", "api",
      "severity", "critical", NULL},
     {"description", "multi\nline \"quoted\" \\ back\\slash", "summary",
      "error rate 7.12% on api \xc3\xa9\xe2\x9c\x93 \xf0\x9f\x98\x80", NULL}},
    /* a repeat notification */
    {"DiskFull", PM_ALERT_FIRING, PM_ALERT_FIRING, PM_SEVERITY_WARNING, 0.97, T0 + 60 * SEC,
     T0 - 10 * SEC, T0 + 1 * SEC, UNSET,
     {"alertname", "DiskFull", "device", "C:\\dir\\", "mount",
      "\xc3\xa9\xe2\x9c\x93 \xc3\xbc\xc3\xb1\xc3\xad \xf0\x9f\x98\x80", "severity", "warning",
      NULL},
     {"runbook", "tab\there ctl\x01 end \\n is not a newline", NULL}},
    {"MemoryHigh", PM_ALERT_RESOLVED, PM_ALERT_FIRING, PM_SEVERITY_INFO, 0.5, T0 - 60 * SEC,
     T0 - 900 * SEC, T0 - 600 * SEC, T0 - 60 * SEC,
     {"alertname", "MemoryHigh", "instance", "host:9100", "severity", "info", NULL},
     {"summary", "back to normal", NULL}},
    /* pending: not sent */
    {"Slow", PM_ALERT_PENDING, PM_ALERT_INACTIVE, PM_SEVERITY_WARNING, 3, T0, T0, UNSET, UNSET,
     {"alertname", "Slow", "severity", "warning", NULL},
     {NULL}},
    /* resolved without ever firing: startsAt falls back to active_at */
    {"Blip", PM_ALERT_RESOLVED, PM_ALERT_PENDING, PM_SEVERITY_WARNING, 0, T0 - 100 * SEC,
     T0 - 120 * SEC, UNSET, T0 - 100 * SEC,
     {"alertname", "Blip", "quote", "\"", "severity", "warning", NULL},
     {NULL}},
    {"Bare", PM_ALERT_FIRING, PM_ALERT_PENDING, PM_SEVERITY_INFO, 1, T0, T0, T0, UNSET,
     {"alertname", "Bare", "severity", "info", NULL},
     {NULL}},
};
#define NEVENTS (sizeof EVENTS / sizeof EVENTS[0])

static pm_status_t build(const spec *s, pm_alert_event_t **out)
{
    const char *ln[8], *lv[8], *an[4], *av[4];
    size_t nl = 0, na = 0;
    while (s->labels[2 * nl]) {
        ln[nl] = s->labels[2 * nl];
        lv[nl] = s->labels[2 * nl + 1];
        nl++;
    }
    while (s->annots[2 * na]) {
        an[na] = s->annots[2 * na];
        av[na] = s->annots[2 * na + 1];
        na++;
    }
    pm__aevent_init in = {.rule = s->rule, .state = s->state, .prev = s->prev,
                          .severity = s->sev, .value = s->value, .at = s->at,
                          .active_at = s->active_at, .starts_at = s->starts_at,
                          .ends_at = s->ends_at, .lname = ln, .lvalue = lv, .nlabels = nl,
                          .aname = an, .avalue = av, .nannots = na};
    return pm__aevent_new(NULL, &in, out);
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "alertmanager") && strcmp(argv[1], "fingerprints"))) {
        fprintf(stderr, "usage: dump_alerts alertmanager|fingerprints\n");
        return 2;
    }
    pm_alert_event_t *ev[NEVENTS] = {0};
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    for (size_t i = 0; st == PM_OK && i < NEVENTS; i++) st = build(&EVENTS[i], &ev[i]);
    if (st == PM_OK && !strcmp(argv[1], "alertmanager")) {
        st = pm_alert_format_alertmanager((const pm_alert_event_t *const *)ev, NEVENTS,
                                          GENERATOR, b);
        if (st == PM_OK) st = pm_buf_append(b, "\n", 1);
    }
    for (size_t i = 0; st == PM_OK && i < NEVENTS && !strcmp(argv[1], "fingerprints"); i++) {
        char line[160];
        int n = snprintf(line, sizeof line, "%s %016" PRIx64 "\n", pm_alert_event_rule(ev[i]),
                         pm_alert_event_fingerprint(ev[i]));
        st = pm_buf_append(b, line, (size_t)n);
    }
    int ok = st == PM_OK &&
             fwrite(pm_buf_data(b), 1, pm_buf_len(b), stdout) == pm_buf_len(b) &&
             fflush(stdout) == 0;
    if (st != PM_OK) fprintf(stderr, "dump_alerts: %s\n", pm_strerror(st));
    pm_buf_free(b);
    for (size_t i = 0; i < NEVENTS; i++) pm__aevent_unref(ev[i]);
    return ok ? 0 : 1;
}
