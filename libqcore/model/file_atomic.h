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

/* Writes the pieces (sorted by offset, not overlapping) to a new temporary file in path's folder and
 * syncs it; *temp receives its name (free it). On failure nothing is left behind. */
qc_status qcm__write_temporary(char **temp, const char *path, const qcm_file_piece *pieces, size_t count,
                               const char *function);

/* Renames a temporary file over `path`; removes it on failure. */
qc_status qcm__commit(const char *temp, const char *path, const char *function);

/* Removes a temporary file that will not be committed. */
void qcm__discard(const char *temp);

#endif
