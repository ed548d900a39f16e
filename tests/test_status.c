/* Status codes, pm_strerror, pm_status_name, versions. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

TEST(test_every_status_has_text_and_name)
{
#define XX(name, value, text)                                                                  \
    CHECK_STR(pm_strerror(value), text);                                                       \
    CHECK_STR(pm_status_name(value), "PM_" #name);                                             \
    CHECK_EQ_INT(PM_##name, value);
    PM_STATUS_MAP(XX)
#undef XX
}

TEST(test_unknown_status)
{
    CHECK_STR(pm_strerror(12345), "unknown status");
    CHECK_STR(pm_strerror(-999), "unknown status");
    CHECK_STR(pm_strerror(1), "unknown status");
    CHECK_STR(pm_status_name(-999), "PM_UNKNOWN");
    CHECK(pm_strerror(PM_STATUS_LAST_ - 1) != NULL);
}

TEST(test_codes_are_stable)
{
    /* Codes are never renumbered: these values are part of the ABI. */
    CHECK_EQ_INT(PM_OK, 0);
    CHECK_EQ_INT(PM_EINVAL, -1);
    CHECK_EQ_INT(PM_ENOMEM, -2);
    CHECK_EQ_INT(PM_EEXIST, -3);
    CHECK_EQ_INT(PM_ENOENT, -4);
    CHECK_EQ_INT(PM_EBADNAME, -5);
    CHECK_EQ_INT(PM_EBADLABEL, -6);
    CHECK_EQ_INT(PM_ELABELCOUNT, -7);
    CHECK_EQ_INT(PM_EUTF8, -8);
    CHECK_EQ_INT(PM_ETYPE, -9);
    CHECK_EQ_INT(PM_ERANGE, -10);
    CHECK_EQ_INT(PM_ESTATE, -11);
    CHECK_EQ_INT(PM_EIO, -12);
    CHECK_EQ_INT(PM_ECALLBACK, -13);
    CHECK_EQ_INT(PM_EPARSE, -14);
    CHECK_EQ_INT(PM_EUNSUPPORTED, -15);
    CHECK_EQ_INT(PM_ETHREAD, -16);
    CHECK_EQ_INT(PM_ETIMEDOUT, -17);
}

TEST(test_version)
{
    CHECK_EQ_INT(pm_version(), PM_VERSION_NUMBER);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", PM_VERSION_MAJOR, PM_VERSION_MINOR, PM_VERSION_PATCH);
    CHECK_STR(pm_version_string(), buf);
    CHECK_STR(pm_version_string(), PM_VERSION_STRING);
    CHECK(PM_VERSION_AT_LEAST(1, 0, 0));
    CHECK(!PM_VERSION_AT_LEAST(PM_VERSION_MAJOR + 1, 0, 0));
}

TEST(test_pm_free_null) { pm_free(NULL); }

TEST_MAIN(TH_CASE(test_every_status_has_text_and_name), TH_CASE(test_unknown_status),
          TH_CASE(test_codes_are_stable), TH_CASE(test_version), TH_CASE(test_pm_free_null))
