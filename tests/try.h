/* Error exits for the test programs that are not harness cases but run on
 * their own (tests/serve_fixture.c, tests/dump_exposition.c): fail() reports
 * a failed library call on stderr as "<program>: <what>: <message>" and
 * returns the exit status 1; TRY(expr) makes the calling function return
 * that when expr is not PM_OK. */
#ifndef PM_TEST_TRY_H
#define PM_TEST_TRY_H

#include <perfmetrics/perfmetrics.h>

#include <errno.h> /* program_invocation_short_name (_GNU_SOURCE) */
#include <stdio.h>

static int fail(const char *what, pm_status_t st)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, pm_strerror(st));
    return 1;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        pm_status_t st_ = (expr);                                                                  \
        if (st_ != PM_OK) return fail(#expr, st_);                                                 \
    } while (0)

#endif
