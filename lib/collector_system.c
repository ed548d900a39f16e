/* The system collector: load averages, memory and CPU utilisation of the
 * whole machine, read from /proc at snapshot time.
 *
 * CPU utilisation is a rate, so each collector keeps the CPU times it saw
 * last. That state is allocated per enable with the registry's allocator and
 * handed to pm_collector_add as user data with a release callback, so it dies
 * with the collector (pm_collector_remove, registry free, or a failed add) and
 * two registries never share a window. The core never runs a collector
 * concurrently with itself, so the state needs no lock.
 *
 * /proc files are read into fixed-size stack buffers and only complete lines
 * are parsed; numbers are parsed by hand, so the host's locale never matters.
 * A missing or malformed value fails the run with PM_EIO. */
#include "internal/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define COLLECTOR_NAME "system"

/* loadavg is one short line; MemTotal/MemFree/MemAvailable/Buffers/Cached
 * are the first lines of meminfo and the aggregate "cpu" line the first of
 * /proc/stat, so a bounded prefix of each file is all that is read. */
#define PREFIX_BUF_SIZE 4096

/* CPU times from the /proc/stat "cpu" line, in clock ticks. */
struct cpu_times {
    uint64_t total; /* user nice system idle iowait irq softirq steal */
    uint64_t idle;  /* idle + iowait */
};

struct system_state {
    pm_alloc_t a; /* the registry's allocator, to free this with */
    int have_prev;
    struct cpu_times prev;
    double last_ratio; /* reported again when no tick passed since prev */
};

/* Parses "digits[.digits]" (the form of /proc/loadavg), advancing *p.
 * Independent of LC_NUMERIC, unlike strtod. While the digits fit in 2^53 the
 * value is one correctly rounded division of two exact integers, so "1.59"
 * gives the double nearest 1.59 (and prints back as 1.59). */
static int parse_decimal(const char **p, double *out)
{
    const uint64_t exact = UINT64_C(1) << 53;
    uint64_t ip, frac = 0, scale = 1;
    if (!pm__parse_u64(p, &ip)) return 0;
    if (**p == '.') {
        const char *s = *p + 1;
        if (*s < '0' || *s > '9') return 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (scale >= UINT64_C(1000000000000000)) continue; /* beyond double precision */
            frac = frac * 10 + (uint64_t)(*s - '0');
            scale *= 10;
        }
        *p = s;
    }
    if (ip < exact / scale)
        *out = (double)(ip * scale + frac) / (double)scale;
    else
        *out = (double)ip + (double)frac / (double)scale;
    return 1;
}

static pm_status_t read_loadavg(double load[3])
{
    char buf[PREFIX_BUF_SIZE];
    size_t len;
    pm_status_t st = pm__proc_read("/proc/loadavg", buf, sizeof buf, &len, 0);
    if (st != PM_OK) return st;
    const char *p = buf;
    for (int i = 0; i < 3; i++) {
        pm__skip_blanks(&p);
        if (!parse_decimal(&p, &load[i])) return PM_EIO;
        if (*p != ' ' && *p != '\t') return PM_EIO;
    }
    return PM_OK;
}

/* meminfo keys the collector uses, in kB. */
enum { MI_TOTAL, MI_FREE, MI_AVAILABLE, MI_BUFFERS, MI_CACHED, MI_COUNT };

static pm_status_t read_meminfo(double *total_bytes, double *available_bytes)
{
    static const char *const keys[MI_COUNT] = {"MemTotal:", "MemFree:", "MemAvailable:",
                                               "Buffers:", "Cached:"};
    uint64_t kb[MI_COUNT] = {0};
    int found[MI_COUNT] = {0};
    char buf[PREFIX_BUF_SIZE];
    size_t len;
    pm_status_t st = pm__proc_read("/proc/meminfo", buf, sizeof buf, &len, 0);
    if (st != PM_OK) return st;

    for (const char *line = buf;;) {
        const char *nl = memchr(line, '\n', len - (size_t)(line - buf));
        if (!nl) break; /* end, or a line cut off by the buffer */
        for (int k = 0; k < MI_COUNT; k++) {
            size_t kl = strlen(keys[k]);
            if (found[k] || (size_t)(nl - line) < kl || memcmp(line, keys[k], kl) != 0)
                continue;
            const char *p = line + kl;
            pm__skip_blanks(&p);
            if (!pm__parse_u64(&p, &kb[k])) return PM_EIO;
            pm__skip_blanks(&p);
            /* Every value meminfo reports in memory units is in kB. */
            if (strncmp(p, "kB", 2) != 0) return PM_EIO;
            found[k] = 1;
            break;
        }
        line = nl + 1;
    }
    if (!found[MI_TOTAL]) return PM_EIO;
    uint64_t avail_kb;
    if (found[MI_AVAILABLE]) {
        avail_kb = kb[MI_AVAILABLE];
    } else if (found[MI_FREE] && found[MI_BUFFERS] && found[MI_CACHED]) {
        /* Kernels before 3.14 have no MemAvailable; this is the estimate
         * free(1) used there. */
        avail_kb = kb[MI_FREE] + kb[MI_BUFFERS] + kb[MI_CACHED];
        if (avail_kb > kb[MI_TOTAL]) avail_kb = kb[MI_TOTAL];
    } else {
        return PM_EIO;
    }
    *total_bytes = (double)kb[MI_TOTAL] * 1024.0;
    *available_bytes = (double)avail_kb * 1024.0;
    return PM_OK;
}

/* Parses the aggregate "cpu" line, the first of /proc/stat:
 *   cpu  user nice system idle iowait irq softirq steal guest guest_nice
 * guest and guest_nice are already counted in user and nice, so they are left
 * out of the total. Kernels older than 2.6.11 give fewer fields; at least the
 * first four are required. */
static pm_status_t read_cpu_times(struct cpu_times *out)
{
    enum { USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL, NFIELDS };
    uint64_t v[NFIELDS] = {0};
    char buf[PREFIX_BUF_SIZE];
    size_t len;
    pm_status_t st = pm__proc_read("/proc/stat", buf, sizeof buf, &len, 0);
    if (st != PM_OK) return st;
    if (!memchr(buf, '\n', len) || strncmp(buf, "cpu ", 4) != 0) return PM_EIO;

    const char *p = buf + 4;
    int n = 0;
    for (; n < NFIELDS; n++) {
        pm__skip_blanks(&p);
        if (!pm__parse_u64(&p, &v[n])) break;
    }
    if (n <= IDLE) return PM_EIO;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (v[i] > UINT64_MAX - total) return PM_EIO;
        total += v[i];
    }
    out->total = total;
    out->idle = v[IDLE] + v[IOWAIT];
    return PM_OK;
}

/* Busy share of all CPUs between the previous collection and now (since boot
 * the first time). busy = total - idle - iowait. The kernel's iowait (and, on
 * CPU hot-unplug, idle) can go backwards, so deltas are clamped; if the total
 * itself went backwards the window restarts from boot. */
static double cpu_utilisation(struct system_state *s, const struct cpu_times *now)
{
    uint64_t dt, di;
    if (s->have_prev && now->total >= s->prev.total) {
        dt = now->total - s->prev.total;
        di = now->idle >= s->prev.idle ? now->idle - s->prev.idle : 0;
    } else {
        dt = now->total;
        di = now->idle;
    }
    double ratio;
    if (dt == 0) {
        /* No tick passed since the previous collection: nothing new to say. */
        ratio = s->have_prev ? s->last_ratio : 0.0;
    } else {
        if (di > dt) di = dt;
        ratio = (double)(dt - di) / (double)dt;
    }
    s->prev = *now;
    s->have_prev = 1;
    s->last_ratio = ratio;
    return ratio;
}

static pm_status_t emit_one(pm_emit_t *e, const char *name, const char *help, const char *unit,
                            double value)
{
    pm_status_t st = pm_emit_family(e, PM_TYPE_GAUGE, name, help, unit, NULL, 0);
    if (st != PM_OK) return st;
    return pm_emit_sample(e, NULL, 0, value);
}

static pm_status_t system_collect(pm_emit_t *e, void *user)
{
    struct system_state *s = user;
    double load[3], mem_total, mem_avail;
    struct cpu_times ct;
    pm_status_t st;

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu <= 0) return PM_EIO;
    if ((st = read_loadavg(load)) != PM_OK) return st;
    if ((st = read_meminfo(&mem_total, &mem_avail)) != PM_OK) return st;
    if ((st = read_cpu_times(&ct)) != PM_OK) return st;
    /* Only now, with every read done, advance the window: a failed run
     * leaves the previous sample in place for the next one. */
    double util = cpu_utilisation(s, &ct);

    if ((st = emit_one(e, "system_load1", "1-minute load average.", "", load[0])) != PM_OK)
        return st;
    if ((st = emit_one(e, "system_load5", "5-minute load average.", "", load[1])) != PM_OK)
        return st;
    if ((st = emit_one(e, "system_load15", "15-minute load average.", "", load[2])) != PM_OK)
        return st;
    if ((st = emit_one(e, "system_memory_total_bytes", "Total usable memory in bytes.", "bytes",
                       mem_total)) != PM_OK)
        return st;
    if ((st = emit_one(e, "system_memory_available_bytes",
                       "Memory available for starting new applications, in bytes.", "bytes",
                       mem_avail)) != PM_OK)
        return st;
    if ((st = emit_one(e, "system_cpu_utilisation_ratio",
                       "Busy share of all CPUs (0-1) since the previous collection.", "",
                       util)) != PM_OK)
        return st;
    return emit_one(e, "system_cpus", "Number of online CPUs.", "", (double)ncpu);
}

static void system_release(void *user)
{
    struct system_state *s = user;
    if (!s) return;
    pm_alloc_t a = s->a; /* s holds the allocator it is freed with */
    pm__free(&a, s);
}

pm_status_t pm_system_collector_enable(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    /* Without a Linux-style /proc there is nothing to read; say so now rather
     * than fail every snapshot. */
    if (access("/proc/stat", R_OK) != 0 || access("/proc/loadavg", R_OK) != 0 ||
        access("/proc/meminfo", R_OK) != 0)
        return PM_EUNSUPPORTED;
    struct system_state *s = pm__calloc(&r->a, sizeof *s);
    if (!s) return PM_ENOMEM;
    s->a = r->a;
    /* On any failure (PM_EEXIST from a second enable included) the core calls
     * system_release, so s is never leaked. */
    pm_status_t st = pm_collector_add(r, COLLECTOR_NAME, system_collect, s, system_release, NULL);
    return st == PM_EEXIST ? PM_OK : st;
}
