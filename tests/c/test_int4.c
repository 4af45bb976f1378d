/* 4-bit packing (quant/int4.c) as ONNX stores INT4/UINT4: two per byte, the first in the low nibble. */
#include "test_util.h"

Test(int4, pack_signed_hand_example)
{
    /* 1 -> 0x1, -1 -> 0xF, 7 -> 0x7, -8 -> 0x8, 0 -> 0x0; pairs (low, high). */
    const int8_t values[5] = {1, -1, 7, -8, 0};
    uint8_t out[3] = {0xAA, 0xAA, 0xAA};
    TU_EXPECT_OK(qc_pack_int4(out, values, 5, 1));
    cr_assert(out[0] == 0xF1 && out[1] == 0x87 && out[2] == 0x00, "got %02x %02x %02x", out[0], out[1], out[2]);
}

Test(int4, pack_unsigned_hand_example)
{
    const int8_t values[4] = {15, 0, 3, 12};
    uint8_t out[2];
    TU_EXPECT_OK(qc_pack_int4(out, values, 4, 0));
    cr_assert(out[0] == 0x0F && out[1] == 0xC3, "got %02x %02x", out[0], out[1]);
}

Test(int4, odd_count_leaves_the_last_high_nibble_zero)
{
    const int8_t values[3] = {-2, 5, -7};
    uint8_t out[3] = {0xFF, 0xFF, 0xFF};
    TU_EXPECT_OK(qc_pack_int4(out, values, 3, 1));
    cr_assert(out[0] == 0x5E && out[1] == 0x09, "got %02x %02x", out[0], out[1]);
    cr_assert_eq(out[2], 0xFF, "ceil(3 / 2) = 2 bytes written, no more");
}

Test(int4, unpack_sign_extends_only_when_signed)
{
    const uint8_t packed[2] = {0x8F, 0x07};
    int8_t s[3], u[3];
    TU_EXPECT_OK(qc_unpack_int4(s, packed, 3, 1));
    TU_EXPECT_OK(qc_unpack_int4(u, packed, 3, 0));
    cr_assert(s[0] == -1 && s[1] == -8 && s[2] == 7, "signed: %d %d %d", s[0], s[1], s[2]);
    cr_assert(u[0] == 15 && u[1] == 8 && u[2] == 7, "unsigned: %d %d %d", u[0], u[1], u[2]);
}

/* Every byte value unpacks to two nibbles that pack back to the same byte. */
static void check_every_byte_round_trips(int is_signed)
{
    uint8_t bytes[256], again[256];
    int8_t values[512];
    for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)i;
    TU_EXPECT_OK(qc_unpack_int4(values, bytes, 512, is_signed));
    for (int i = 0; i < 512; i++) {
        int nibble = (i % 2) ? (i / 2) >> 4 : (i / 2) & 0xF;
        int want = is_signed && nibble >= 8 ? nibble - 16 : nibble;
        cr_assert_eq(values[i], want, "value %d", i);
    }
    TU_EXPECT_OK(qc_pack_int4(again, values, 512, is_signed));
    tu_assert_same_bytes(again, bytes, 256, is_signed ? "signed" : "unsigned");
}

Test(int4, every_byte_round_trips)
{
    check_every_byte_round_trips(1);
    check_every_byte_round_trips(0);
}

Test(int4, empty_needs_no_buffers)
{
    TU_EXPECT_OK(qc_pack_int4(NULL, NULL, 0, 1));
    TU_EXPECT_OK(qc_unpack_int4(NULL, NULL, 0, 0));
}

Test(int4, range_depends_on_signedness)
{
    const int8_t eight[1] = {8}, minus_one[1] = {-1};
    uint8_t out[1];
    TU_EXPECT_OK(qc_pack_int4(out, eight, 1, 0));
    cr_assert_eq(out[0], 0x08);
    TU_EXPECT_FAIL(qc_pack_int4(out, eight, 1, 1), QC_ERR_INVALID_ARG, "qc_pack_int4", "values");
    TU_EXPECT_FAIL(qc_pack_int4(out, minus_one, 1, 0), QC_ERR_INVALID_ARG, "qc_pack_int4", "values");
}
