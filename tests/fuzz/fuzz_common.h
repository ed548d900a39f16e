/* Shared by the libFuzzer targets: the status check and sanitizer defaults. */
#ifndef PM_FUZZ_COMMON_H
#define PM_FUZZ_COMMON_H

#include <perfmetrics/perfmetrics.h>

/* Undefined behaviour inside the library (built with recoverable UBSan) must
 * stop the fuzzer too, not just print. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }

/* 1 if st is one of the codes of PM_STATUS_MAP. */
static inline int known_status(int st)
{
    switch (st) {
#define KNOWN_(name, value, text) case value:
        PM_STATUS_MAP(KNOWN_)
#undef KNOWN_
        return 1;
    default:
        return 0;
    }
}

#endif
