/* Fuzz target: the Ethos-U85 fast-weight-format decoder. The first 2 bytes give the weight count (1..65536),
 * the rest is the stream. Weights that decode are encoded again, and that stream must decode to them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qcore/qc_ethosu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t n = (size_t)(data[0] | data[1] << 8) + 1;
    int16_t *w = NULL;
    if (qc_ethosu85_fwd_decode(&w, n, data + 2, size - 2) == QC_OK) {
        uint8_t *stream = NULL;
        size_t bytes = 0;
        if (qc_ethosu85_fwd_encode(&stream, &bytes, w, n) == QC_OK) {
            int16_t *back = NULL;
            if (qc_ethosu85_fwd_decode(&back, n, stream, bytes) != QC_OK || memcmp(back, w, n * sizeof *w)) abort();
            qc_ethosu_free(back);
        }
        qc_ethosu_free(stream);
        qc_ethosu_free(w);
    }
    return 0;
}
