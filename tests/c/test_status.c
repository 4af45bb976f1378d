/* Status names and the thread-local last-error message (core/status.c). */
#include <pthread.h>

#include "test_util.h"

/* The ABI fixes these numbers (qc_core.h); the names must follow them. */
static const struct {
    qc_status status;
    int value;
    const char *name;
} statuses[] = {
    {QC_OK, 0, "QC_OK"},
    {QC_ERR_INVALID_ARG, 1, "QC_ERR_INVALID_ARG"},
    {QC_ERR_SHAPE, 2, "QC_ERR_SHAPE"},
    {QC_ERR_DTYPE, 3, "QC_ERR_DTYPE"},
    {QC_ERR_LAYOUT, 4, "QC_ERR_LAYOUT"},
    {QC_ERR_NUMERIC, 5, "QC_ERR_NUMERIC"},
    {QC_ERR_OUT_OF_MEMORY, 6, "QC_ERR_OUT_OF_MEMORY"},
    {QC_ERR_IO, 7, "QC_ERR_IO"},
    {QC_ERR_FORMAT, 8, "QC_ERR_FORMAT"},
    {QC_ERR_UNSUPPORTED, 9, "QC_ERR_UNSUPPORTED"},
    {QC_ERR_VERSION, 10, "QC_ERR_VERSION"},
    {QC_ERR_SINGULAR, 11, "QC_ERR_SINGULAR"},
    {QC_ERR_OVERFLOW, 12, "QC_ERR_OVERFLOW"},
    {QC_ERR_CANCELLED, 13, "QC_ERR_CANCELLED"},
    {QC_ERR_INTERNAL, 14, "QC_ERR_INTERNAL"},
};

Test(status, values_and_names_are_fixed)
{
    for (size_t i = 0; i < TU_COUNT(statuses); i++) {
        cr_assert_eq((int)statuses[i].status, statuses[i].value, "%s", statuses[i].name);
        cr_assert_str_eq(qc_status_string(statuses[i].status), statuses[i].name);
    }
}

Test(status, unknown_values_have_a_static_name)
{
    cr_assert_str_eq(qc_status_string((qc_status)15), "unknown status");
    cr_assert_str_eq(qc_status_string((qc_status)-1), "unknown status");
}

Test(status, last_error_is_set_by_a_failure_and_cleared)
{
    qc_clear_error();
    cr_assert_str_eq(qc_last_error(), "");
    cr_assert_eq(qc_tensor_check(NULL, "weights"), QC_ERR_INVALID_ARG);
    cr_assert_str_eq(qc_last_error(), "qc_tensor_check: argument 'weights' is NULL");
    qc_clear_error();
    cr_assert_str_eq(qc_last_error(), "");
}

Test(status, a_success_keeps_the_previous_message)
{
    /* Only failures write the message: a later success must not erase the diagnosis. */
    cr_assert_eq(qc_tensor_check(NULL, "a"), QC_ERR_INVALID_ARG);
    float v = 1.0f;
    qc_tensor t = tu_scalar(&v, QC_DT_F32);
    cr_assert_eq(qc_tensor_check(&t, "b"), QC_OK);
    cr_assert_str_eq(qc_last_error(), "qc_tensor_check: argument 'a' is NULL");
}

Test(status, long_messages_are_truncated_and_terminated)
{
    char name[2000];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    cr_assert_eq(qc_tensor_check(NULL, name), QC_ERR_INVALID_ARG);
    const char *msg = qc_last_error();
    size_t len = strlen(msg);
    cr_assert(len > 100 && len < sizeof name, "length %zu", len);
    cr_assert(strncmp(msg, "qc_tensor_check: argument 'nnn", 30) == 0, "%s", msg);
}

static void *fail_in_thread(void *arg)
{
    (void)arg;
    qc_tensor_check(NULL, "other_thread");
    return NULL;
}

Test(status, last_error_is_per_thread)
{
    cr_assert_eq(qc_tensor_check(NULL, "main_thread"), QC_ERR_INVALID_ARG);
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, fail_in_thread, NULL), 0);
    cr_assert_eq(pthread_join(thread, NULL), 0);
    cr_assert_str_eq(qc_last_error(), "qc_tensor_check: argument 'main_thread' is NULL");
}
