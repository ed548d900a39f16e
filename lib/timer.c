/* Clocks: a calibrated TSC where the kernel vouches for it, CLOCK_MONOTONIC
 * otherwise. The TSC is used only when /proc/cpuinfo shows constant_tsc and
 * nonstop_tsc and the kernel's clocksource is "tsc" (so the kernel has checked
 * that TSCs agree across CPUs). ns = base_ns + ((tsc - base_tsc) * mult) >> 32. */
#include "internal/pm_internal.h"

#include <stdio.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define PM_HAVE_TSC 1
#else
#define PM_HAVE_TSC 0
#endif

__extension__ typedef unsigned __int128 pm_u128;

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;
/* Set (release) once calibration is done: the clock reads test it inline
 * instead of calling pthread_once every time. */
static _Atomic int clock_ready;
static int use_tsc;
static uint64_t base_tsc, base_ns, tsc_mult; /* ns per tick in 32.32 fixed point */

uint64_t pm__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double pm__wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double pm_wall_seconds(void) { return pm__wall_now(); }

int64_t pm__wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

struct timespec pm__timespec_after(struct timespec from, double secs)
{
    from.tv_sec += (time_t)secs;
    from.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (from.tv_nsec >= 1000000000L) {
        from.tv_sec++;
        from.tv_nsec -= 1000000000L;
    }
    return from;
}

#if PM_HAVE_TSC
static int file_has(const char *path, const char *word)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        for (char *p = strstr(line, word); p; p = strstr(p + 1, word)) {
            size_t n = strlen(word);
            bool left = p == line || p[-1] == ' ' || p[-1] == '\t';
            bool right = p[n] == ' ' || p[n] == '\n' || p[n] == '\0';
            if (left && right) {
                found = 1;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

static void calibrate(void)
{
    if (!file_has("/proc/cpuinfo", "constant_tsc") || !file_has("/proc/cpuinfo", "nonstop_tsc") ||
        !file_has("/sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc"))
        return;
    /* Bracket each TSC read with two clock reads and keep the tightest pair,
     * at the start and after ~5 ms; the error is then a few ns in 5 ms. */
    uint64_t t0 = 0, n0 = 0, t1 = 0, n1 = 0, best = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        uint64_t a = pm__mono_ns(), t = __rdtsc(), b = pm__mono_ns();
        if (b - a < best) best = b - a, t0 = t, n0 = a + (b - a) / 2;
    }
    while (pm__mono_ns() - n0 < 5000000) {
    }
    best = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        uint64_t a = pm__mono_ns(), t = __rdtsc(), b = pm__mono_ns();
        if (b - a < best) best = b - a, t1 = t, n1 = a + (b - a) / 2;
    }
    if (t1 <= t0 || n1 <= n0) return;
    tsc_mult = (uint64_t)(((pm_u128)(n1 - n0) << 32) / (t1 - t0));
    if (tsc_mult == 0) return;
    base_tsc = t1;
    base_ns = n1;
    use_tsc = 1;
}
#else
static void calibrate(void) {}
#endif

static void calibrate_once(void)
{
    calibrate();
    atomic_store_explicit(&clock_ready, 1, memory_order_release);
}

void pm__clock_init(void) { pthread_once(&clock_once, calibrate_once); }

/* The calibration, done and visible to this thread (acquire). */
static inline void clock_ensure(void)
{
    if (PM_UNLIKELY(!atomic_load_explicit(&clock_ready, memory_order_acquire))) pm__clock_init();
}

static inline uint64_t ticks(void)
{
#if PM_HAVE_TSC
    if (PM_LIKELY(use_tsc)) return __rdtsc();
#endif
    return pm__mono_ns();
}

static inline uint64_t ticks_to_ns(uint64_t dt)
{
    return use_tsc ? (uint64_t)(((pm_u128)dt * tsc_mult) >> 32) : dt;
}

/* Per-thread floor so that readings never go backwards on one thread even if
 * the TSC read is reordered slightly. */
static PM_TLS uint64_t last_now;

uint64_t pm_now_ns(void)
{
    clock_ensure();
    uint64_t now;
#if PM_HAVE_TSC
    if (use_tsc) {
        uint64_t t = __rdtsc();
        now = t >= base_tsc ? base_ns + ticks_to_ns(t - base_tsc)
                            : base_ns - ticks_to_ns(base_tsc - t);
    } else
#endif
        now = pm__mono_ns();
    if (now < last_now) now = last_now;
    last_now = now;
    return now;
}

uint64_t pm_timer_start(void)
{
    clock_ensure();
    return ticks();
}

void pm_timer_stop(pm_histogram_t *h, uint64_t start)
{
    if (PM_UNLIKELY(!h)) return;
    clock_ensure(); /* orders our reads of the calibration after its writes */
    uint64_t t = ticks();
    /* As pm_histogram_observe_ns, without its call: divide, so 300 ms is the
     * double 0.3 exactly. */
    pm_histogram_observe(h, (double)(t > start ? ticks_to_ns(t - start) : 0) / 1e9);
}

const char *pm_clock_source(void)
{
    clock_ensure();
    return use_tsc ? "tsc" : "clock_monotonic";
}
