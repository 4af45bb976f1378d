/* Internal: writing a file so that it either appears whole or not at all. */
#ifndef QC_MODEL_FILE_ATOMIC_H
#define QC_MODEL_FILE_ATOMIC_H

#include <stddef.h>

#include "qcore/qc_core.h"

/* One piece of the file: `size` bytes from `data`, starting at byte `offset` (gaps are zero-filled). */
typedef struct qcm_file_piece {
    const void *data;
    size_t size;
    size_t offset;
} qcm_file_piece;

/* Writes the pieces (sorted by offset, not overlapping) to a temporary file in path's folder, syncs it
 * and renames it over `path`. On failure the temporary file is removed and `path` is untouched. */
qc_status qcm__write_atomic(const char *path, const qcm_file_piece *pieces, size_t count, const char *function);

#endif
