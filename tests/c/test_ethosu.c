/* The Ethos-U API's C contract: each bad argument gives its documented status and a message naming it,
 * outputs stay untouched on failure, and exact identities hold (the format's fixed test vector, round
 * trips, the bias layouts written out byte by byte). Byte-identity with Vela is tested in
 * tests/python/test_ethosu_*.py, where Vela runs. */
#include "test_util.h"

/* The last error contains `text`. */
static void expect_message(const char *text)
{
    cr_assert(strstr(qc_last_error(), text) != NULL, "message '%s' should contain '%s'", qc_last_error(), text);
}

/* Vela's own test vector and its stream (Vela's test_mlw_codec.py). */
static const int16_t vela_vector[39] = {0, 2, 3, 0, -1, -2, -3, 0, 0, 0, 1, -250, 240, 0, 2, 3, 0, -1, -2, -3,
                                        0, 0, 0, 1, -250, 240, 0, 2, 3, 0, -1, -2, -3, 0, 0, 0, 1, -250, 240};
static const uint8_t vela_stream[32] = {0xb8, 0x00, 0x5c, 0x71, 0x5e, 0x1f, 0xfc, 0x01, 0x03, 0x05, 0x08,
                                        0x0c, 0x10, 0x90, 0x38, 0x12, 0xd7, 0x99, 0x3a, 0xd2, 0x99, 0x24,
                                        0xae, 0x23, 0x9d, 0xa9, 0x23, 0x00, 0xf0, 0xff, 0xff, 0xff};

Test(ethosu, vela_vector_encodes_and_decodes)
{
    uint8_t *s = NULL;
    size_t size = 0;
    TU_EXPECT_OK(qc_ethosu_encode(&s, &size, vela_vector, 39));
    cr_assert_eq(size, 32);
    cr_assert_arr_eq(s, vela_stream, 32);
    int16_t *w = NULL;
    size_t n = 0;
    TU_EXPECT_OK(qc_ethosu_decode(&w, &n, s, size));
    cr_assert_eq(n, 39);
    cr_assert_arr_eq(w, vela_vector, sizeof vela_vector);
    qc_ethosu_free(s);
    qc_ethosu_free(w);
}

Test(ethosu, encode_errors_name_the_argument)
{
    uint8_t *s = (uint8_t *)1;
    size_t size = 7;
    int16_t w[5] = {0, 1, 2, 256, 3};
    TU_EXPECT_FAIL(qc_ethosu_encode(NULL, &size, w, 5), QC_ERR_INVALID_ARG, "qc_ethosu_encode", "out");
    TU_EXPECT_FAIL(qc_ethosu_encode(&s, NULL, w, 5), QC_ERR_INVALID_ARG, "qc_ethosu_encode", "out_size");
    TU_EXPECT_FAIL(qc_ethosu_encode(&s, &size, NULL, 5), QC_ERR_INVALID_ARG, "qc_ethosu_encode", "weights");
    TU_EXPECT_FAIL(qc_ethosu_encode(&s, &size, w, 0), QC_ERR_INVALID_ARG, "qc_ethosu_encode", "n");
    TU_EXPECT_FAIL(qc_ethosu_encode(&s, &size, w, 5), QC_ERR_INVALID_ARG, "qc_ethosu_encode", "weights");
    expect_message("element 3 is 256, outside -255..255");
    w[3] = -256;
    TU_EXPECT_FAIL(qc_ethosu_encode(&s, &size, w, 5), QC_ERR_INVALID_ARG, "qc_ethosu_encode", "weights");
    expect_message("element 3 is -256");
    cr_assert_eq(s, (uint8_t *)1, "the output must stay untouched on failure");
    cr_assert_eq(size, 7);
}

Test(ethosu, decode_errors_name_the_problem)
{
    int16_t *w = (int16_t *)1;
    size_t n = 7;
    TU_EXPECT_FAIL(qc_ethosu_decode(NULL, &n, vela_stream, 32), QC_ERR_INVALID_ARG, "qc_ethosu_decode", "out");
    TU_EXPECT_FAIL(qc_ethosu_decode(&w, NULL, vela_stream, 32), QC_ERR_INVALID_ARG, "qc_ethosu_decode",
                   "out_count");
    TU_EXPECT_FAIL(qc_ethosu_decode(&w, &n, NULL, 32), QC_ERR_INVALID_ARG, "qc_ethosu_decode", "stream");
    TU_EXPECT_FAIL(qc_ethosu_decode(&w, &n, vela_stream, 0), QC_ERR_FORMAT, "qc_ethosu_decode", "size");
    /* Every cut inside the payload (the last 3 bytes are padding) fails: no end marker, or a cut slice. */
    for (size_t cut = 1; cut < 29; cut++) {
        TU_EXPECT_FAIL(qc_ethosu_decode(&w, &n, vela_stream, cut), QC_ERR_FORMAT, "qc_ethosu_decode", "stream");
        expect_message("ends");
    }
    uint8_t reserved[16] = {0x04};  /* ZDIV = 4 */
    TU_EXPECT_FAIL(qc_ethosu_decode(&w, &n, reserved, 16), QC_ERR_FORMAT, "qc_ethosu_decode", "stream");
    expect_message("reserved ZDIV value 4");
    uint8_t no_palette[16] = {0x06};  /* ZDIV = 6, NEWPAL = 0 in the first slice */
    TU_EXPECT_FAIL(qc_ethosu_decode(&w, &n, no_palette, 16), QC_ERR_FORMAT, "qc_ethosu_decode", "stream");
    expect_message("none was defined");
    cr_assert_eq(w, (int16_t *)1, "the output must stay untouched on failure");
    cr_assert_eq(n, 7);
}

Test(ethosu, long_streams_round_trip)
{
    /* 70,000 values: three slices at least, a palette that drifts every 1,000 values. */
    size_t n = 70000;
    int16_t *w = malloc(n * sizeof *w);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        int width = 1 + (int)((i / 1000) % 7) * 36;
        w[i] = (int16_t)((int)(x >> 16) % (2 * width + 1) - width);
        if ((x >> 8) % 3 == 0) w[i] = 0;
    }
    uint8_t *s = NULL;
    size_t size = 0;
    TU_EXPECT_OK(qc_ethosu_encode(&s, &size, w, n));
    cr_assert_eq(size % 16, 0);
    int16_t *back = NULL;
    size_t m = 0;
    TU_EXPECT_OK(qc_ethosu_decode(&back, &m, s, size));
    cr_assert_eq(m, n);
    cr_assert_arr_eq(back, w, n * sizeof *w);
    qc_ethosu_free(s);
    qc_ethosu_free(back);
    free(w);
}

Test(ethosu, reorder_errors_name_the_option)
{
    int16_t w[2 * 3 * 3 * 4] = {0};
    int64_t shape[4] = {2, 3, 3, 4};
    qc_ethosu_reorder_options o = QC_ETHOSU_REORDER_OPTIONS_INIT;
    int16_t *out = NULL;
    size_t n = 0;
    TU_EXPECT_OK(qc_ethosu_reorder(&out, &n, w, shape, &o));
    qc_ethosu_free(out);
    o.part_kernel = 1;
    o.depthwise = 1;
    TU_EXPECT_FAIL(qc_ethosu_reorder(&out, &n, w, shape, &o), QC_ERR_INVALID_ARG, "qc_ethosu_reorder",
                   "depthwise");
    o = (qc_ethosu_reorder_options)QC_ETHOSU_REORDER_OPTIONS_INIT;
    o.ifm_bits = 32;
    TU_EXPECT_FAIL(qc_ethosu_reorder(&out, &n, w, shape, &o), QC_ERR_INVALID_ARG, "qc_ethosu_reorder", "ifm_bits");
    o = (qc_ethosu_reorder_options)QC_ETHOSU_REORDER_OPTIONS_INIT;
    o.ofm_block_depth = 0;
    TU_EXPECT_FAIL(qc_ethosu_reorder(&out, &n, w, shape, &o), QC_ERR_INVALID_ARG, "qc_ethosu_reorder",
                   "ofm_block_depth");
    o = (qc_ethosu_reorder_options)QC_ETHOSU_REORDER_OPTIONS_INIT;
    o.version = 2;
    TU_EXPECT_FAIL(qc_ethosu_reorder(&out, &n, w, shape, &o), QC_ERR_VERSION, "qc_ethosu_reorder", NULL);
    expect_message("version 2");
    TU_EXPECT_FAIL(qc_ethosu_reorder_options_init(&o, 0), QC_ERR_VERSION, "qc_ethosu_reorder_options_init", NULL);
    expect_message("qc_ethosu_reorder_options");
    o = (qc_ethosu_reorder_options)QC_ETHOSU_REORDER_OPTIONS_INIT;
    int64_t bad_shape[4] = {2, 0, 3, 4};
    TU_EXPECT_FAIL(qc_ethosu_reorder(&out, &n, w, bad_shape, &o), QC_ERR_SHAPE, "qc_ethosu_reorder", "shape");
    expect_message("H = 0");
    w[5] = 300;
    uint8_t *s = NULL;
    size_t size = 0;
    TU_EXPECT_FAIL(qc_ethosu_reorder_encode(&s, &size, NULL, w, shape, &o), QC_ERR_INVALID_ARG,
                   "qc_ethosu_reorder_encode", "ohwi");
    expect_message("element 5 is 300");
}

Test(ethosu, depth_first_order_of_a_1x1_kernel)
{
    /* O = 2, I = 3, 1x1, micro-blocks 8: each OFM channel's 8-deep IFM micro-block, zero-padded to the
     * 32-deep IFM block (4 micro-blocks), for 8 OFM channels (6 padding). */
    int16_t w[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[4] = {2, 1, 1, 3};
    qc_ethosu_reorder_options o = QC_ETHOSU_REORDER_OPTIONS_INIT;
    int16_t *out = NULL;
    size_t n = 0;
    TU_EXPECT_OK(qc_ethosu_reorder(&out, &n, w, shape, &o));
    cr_assert_eq(n, 4 * 8 * 8);
    for (size_t i = 0; i < n; i++) {
        size_t ublk = i / 64, oc = (i / 8) % 8, ic = ublk * 8 + i % 8;
        int16_t expect = oc < 2 && ic < 3 ? w[oc * 3 + ic] : 0;
        cr_assert_eq(out[i], expect, "position %zu", i);
    }
    qc_ethosu_free(out);
}

Test(ethosu, scale_and_bias_entries)
{
    int64_t scale;
    int32_t shift;
    TU_EXPECT_OK(qc_ethosu_quantise_scale(&scale, &shift, 0.5));   /* 0.5 = 2^30 / 2^31 */
    cr_assert_eq(scale, (int64_t)1 << 30);
    cr_assert_eq(shift, 31);
    TU_EXPECT_OK(qc_ethosu_quantise_scale(&scale, &shift, 1e30));  /* shift < 0: Vela's (0, 16) */
    cr_assert_eq(scale, 0);
    cr_assert_eq(shift, 16);
    TU_EXPECT_FAIL(qc_ethosu_quantise_scale(&scale, &shift, NAN), QC_ERR_NUMERIC, "qc_ethosu_quantise_scale", "s");
    TU_EXPECT_FAIL(qc_ethosu_reduced_quantise_scale(&scale, &shift, INFINITY), QC_ERR_NUMERIC,
                   "qc_ethosu_reduced_quantise_scale", "s");

    uint8_t e[10];
    TU_EXPECT_OK(qc_ethosu_pack_bias(e, -2, 0x89abcdefLL, 45));
    const uint8_t expect[10] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xef, 0xcd, 0xab, 0x89, 45};
    cr_assert_arr_eq(e, expect, 10);
    TU_EXPECT_FAIL(qc_ethosu_pack_bias(e, (int64_t)1 << 39, 0, 0), QC_ERR_INVALID_ARG, "qc_ethosu_pack_bias", "bias");
    TU_EXPECT_FAIL(qc_ethosu_pack_bias(e, 0, (int64_t)1 << 32, 0), QC_ERR_INVALID_ARG, "qc_ethosu_pack_bias",
                   "scale");
    TU_EXPECT_FAIL(qc_ethosu_pack_bias(e, 0, 0, 64), QC_ERR_INVALID_ARG, "qc_ethosu_pack_bias", "shift");

    TU_EXPECT_OK(qc_ethosu85_pack_bias(e, -3, 0x12345678, 33, 32));
    const uint8_t acc32[10] = {0xfd, 0xff, 0xff, 0xff, 0x78, 0x56, 0x34, 0x12, 33, 0};
    cr_assert_arr_eq(e, acc32, 10);
    TU_EXPECT_OK(qc_ethosu85_pack_bias(e, ((int64_t)1 << 47) - 1, 0x7fff, 7, 48));
    const uint8_t acc48[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0x7f, 7, 0};
    cr_assert_arr_eq(e, acc48, 10);
    TU_EXPECT_FAIL(qc_ethosu85_pack_bias(e, 0, 1 << 15, 0, 48), QC_ERR_INVALID_ARG, "qc_ethosu85_pack_bias", "scale");
    TU_EXPECT_FAIL(qc_ethosu85_pack_bias(e, 0, 0, 0, 40), QC_ERR_INVALID_ARG, "qc_ethosu85_pack_bias",
                   "accumulator_bits");
}

Test(ethosu, configurations)
{
    qc_ethosu_config_info info;
    TU_EXPECT_OK(qc_ethosu_config_get(&info, QC_ETHOSU_U65_512));
    cr_assert_eq(info.cores, 2);
    cr_assert_eq(info.macs_per_cycle, 512);
    TU_EXPECT_OK(qc_ethosu_config_get(&info, QC_ETHOSU_U55_32));
    cr_assert_eq(info.ofm_ublock_depth, 4);
    cr_assert_str_eq(qc_ethosu_config_string(QC_ETHOSU_U55_128), "ethos-u55-128");
    TU_EXPECT_FAIL(qc_ethosu_config_get(&info, (qc_ethosu_config)0), QC_ERR_INVALID_ARG, "qc_ethosu_config_get",
                   "config");
    int pk = -1;
    TU_EXPECT_OK(qc_ethosu_part_kernel_first(&pk, 3, 3, 3, 8));  /* IFM depth <= 8 */
    cr_assert_eq(pk, 1);
    TU_EXPECT_OK(qc_ethosu_part_kernel_first(&pk, 64, 1, 1, 8)); /* 1x1 wastes 3 of 4 elements */
    cr_assert_eq(pk, 0);
    TU_EXPECT_FAIL(qc_ethosu_part_kernel_first(&pk, 64, 1, 1, 4), QC_ERR_INVALID_ARG, "qc_ethosu_part_kernel_first",
                   "ifm_bits");
}

Test(ethosu, layer_errors_and_layout)
{
    int16_t w[4 * 1 * 1 * 8] = {0};
    for (int i = 0; i < 32; i++) w[i] = (int16_t)(i - 16);
    int64_t shape[4] = {4, 1, 1, 8}, bias[4] = {1, -2, 3, -4}, scale[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30};
    int32_t shift[4] = {31, 31, 31, 64};
    qc_ethosu_layer_options o = QC_ETHOSU_LAYER_OPTIONS_INIT;
    qc_ethosu_layer *l = NULL;
    TU_EXPECT_FAIL(qc_ethosu_pack_layer(NULL, w, shape, bias, scale, shift, &o), QC_ERR_INVALID_ARG,
                   "qc_ethosu_pack_layer", "out");
    TU_EXPECT_FAIL(qc_ethosu_pack_layer(&l, w, shape, bias, NULL, shift, &o), QC_ERR_INVALID_ARG,
                   "qc_ethosu_pack_layer", "scale");
    TU_EXPECT_FAIL(qc_ethosu_pack_layer(&l, w, shape, bias, scale, shift, &o), QC_ERR_INVALID_ARG,
                   "qc_ethosu_pack_layer", "shift");
    expect_message("channel 3 is 64");
    shift[3] = 31;
    o.traversal = 3;
    TU_EXPECT_FAIL(qc_ethosu_pack_layer(&l, w, shape, bias, scale, shift, &o), QC_ERR_INVALID_ARG,
                   "qc_ethosu_pack_layer", "traversal");
    o = (qc_ethosu_layer_options)QC_ETHOSU_LAYER_OPTIONS_INIT;
    o.ofm_block_depth = 0;
    TU_EXPECT_FAIL(qc_ethosu_pack_layer(&l, w, shape, bias, scale, shift, &o), QC_ERR_INVALID_ARG,
                   "qc_ethosu_pack_layer", "ofm_block_depth");
    cr_assert_null(l, "the output must stay untouched on failure");

    /* One brick, one core: 4 entries (40 bytes, padded to 48), then the weights. */
    o = (qc_ethosu_layer_options)QC_ETHOSU_LAYER_OPTIONS_INIT;
    TU_EXPECT_OK(qc_ethosu_pack_layer(&l, w, shape, bias, scale, shift, &o));
    const uint8_t *data;
    size_t size, count;
    const qc_ethosu_range *r;
    TU_EXPECT_OK(qc_ethosu_layer_stream(&data, &size, l));
    TU_EXPECT_OK(qc_ethosu_layer_ranges(&r, &count, l));
    cr_assert_eq(count, 1);
    cr_assert_eq(r[0].scale_bytes, 40);
    cr_assert_eq(r[0].weight_offset, 48);
    cr_assert_eq((size_t)(r[0].weight_offset + r[0].weight_bytes), size);
    uint8_t entry[10];
    TU_EXPECT_OK(qc_ethosu_pack_bias(entry, -2, 1 << 30, 31));
    cr_assert_arr_eq(data + 10, entry, 10);
    for (int i = 40; i < 48; i++) cr_assert_eq(data[i], 0);
    qc_ethosu_layer_free(l);
    qc_ethosu_layer_free(NULL);
}
