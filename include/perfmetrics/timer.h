/* libperfmetrics — clocks and timers.
 *
 *   pm_histogram_t *h = ...;            // a histogram in seconds
 *   { PM_TIMER_SCOPE(h); do_work(); }   // records the block's duration
 *
 * PM_TIMER_SCOPE needs GCC or Clang (cleanup attribute); C++ has
 * pm::TimerScope; every language can call pm_timer_start/pm_timer_stop. */
#ifndef PERFMETRICS_TIMER_H
#define PERFMETRICS_TIMER_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns monotonic time in nanoseconds. Uses the calibrated TSC where the
 * kernel reports it stable (constant_tsc, nonstop_tsc, clocksource tsc), else
 * CLOCK_MONOTONIC; never goes backwards on one thread. The clock is calibrated
 * once per process, by pm_registry_new or else by the first clock call here
 * (about 5 ms, reading /proc): create a registry before timing hot paths.
 * Thread-safety: any thread, lock-free, no syscall on the TSC path. */
PM_API uint64_t pm_now_ns(void);

/* Returns an opaque start stamp for pm_timer_stop (clock ticks, not ns).
 * Thread-safety: any thread, lock-free, no allocation, no syscall on the TSC path. */
PM_API uint64_t pm_timer_start(void);

/* Records the time since `start` (from pm_timer_start) into h, in seconds.
 * NULL h is ignored. Thread-safety: any thread, lock-free, no allocation. */
PM_API void pm_timer_stop(pm_histogram_t *h, uint64_t start);

/* Returns which clock pm_now_ns uses: "tsc" or "clock_monotonic".
 * Thread-safety: any thread. */
PM_API const char *pm_clock_source(void);

/* Returns the real time (CLOCK_REALTIME) in seconds since the Unix epoch.
 * Thread-safety: any thread. */
PM_API double pm_wall_seconds(void);

#ifdef __cplusplus
}
#endif

/* ---- scope timer: not part of the ABI, only inline code calling the above */
#define PM_CAT_(a, b) a##b
#define PM_CAT(a, b) PM_CAT_(a, b)

#if defined(__GNUC__) || defined(__clang__)
struct pm_timer_scope_ {
    pm_histogram_t *h;
    uint64_t start;
};
__attribute__((unused)) static inline void pm_timer_scope_end_(struct pm_timer_scope_ *s) { pm_timer_stop(s->h, s->start); }
#ifdef __cplusplus
#define PM_TIMER_SCOPE_INIT_(hist) {(hist), pm_timer_start()}
#else
#define PM_TIMER_SCOPE_INIT_(hist) {.h = (hist), .start = pm_timer_start()}
#endif
/* Records the duration of the enclosing block into histogram h (seconds). */
#define PM_TIMER_SCOPE(hist)                                                          \
    __attribute__((cleanup(pm_timer_scope_end_), unused)) struct pm_timer_scope_ PM_CAT( \
        pm_timer_scope_, __LINE__) = PM_TIMER_SCOPE_INIT_(hist)
#endif

#ifdef __cplusplus
namespace pm {
/* RAII form: records the lifetime of the object into h. */
class TimerScope {
  public:
    explicit TimerScope(pm_histogram_t *h) noexcept : h_(h), start_(pm_timer_start()) {}
    ~TimerScope() { pm_timer_stop(h_, start_); }
    TimerScope(const TimerScope &) = delete;
    TimerScope &operator=(const TimerScope &) = delete;

  private:
    pm_histogram_t *h_;
    uint64_t start_;
};
} // namespace pm
#endif

#endif
