/* The run-time version (core/version.c) against the macros of the headers compiled here. */
#include "test_util.h"

Test(version, run_time_matches_headers)
{
    cr_assert_eq(qc_version_number(), (unsigned)QC_VERSION_NUMBER);
    cr_assert_str_eq(qc_version_string(), QC_VERSION_STRING);
}

Test(version, number_encodes_the_string)
{
    unsigned major, minor, patch;
    char rest;
    cr_assert_eq(sscanf(qc_version_string(), "%u.%u.%u%c", &major, &minor, &patch, &rest), 3,
                 "'%s' is not major.minor.patch", qc_version_string());
    cr_assert_eq(qc_version_number(), major * 10000 + minor * 100 + patch);
    cr_assert_eq(major, (unsigned)QC_VERSION_MAJOR);
    cr_assert_eq(minor, (unsigned)QC_VERSION_MINOR);
    cr_assert_eq(patch, (unsigned)QC_VERSION_PATCH);
}
