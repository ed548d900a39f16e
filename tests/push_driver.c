/* Drives push destinations from commands on stdin, one per line, for the
 * checks against a real Pushgateway and Alertmanager
 * (tests/validate_pushgateway.py, tests/validate_alertmanager_push.py).
 * Every command answers one line on stdout: "ok ..." or "err <status>".
 *
 *   reg NAME                      select (or create) a registry, self-metrics off
 *   counter NAME ADD              add to a counter (created on first use)
 *   labeled NAME LABEL VALUE ADD  add to a labelled counter
 *   gauge NAME VALUE              set a gauge
 *   hist NAME VALUE               observe into a histogram (bounds 0.1, 1, 10)
 *   pgw ID URL JOB MERGE GZIP [LABEL=VALUE ...]   a Pushgateway destination on the registry
 *   export                        pm_export_now on the registry, then flush every destination
 *   delete ID                     pm_push_pushgateway_delete, then flush
 *   am ID URL RESEND_S            an alert engine on the registry (rule QueueDeep:
 *                                 am_queue_depth > 10, label team=ops) and an
 *                                 Alertmanager destination on it
 *   tick                          evaluate the engine now, deliver, flush
 *   stats ID                      "ok queued sent rejected dropped attempts failed"
 *   free ID                       pm_push_free
 *   quit */
#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/push.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXN 16

static struct {
    char name[64];
    pm_registry_t *r;
    pm_alert_engine_t *e;
} regs[MAXN];
static int nregs, cur = -1;

static struct {
    char id[64];
    pm_push_t *p;
} dests[MAXN];
static int ndests;

static pm_push_t *find(const char *id)
{
    for (int i = 0; i < ndests; i++)
        if (dests[i].p && strcmp(dests[i].id, id) == 0) return dests[i].p;
    return NULL;
}

static void answer(pm_status_t st)
{
    if (st == PM_OK)
        printf("ok\n");
    else
        printf("err %s\n", pm_status_name(st));
}

static pm_status_t flush_all(void)
{
    for (int i = 0; i < ndests; i++)
        if (dests[i].p) {
            pm_status_t st = pm_push_flush(dests[i].p, 30);
            if (st != PM_OK) return st;
        }
    return PM_OK;
}

static pm_status_t add_dest(const char *id, pm_push_t *p)
{
    if (ndests == MAXN) return PM_ERANGE;
    snprintf(dests[ndests].id, sizeof dests[ndests].id, "%s", id);
    dests[ndests++].p = p;
    return PM_OK;
}

static pm_push_opts_t *opts_for(const char *id)
{
    pm_push_opts_t *o = NULL;
    if (pm_push_opts_new(&o) != PM_OK) return NULL;
    pm_push_opts_set_name(o, id);
    pm_push_opts_set_timeouts(o, 2, 5);
    pm_push_opts_set_retry(o, 3, 0.1, 0.5);
    return o;
}

static pm_status_t cmd(char *line)
{
    char *argv[32];
    int argc = 0;
    for (char *t = strtok(line, " \t\n"); t && argc < 32; t = strtok(NULL, " \t\n")) argv[argc++] = t;
    if (argc == 0) return PM_EINVAL;
    const char *c = argv[0];
    if (strcmp(c, "reg") == 0 && argc == 2) {
        for (int i = 0; i < nregs; i++)
            if (strcmp(regs[i].name, argv[1]) == 0) {
                cur = i;
                return PM_OK;
            }
        if (nregs == MAXN) return PM_ERANGE;
        pm_registry_opts_t *o = NULL;
        pm_status_t st = pm_registry_opts_new(&o);
        if (st == PM_OK) st = pm_registry_opts_set_self_metrics(o, 0);
        if (st == PM_OK) st = pm_registry_new(o, &regs[nregs].r);
        pm_registry_opts_free(o);
        if (st != PM_OK) return st;
        snprintf(regs[nregs].name, sizeof regs[nregs].name, "%s", argv[1]);
        cur = nregs++;
        return PM_OK;
    }
    if (cur < 0) return PM_ESTATE;
    pm_registry_t *r = regs[cur].r;
    if (strcmp(c, "counter") == 0 && argc == 3) {
        pm_counter_t *k = NULL;
        pm_status_t st = pm_counter_new(r, argv[1], "A counter.", &k);
        if (st == PM_OK) pm_counter_add(k, atof(argv[2]));
        return st;
    }
    if (strcmp(c, "labeled") == 0 && argc == 5) {
        pm_family_t *f = NULL;
        const char *names[1] = {argv[2]};
        const char *values[1] = {argv[3]};
        pm_family_opts_t *fo = NULL;
        pm_status_t st = pm_family_opts_new(&fo);
        if (st == PM_OK) st = pm_family_opts_set_labels(fo, names, 1);
        if (st == PM_OK)
            st = pm_family_new(r, PM_TYPE_COUNTER, argv[1], "A labelled counter.", fo, &f);
        pm_family_opts_free(fo);
        if (st == PM_OK) st = pm_counter_add_labeled(f, values, 1, atof(argv[4]));
        return st;
    }
    if (strcmp(c, "gauge") == 0 && argc == 3) {
        pm_gauge_t *g = NULL;
        pm_status_t st = pm_gauge_new(r, argv[1], "A gauge.", &g);
        if (st == PM_OK) pm_gauge_set(g, atof(argv[2]));
        return st;
    }
    if (strcmp(c, "hist") == 0 && argc == 3) {
        static const double bounds[] = {0.1, 1, 10};
        pm_family_t *f = NULL;
        pm_family_opts_t *fo = NULL;
        pm_status_t st = pm_family_opts_new(&fo);
        if (st == PM_OK) st = pm_family_opts_set_buckets(fo, bounds, 3);
        if (st == PM_OK) st = pm_family_new(r, PM_TYPE_HISTOGRAM, argv[1], "A histogram.", fo, &f);
        pm_family_opts_free(fo);
        if (st == PM_OK) st = pm_histogram_observe_labeled(f, NULL, 0, atof(argv[2]));
        return st;
    }
    if (strcmp(c, "pgw") == 0 && argc >= 6) {
        pm_push_opts_t *o = opts_for(argv[1]);
        if (!o) return PM_ENOMEM;
        pm_status_t st = atoi(argv[5]) ? pm_push_opts_set_gzip(o, 1) : PM_OK;
        for (int i = 6; i < argc && st == PM_OK; i++) {
            char *eq = strchr(argv[i], '=');
            if (!eq) {
                st = PM_EINVAL;
                break;
            }
            *eq = '\0';
            st = pm_push_opts_add_label(o, argv[i], eq + 1);
        }
        pm_push_t *p = NULL;
        if (st == PM_OK) st = pm_push_pushgateway_new(r, argv[2], argv[3], atoi(argv[4]), o, &p);
        pm_push_opts_free(o);
        if (st == PM_OK) st = add_dest(argv[1], p);
        return st;
    }
    if (strcmp(c, "export") == 0 && argc == 1) {
        pm_status_t st = pm_export_now(r);
        return st == PM_OK ? flush_all() : st;
    }
    if (strcmp(c, "delete") == 0 && argc == 2) {
        pm_push_t *p = find(argv[1]);
        if (!p) return PM_ENOENT;
        pm_status_t st = pm_push_pushgateway_delete(p);
        return st == PM_OK ? pm_push_flush(p, 30) : st;
    }
    if (strcmp(c, "am") == 0 && argc == 4) {
        pm_status_t st = PM_OK;
        if (!regs[cur].e) {
            pm_alert_engine_opts_t *eo = NULL;
            st = pm_alert_engine_opts_new(&eo);
            if (st == PM_OK) st = pm_alert_engine_opts_set_dispatch_thread(eo, 0);
            if (st == PM_OK) st = pm_alert_engine_new(r, eo, &regs[cur].e);
            pm_alert_engine_opts_free(eo);
            pm_alert_rule_t *rule = NULL;
            if (st == PM_OK) st = pm_alert_rule_new("QueueDeep", "am_queue_depth > 10", &rule, NULL);
            if (st == PM_OK) st = pm_alert_rule_set_label(rule, "team", "ops");
            if (st == PM_OK)
                st = pm_alert_rule_set_annotation(rule, "summary", "depth {{ $value }}", NULL);
            if (st == PM_OK) st = pm_alert_engine_add_rule(regs[cur].e, rule);
            pm_alert_rule_free(rule);
            if (st != PM_OK) return st;
        }
        pm_push_opts_t *o = opts_for(argv[1]);
        if (!o) return PM_ENOMEM;
        pm_push_t *p = NULL;
        st = pm_push_alertmanager_new(regs[cur].e, argv[2], NULL, atof(argv[3]),
                                      "http://127.0.0.1/graph", o, &p);
        pm_push_opts_free(o);
        if (st == PM_OK) st = add_dest(argv[1], p);
        return st;
    }
    if (strcmp(c, "tick") == 0 && argc == 1) {
        if (!regs[cur].e) return PM_ESTATE;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        pm_status_t st =
            pm_alert_engine_tick(regs[cur].e, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
        if (st == PM_OK) st = pm_alert_engine_deliver(regs[cur].e, 0, NULL);
        return st == PM_OK ? flush_all() : st;
    }
    if (strcmp(c, "stats") == 0 && argc == 2) {
        pm_push_t *p = find(argv[1]);
        if (!p) return PM_ENOENT;
        static const pm_push_stat_t w[] = {PM_PUSH_STAT_QUEUED,  PM_PUSH_STAT_SENT,
                                           PM_PUSH_STAT_REJECTED, PM_PUSH_STAT_DROPPED,
                                           PM_PUSH_STAT_ATTEMPTS, PM_PUSH_STAT_FAILED};
        printf("ok");
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            uint64_t v = 0;
            pm_push_stat(p, w[i], &v);
            printf(" %llu", (unsigned long long)v);
        }
        printf("\n");
        return 1; /* answered */
    }
    if (strcmp(c, "free") == 0 && argc == 2) {
        for (int i = 0; i < ndests; i++)
            if (dests[i].p && strcmp(dests[i].id, argv[1]) == 0) {
                pm_push_free(dests[i].p);
                dests[i].p = NULL;
                return PM_OK;
            }
        return PM_ENOENT;
    }
    return PM_EINVAL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "quit", 4) == 0) break;
        pm_status_t st = cmd(line);
        if (st != 1) answer(st);
    }
    for (int i = 0; i < ndests; i++) pm_push_free(dests[i].p);
    for (int i = 0; i < nregs; i++) {
        pm_alert_engine_free(regs[i].e);
        pm_registry_free(regs[i].r);
    }
    return 0;
}
