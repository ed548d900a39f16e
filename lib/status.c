/* Status codes to text, and the run-time version. */
#include "internal/pm_internal.h"

const char *pm_strerror(int status)
{
    switch (status) {
#define PM_STATUS_TEXT_(name, value, text)                                                  \
    case value:                                                                             \
        return text;
        PM_STATUS_MAP(PM_STATUS_TEXT_)
#undef PM_STATUS_TEXT_
    default:
        return "unknown status";
    }
}

const char *pm_status_name(int status)
{
    switch (status) {
#define PM_STATUS_NAME_(name, value, text)                                                  \
    case value:                                                                             \
        return "PM_" #name;
        PM_STATUS_MAP(PM_STATUS_NAME_)
#undef PM_STATUS_NAME_
    default:
        return "PM_UNKNOWN";
    }
}

unsigned pm_version(void) { return PM_VERSION_NUMBER; }

const char *pm_version_string(void) { return PM_VERSION_STRING; }
