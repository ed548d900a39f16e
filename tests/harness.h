/* A tiny test harness: a registry of cases per program, each case run in its
 * own process with a timeout (set TH_NOFORK=1 to run in-process, e.g. under a
 * debugger), checks that print both sides with file:line, and one closing line
 * "<program>: N passed, N failed". Exit status 0 only if every case passed.
 *
 *   TEST(test_add) { CHECK_EQ_INT(1 + 1, 2); }
 *   TEST_MAIN(TH_CASE(test_add))
 *
 * `prog name` runs only the case called name. TH_TIMEOUT=seconds (default 120). */
#ifndef PM_TEST_HARNESS_H
#define PM_TEST_HARNESS_H

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct th_case {
    const char *name;
    void (*fn)(void);
};

static int th_failures;

#define TEST(name) static void name(void)
#define TH_CASE(fn) {#fn, fn}

#define TH_FAIL_(...)                                                                   \
    do {                                                                                \
        th_failures++;                                                                  \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                               \
        fprintf(stderr, __VA_ARGS__);                                                   \
        fputc('\n', stderr);                                                            \
    } while (0)

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) TH_FAIL_("CHECK(%s) failed", #cond);                               \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
    do {                                                                                \
        long long th_a_ = (long long)(a), th_b_ = (long long)(b);                        \
        if (th_a_ != th_b_) TH_FAIL_("%s == %s: %lld != %lld", #a, #b, th_a_, th_b_);    \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                              \
    do {                                                                                \
        unsigned long long th_a_ = (unsigned long long)(a), th_b_ = (unsigned long long)(b); \
        if (th_a_ != th_b_) TH_FAIL_("%s == %s: %llu != %llu", #a, #b, th_a_, th_b_);    \
    } while (0)

#define CHECK_STATUS(expr, want)                                                        \
    do {                                                                                \
        int th_s_ = (int)(expr), th_w_ = (int)(want);                                   \
        if (th_s_ != th_w_)                                                             \
            TH_FAIL_("%s: got %d (%s), want %d (%s)", #expr, th_s_, pm_status_name(th_s_), \
                     th_w_, pm_status_name(th_w_));                                      \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, 0)

#define CHECK_NEAR(a, b, tol)                                                           \
    do {                                                                                \
        double th_a_ = (double)(a), th_b_ = (double)(b), th_t_ = (double)(tol);          \
        if (!(fabs(th_a_ - th_b_) <= th_t_))                                            \
            TH_FAIL_("%s ~ %s: %.17g vs %.17g (tol %g)", #a, #b, th_a_, th_b_, th_t_);  \
    } while (0)

#define CHECK_EQ_DBL(a, b) CHECK_NEAR(a, b, 0.0)

#define CHECK_STR(a, b)                                                                 \
    do {                                                                                \
        const char *th_a_ = (a), *th_b_ = (b);                                          \
        if (!th_a_ || !th_b_ || strcmp(th_a_, th_b_) != 0)                              \
            TH_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, th_a_ ? th_a_ : "(null)",     \
                     th_b_ ? th_b_ : "(null)");                                          \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                     \
    do {                                                                                \
        const char *th_h_ = (hay), *th_n_ = (needle);                                   \
        if (!th_h_ || !strstr(th_h_, th_n_))                                            \
            TH_FAIL_("%s does not contain \"%s\"", #hay, th_n_);                        \
    } while (0)

/* Stops the case at once (for checks later code depends on). */
#define REQUIRE(cond)                                                                   \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            TH_FAIL_("REQUIRE(%s) failed", #cond);                                      \
            return;                                                                     \
        }                                                                               \
    } while (0)

static int th_run_one_(const struct th_case *c, int nofork, unsigned timeout)
{
    if (nofork) {
        th_failures = 0;
        c->fn();
        return th_failures == 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        alarm(timeout);
        th_failures = 0;
        c->fn();
        fflush(stdout);
        fflush(stderr);
        _exit(th_failures == 0 ? 0 : 1);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "  case %s killed by signal %d%s\n", c->name, WTERMSIG(st),
                WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
        return 0;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int th_main_(int argc, char **argv, const struct th_case *cases, size_t n)
{
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *only = argc > 1 ? argv[1] : NULL;
    int nofork = getenv("TH_NOFORK") && atoi(getenv("TH_NOFORK")) != 0;
    unsigned timeout = getenv("TH_TIMEOUT") ? (unsigned)atoi(getenv("TH_TIMEOUT")) : 120;
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, cases[i].name) != 0) continue;
        int ok = th_run_one_(&cases[i], nofork, timeout);
        printf("%s %s\n", ok ? "ok  " : "FAIL", cases[i].name);
        if (ok)
            passed++;
        else
            failed++;
    }
    printf("%s: %d passed, %d failed\n", prog, passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

#define TEST_MAIN(...)                                                                  \
    int main(int argc, char **argv)                                                     \
    {                                                                                   \
        static const struct th_case th_cases_[] = {__VA_ARGS__};                        \
        return th_main_(argc, argv, th_cases_, sizeof th_cases_ / sizeof th_cases_[0]); \
    }

#endif
