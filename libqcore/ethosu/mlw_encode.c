/* qc_ethosu_encode: range check, palette sections, the sections, and the end marker. */
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "ethosu/mlw.h"

qc_status qc__ethosu_check_weights(const int16_t *w, size_t n, const char *name, const char *function)
{
    if (n == 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument 'n' is 0: an empty weight stream has no valid encoding");
    if (n > INT32_MAX)
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "argument 'n' is %zu, more than 2^31 - 1 weights", n);
    for (size_t i = 0; i < n; i++)
        if (w[i] < -QC_ETHOSU_MAX_WEIGHT || w[i] > QC_ETHOSU_MAX_WEIGHT)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                              "argument '%s': element %zu is %d, outside -255..255 (subtract the zero point "
                              "first; Ethos-U weights are 9-bit sign and magnitude)", name, i, w[i]);
    return QC_OK;
}

/* ZDIV = 7, one bits to the byte boundary, then 0xFF to a multiple of 16 bytes. */
void mlw_write_end(mlw_writer *out)
{
    mlw_put(out, 3, MLW_ZDIV_EOS);
    mlw_put(out, (int)((8 - (mlw_bitpos(out) & 7)) & 7), 0xff);
    while (mlw_bitpos(out) & 127) mlw_put(out, 8, 0xff);
    mlw_flush(out);
}

qc_status mlw_stream_finish(mlw_writer *wr, int failed, uint8_t **out, size_t *out_size, size_t n, const char *function)
{
    if (!failed) mlw_write_end(wr);
    if (failed || wr->failed) {
        free(wr->buf);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the stream of %zu weights", n);
    }
    *out = wr->buf;
    *out_size = wr->bytes;
    return QC_OK;
}

qc_status qc__ethosu_encode_checked(uint8_t **out, size_t *out_size, const int16_t *w, size_t n,
                                    const char *function)
{
    QC_TRY(qc__ethosu_check_weights(w, n, "weights", function));
    size_t *starts = NULL;
    size_t nsec = mlw_palette_sections(&starts, w, n);
    mlw_writer wr;
    if (nsec == 0 || mlw_writer_init(&wr, n + n / 2 + 64) != 0) {
        free(starts);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the stream of %zu weights", n);
    }
    int failed = 0;
    for (size_t s = 0; s < nsec && !failed; s++) {
        size_t end = s + 1 < nsec ? starts[s + 1] : n;
        mlw_palette p;
        mlw_palette_make(&p, w + starts[s], end - starts[s]);
        failed = mlw_encode_section(&wr, w + starts[s], end - starts[s], &p) != 0;
    }
    free(starts);
    return mlw_stream_finish(&wr, failed, out, out_size, n, function);
}

qc_status qc_ethosu_encode(uint8_t **out, size_t *out_size, const int16_t *weights, size_t n)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_size);
    QC_CHECK_NOT_NULL(weights);
    return qc__ethosu_encode_checked(out, out_size, weights, n, __func__);
}

void qc_ethosu_free(void *buffer)
{
    free(buffer);
}
