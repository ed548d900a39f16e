// C++ check of the public headers: they compile as C++ (extern "C", no C-only
// syntax reaching C++), link against the C library, and the RAII timer
// (pm::TimerScope) and PM_TIMER_SCOPE work, exceptions included.
// A tiny harness of its own (harness.h is C): one line per case, then
// "test_cxx: N passed, N failed".
#include <perfmetrics/perfmetrics.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace {

int g_failures; // in the current case

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            g_failures++;                                                                          \
            std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);        \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        double cx_a_ = static_cast<double>(a), cx_b_ = static_cast<double>(b);                     \
        if (!(cx_a_ == cx_b_)) {                                                                   \
            g_failures++;                                                                          \
            std::fprintf(stderr, "  %s:%d: %s == %s: %.17g != %.17g\n", __FILE__, __LINE__, #a,    \
                         #b, cx_a_, cx_b_);                                                        \
        }                                                                                          \
    } while (0)

// Owning wrappers, the way a C++ host would hold the C handles.
struct Registry {
    pm_registry_t *r = nullptr;
    Registry() { pm_registry_new(nullptr, &r); }
    ~Registry() { pm_registry_free(r); }
    Registry(const Registry &) = delete;
    Registry &operator=(const Registry &) = delete;
};

struct Snapshot {
    pm_snapshot_t *s = nullptr;
    explicit Snapshot(pm_registry_t *r) { pm_snapshot_new(r, &s); }
    ~Snapshot() { pm_snapshot_release(s); }
    Snapshot(const Snapshot &) = delete;
    Snapshot &operator=(const Snapshot &) = delete;

    const pm_snap_series_t *series(const char *family, const char *v0 = nullptr) const
    {
        for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
            const pm_snap_family_t *f = pm_snapshot_family(s, i);
            if (std::strcmp(pm_snap_family_name(f), family) != 0) continue;
            for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
                const pm_snap_series_t *x = pm_snap_family_series(f, j);
                if (!v0 || std::strcmp(pm_snap_series_label_value(x, 0), v0) == 0) return x;
            }
        }
        return nullptr;
    }
};

void busy_wait_ms(double ms)
{
    uint64_t t0 = pm_now_ns();
    while (static_cast<double>(pm_now_ns() - t0) < ms * 1e6) {
    }
}

// ---------------------------------------------------------------- cases

void test_versions_and_status()
{
    CHECK_EQ(pm_version(), PM_VERSION_NUMBER);
    CHECK(std::string(pm_version_string()) == PM_VERSION_STRING);
    CHECK(PM_VERSION_AT_LEAST(1, 0, 0));
    CHECK(!PM_VERSION_AT_LEAST(PM_VERSION_MAJOR + 1, 0, 0));
    static_assert(PM_OK == 0, "PM_OK is 0");
    pm_status_t st = PM_ENOMEM; // the enum is usable as a C++ type
    CHECK(std::string(pm_status_name(st)) == "PM_ENOMEM");
    CHECK(pm_strerror(12345) != nullptr);
}

void test_counter_and_snapshot()
{
    Registry reg;
    CHECK(reg.r != nullptr);
    pm_counter_t *requests = nullptr;
    CHECK_EQ(pm_counter_new(reg.r, "requests", "Requests handled.", &requests), PM_OK);
    pm_counter_inc(requests);
    pm_counter_add_u64(requests, 2);
    pm_counter_add(requests, 0.5);
    CHECK_EQ(pm_counter_value(requests), 3.5);

    pm_family_opts_t *opts = nullptr;
    CHECK_EQ(pm_family_opts_new(&opts), PM_OK);
    const char *const labels[] = {"method"};
    CHECK_EQ(pm_family_opts_set_labels(opts, labels, 1), PM_OK);
    pm_family_t *by_method = nullptr;
    CHECK_EQ(pm_family_new(reg.r, PM_TYPE_COUNTER, "calls", "Calls.", opts, &by_method), PM_OK);
    pm_family_opts_free(opts);
    const char *const get[] = {"GET"};
    CHECK_EQ(pm_counter_add_labeled(by_method, get, 1, 4), PM_OK);

    Snapshot snap(reg.r);
    CHECK(snap.s != nullptr);
    CHECK_EQ(pm_snap_series_value(snap.series("requests")), 3.5);
    CHECK_EQ(pm_snap_series_value(snap.series("calls", "GET")), 4);

    pm_buf_t *buf = nullptr;
    CHECK_EQ(pm_buf_new(&buf), PM_OK);
    CHECK_EQ(pm_format(snap.s, PM_FORMAT_PROMETHEUS, buf), PM_OK);
    std::string text(pm_buf_data(buf), pm_buf_len(buf));
    CHECK(text.find("requests_total 3.5\n") != std::string::npos);
    CHECK(text.find("calls_total{method=\"GET\"} 4\n") != std::string::npos);
    pm_buf_free(buf);
}

void test_timer_scope_raii()
{
    static_assert(!std::is_copy_constructible<pm::TimerScope>::value, "not copyable");
    static_assert(!std::is_copy_assignable<pm::TimerScope>::value, "not assignable");
    Registry reg;
    pm_histogram_t *latency = nullptr;
    CHECK_EQ(pm_histogram_new(reg.r, "latency_seconds", "Latency.", &latency), PM_OK);
    {
        pm::TimerScope t(latency);
        busy_wait_ms(1);
    }
    {
        PM_TIMER_SCOPE(latency); // any expression works in C++
        busy_wait_ms(1);
    }
    // Unwinding records too.
    try {
        pm::TimerScope t(latency);
        throw std::runtime_error("boom");
    } catch (const std::runtime_error &) {
    }
    // A null histogram is ignored.
    {
        pm::TimerScope t(nullptr);
        PM_TIMER_SCOPE(nullptr);
    }
    Snapshot snap(reg.r);
    const pm_snap_series_t *s = snap.series("latency_seconds");
    CHECK(s != nullptr);
    CHECK_EQ(pm_snap_series_count(s), 3);
    CHECK(pm_snap_series_max(s) >= 0.9e-3 && pm_snap_series_max(s) < 0.05);
    CHECK(pm_snap_series_sum(s) >= 1.8e-3);
}

struct Case {
    const char *name;
    void (*fn)();
};

} // namespace

int main()
{
    const Case cases[] = {
        {"test_versions_and_status", test_versions_and_status},
        {"test_counter_and_snapshot", test_counter_and_snapshot},
        {"test_timer_scope_raii", test_timer_scope_raii},
    };
    int passed = 0, failed = 0;
    for (const Case &c : cases) {
        g_failures = 0;
        c.fn();
        std::printf("%s %s\n", g_failures ? "FAIL" : "ok  ", c.name);
        (g_failures ? failed : passed)++;
    }
    std::printf("test_cxx: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
