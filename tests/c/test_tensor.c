/* The tensor view (core/tensor.c): construction, validation and sizes. */
#include "test_util.h"

/* A non-NULL address for views that are checked but never read. */
static _Alignas(16) char fake_storage[1];
#define FAKE_DATA ((void *)fake_storage)

static size_t nbytes_of(qc_dtype dtype, int ndim, const int64_t *dims)
{
    qc_tensor t = tu_tensor(FAKE_DATA, dtype, ndim, dims);
    size_t n = 0;
    TU_EXPECT_OK(qc_tensor_nbytes(&n, &t));
    return n;
}

Test(tensor, init_fills_c_contiguous_strides)
{
    int64_t dims[3] = {2, 3, 4};
    qc_tensor t = tu_tensor(FAKE_DATA, QC_DT_F32, 3, dims);
    cr_assert_eq(t.data, FAKE_DATA);
    cr_assert_eq(t.dtype, QC_DT_F32);
    cr_assert_eq(t.ndim, 3);
    static const int64_t strides[3] = {12, 4, 1};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(t.dims[i], dims[i]);
        cr_assert_eq(t.strides[i], strides[i]);
    }
    for (int i = 3; i < QC_MAX_DIMS; i++) cr_assert(t.dims[i] == 0 && t.strides[i] == 0, "unused entries are 0");
    cr_assert_eq(qc_tensor_numel(&t), 24);
    cr_assert(qc_tensor_is_contiguous(&t));
}

Test(tensor, init_keeps_given_strides)
{
    int64_t dims[2] = {3, 2}, strides[2] = {1, 3}; /* a transposed [2, 3] */
    qc_tensor t;
    TU_EXPECT_OK(qc_tensor_init(&t, FAKE_DATA, QC_DT_F64, 2, dims, strides));
    cr_assert(t.strides[0] == 1 && t.strides[1] == 3);
    cr_assert_not(qc_tensor_is_contiguous(&t));
    TU_EXPECT_OK(qc_tensor_check(&t, "t"));
}

Test(tensor, scalar_has_one_element)
{
    float v = 2.0f;
    qc_tensor t = tu_scalar(&v, QC_DT_F32);
    cr_assert_eq(t.ndim, 0);
    cr_assert_eq(qc_tensor_numel(&t), 1);
    cr_assert(qc_tensor_is_contiguous(&t));
    cr_assert_eq(nbytes_of(QC_DT_F32, 0, NULL), 4);
}

Test(tensor, numel_of_null_is_minus_one)
{
    cr_assert_eq(qc_tensor_numel(NULL), -1);
    cr_assert_not(qc_tensor_is_contiguous(NULL));
}

Test(tensor, contiguity_ignores_unit_and_empty_extents)
{
    qc_tensor t;
    int64_t unit_dims[3] = {1, 3, 1}, odd_strides[3] = {99, 1, 42};
    TU_EXPECT_OK(qc_tensor_init(&t, FAKE_DATA, QC_DT_I8, 3, unit_dims, odd_strides));
    cr_assert(qc_tensor_is_contiguous(&t), "strides of extent-1 dims do not matter");
    int64_t empty_dims[2] = {0, 3}, any_strides[2] = {7, 5};
    TU_EXPECT_OK(qc_tensor_init(&t, NULL, QC_DT_I8, 2, empty_dims, any_strides));
    cr_assert(qc_tensor_is_contiguous(&t), "an empty tensor is contiguous");
    int64_t dims[2] = {2, 3}, padded[2] = {4, 1}; /* rows padded to 4 */
    TU_EXPECT_OK(qc_tensor_init(&t, FAKE_DATA, QC_DT_I8, 2, dims, padded));
    cr_assert_not(qc_tensor_is_contiguous(&t));
}

Test(tensor, nbytes_per_dtype)
{
    static const struct {
        qc_dtype dtype;
        size_t bytes_of_5, bits;
        const char *name;
    } cases[] = {
        {QC_DT_F32, 20, 32, "f32"}, {QC_DT_F64, 40, 64, "f64"},  {QC_DT_I8, 5, 8, "i8"},
        {QC_DT_U8, 5, 8, "u8"},     {QC_DT_I16, 10, 16, "i16"},  {QC_DT_I32, 20, 32, "i32"},
        {QC_DT_I64, 40, 64, "i64"}, {QC_DT_INT4, 3, 4, "int4"}, {QC_DT_UINT4, 3, 4, "uint4"},
    };
    int64_t five = 5;
    for (size_t i = 0; i < TU_COUNT(cases); i++) {
        cr_assert_eq(nbytes_of(cases[i].dtype, 1, &five), cases[i].bytes_of_5, "%s", cases[i].name);
        cr_assert_eq((size_t)qc_dtype_bits(cases[i].dtype), cases[i].bits, "%s", cases[i].name);
        cr_assert_str_eq(qc_dtype_string(cases[i].dtype), cases[i].name);
    }
}

Test(tensor, nbytes_of_packed_4_bit_rounds_up)
{
    for (int64_t n = 0; n <= 9; n++) {
        size_t want = (size_t)(n + 1) / 2;
        cr_assert_eq(nbytes_of(QC_DT_INT4, 1, &n), want, "int4[%lld]", (long long)n);
        cr_assert_eq(nbytes_of(QC_DT_UINT4, 1, &n), want, "uint4[%lld]", (long long)n);
    }
    int64_t dims[2] = {3, 3};
    cr_assert_eq(nbytes_of(QC_DT_INT4, 2, dims), 5, "9 nibbles in 5 bytes");
}

Test(tensor, nbytes_of_huge_tensors_is_exact)
{
    /* Byte extents that fit in int64 are valid even where the bit count n * bits exceeds 64 bits. */
    int64_t n59 = (int64_t)1 << 59, n60m1 = ((int64_t)1 << 60) - 1;
    cr_assert_eq(nbytes_of(QC_DT_F32, 1, &n59), (size_t)1 << 61);
    cr_assert_eq(nbytes_of(QC_DT_I64, 1, &n60m1), (((size_t)1 << 60) - 1) * 8);
    cr_assert_eq(nbytes_of(QC_DT_INT4, 1, &n59), (size_t)1 << 58);
}

Test(tensor, unknown_dtypes_have_no_size_or_name)
{
    cr_assert_eq(qc_dtype_bits((qc_dtype)0), 0);
    cr_assert_eq(qc_dtype_bits((qc_dtype)10), 0);
    cr_assert_str_eq(qc_dtype_string((qc_dtype)0), "unknown");
    cr_assert_str_eq(qc_dtype_string((qc_dtype)10), "unknown");
}

Test(tensor, element_count_overflow)
{
    qc_tensor t;
    int64_t two_32[2] = {(int64_t)1 << 32, (int64_t)1 << 32};
    TU_EXPECT_FAIL(qc_tensor_init(&t, FAKE_DATA, QC_DT_I8, 2, two_32, NULL), QC_ERR_OVERFLOW, "qc_tensor_init", "out");
    int64_t max_by_two[2] = {INT64_MAX, 2};
    TU_EXPECT_FAIL(qc_tensor_init(&t, FAKE_DATA, QC_DT_I8, 2, max_by_two, NULL), QC_ERR_OVERFLOW, "qc_tensor_init",
                   "out");
    int64_t with_zero[3] = {INT64_MAX, 0, INT64_MAX};
    TU_EXPECT_OK(qc_tensor_init(&t, NULL, QC_DT_I8, 3, with_zero, NULL)); /* 0 elements: no overflow */
    cr_assert_eq(qc_tensor_numel(&t), 0);
}

Test(tensor, byte_extent_overflow)
{
    /* 2^60 elements of 8 bytes is 2^63 bytes: one past int64. */
    qc_tensor t;
    int64_t n = (int64_t)1 << 60;
    TU_EXPECT_FAIL(qc_tensor_init(&t, FAKE_DATA, QC_DT_F64, 1, &n, NULL), QC_ERR_OVERFLOW, "qc_tensor_init", "out");
}

Test(tensor, negative_dims_are_invalid)
{
    qc_tensor t;
    int64_t dims[3] = {2, -1, 3};
    TU_EXPECT_FAIL(qc_tensor_init(&t, FAKE_DATA, QC_DT_F32, 3, dims, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init", "out");
    cr_assert(strstr(qc_last_error(), "dims[1]") != NULL, "%s", qc_last_error());
    int64_t zero_then_negative[2] = {0, -5}; /* the zero must not hide the negative extent */
    TU_EXPECT_FAIL(qc_tensor_init(&t, NULL, QC_DT_F32, 2, zero_then_negative, NULL), QC_ERR_INVALID_ARG,
                   "qc_tensor_init", "out");
}

Test(tensor, null_data_only_without_elements)
{
    qc_tensor t;
    int64_t dims[2] = {2, 3}, empty[2] = {2, 0};
    TU_EXPECT_FAIL(qc_tensor_init(&t, NULL, QC_DT_F32, 2, dims, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init", "out");
    TU_EXPECT_FAIL(qc_tensor_init(&t, NULL, QC_DT_F32, 0, NULL, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init", "out");
    TU_EXPECT_OK(qc_tensor_init(&t, NULL, QC_DT_F32, 2, empty, NULL));
    size_t bytes = 99;
    TU_EXPECT_OK(qc_tensor_nbytes(&bytes, &t));
    cr_assert_eq(bytes, 0);
}

Test(tensor, packed_4_bit_must_be_contiguous)
{
    qc_tensor t;
    int64_t dims[2] = {2, 4}, strides[2] = {1, 2};
    /* qc_tensor.h lists this under QC_ERR_INVALID_ARG for qc_tensor_init; the library reports
     * QC_ERR_LAYOUT, the status qc_core.h defines for "not C-contiguous" (reported upstream). */
    TU_EXPECT_FAIL(qc_tensor_init(&t, FAKE_DATA, QC_DT_INT4, 2, dims, strides), QC_ERR_LAYOUT, "qc_tensor_init",
                   "out");
    TU_EXPECT_OK(qc_tensor_init(&t, FAKE_DATA, QC_DT_I8, 2, dims, strides));
}

Test(tensor, data_must_be_aligned_to_its_element_size)
{
    _Alignas(8) unsigned char bytes[64] = {0};
    qc_tensor t;
    int64_t dims[1] = {4};
    const struct { qc_dtype dtype; size_t size; } cases[] = {
        {QC_DT_F32, 4}, {QC_DT_F64, 8}, {QC_DT_I16, 2}, {QC_DT_I32, 4}, {QC_DT_I64, 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        TU_EXPECT_OK(qc_tensor_init(&t, bytes + cases[c].size, cases[c].dtype, 1, dims, NULL));
        for (size_t offset = 1; offset < cases[c].size; offset++)
            TU_EXPECT_FAIL(qc_tensor_init(&t, bytes + offset, cases[c].dtype, 1, dims, NULL), QC_ERR_LAYOUT,
                           "qc_tensor_init", "out");
    }
    /* bytes (and packed nibbles) have no alignment to keep; an empty tensor reads nothing */
    TU_EXPECT_OK(qc_tensor_init(&t, bytes + 1, QC_DT_I8, 1, dims, NULL));
    TU_EXPECT_OK(qc_tensor_init(&t, bytes + 1, QC_DT_INT4, 1, dims, NULL));
    int64_t empty[1] = {0};
    TU_EXPECT_OK(qc_tensor_init(&t, bytes + 1, QC_DT_F32, 1, empty, NULL));
}

Test(tensor, check_applies_the_same_rules_to_hand_made_views)
{
    float v[6] = {0};
    qc_tensor t = {.data = v, .dtype = QC_DT_F32, .ndim = 2, .dims = {2, 3}, .strides = {3, 1}};
    TU_EXPECT_OK(qc_tensor_check(&t, "w"));
    t.ndim = QC_MAX_DIMS + 1;
    TU_EXPECT_FAIL(qc_tensor_check(&t, "w"), QC_ERR_INVALID_ARG, "qc_tensor_check", "w");
    t.ndim = -1;
    TU_EXPECT_FAIL(qc_tensor_check(&t, "w"), QC_ERR_INVALID_ARG, "qc_tensor_check", "w");
    t.ndim = 2;
    t.dtype = (qc_dtype)42;
    TU_EXPECT_FAIL(qc_tensor_check(&t, "w"), QC_ERR_DTYPE, "qc_tensor_check", "w");
    t.dtype = QC_DT_F32;
    t.data = NULL;
    TU_EXPECT_FAIL(qc_tensor_check(&t, NULL), QC_ERR_INVALID_ARG, "qc_tensor_check", "tensor");
}

Test(tensor, max_rank_is_accepted)
{
    int64_t dims[QC_MAX_DIMS];
    for (int i = 0; i < QC_MAX_DIMS; i++) dims[i] = 2;
    qc_tensor t = tu_tensor(FAKE_DATA, QC_DT_U8, QC_MAX_DIMS, dims);
    cr_assert_eq(qc_tensor_numel(&t), 256);
    cr_assert_eq(t.strides[0], 128);
}
