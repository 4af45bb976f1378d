/* Fuzz target: the Ethos-U weight-stream decoder. A stream that decodes is encoded again when its
 * weights allow, and that stream must decode to the same weights (the encoder's own round trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qcore/qc_ethosu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int16_t *w = NULL;
    size_t n = 0;
    if (qc_ethosu_decode(&w, &n, data, size) == QC_OK && n > 0 && n <= (1u << 20)) {
        uint8_t *stream = NULL;
        size_t bytes = 0;
        if (qc_ethosu_encode(&stream, &bytes, w, n) == QC_OK) {
            int16_t *back = NULL;
            size_t m = 0;
            if (qc_ethosu_decode(&back, &m, stream, bytes) != QC_OK || m != n || memcmp(back, w, n * sizeof *w))
                abort();
            qc_ethosu_free(back);
        }
        qc_ethosu_free(stream);
    }
    qc_ethosu_free(w);
    return 0;
}
