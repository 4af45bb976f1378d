/* Atomic file writes: temporary file in the same folder (so rename cannot cross file systems), fsync,
 * rename. A failed write leaves nothing behind and never touches an existing file at the target. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file_atomic.h"

static int write_all(int fd, const void *data, size_t size, size_t offset)
{
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = pwrite(fd, p, size, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        size -= (size_t)n;
        offset += (size_t)n;
    }
    return 0;
}

qc_status qcm__write_temporary(char **temp_out, const char *path, const qcm_file_piece *pieces, size_t count,
                               const char *function)
{
    size_t len = strlen(path) + sizeof ".tmp-XXXXXX";
    char *temp = malloc(len);
    if (temp == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a path");
    snprintf(temp, len, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(temp);
    if (fd < 0) {
        qc_status st = QCM_FAIL_IN(function, QC_ERR_IO, "cannot create a file next to '%s': %s", path, strerror(errno));
        free(temp);
        return st;
    }
    int failed = 0;
    size_t end = 0;
    for (size_t i = 0; i < count && !failed; i++) {
        failed = write_all(fd, pieces[i].data, pieces[i].size, pieces[i].offset) != 0;
        end = pieces[i].offset + pieces[i].size;
    }
    /* mkstemp creates 0600; a model is an ordinary file others may read. */
    if (!failed) failed = ftruncate(fd, (off_t)end) != 0 || fchmod(fd, 0644) != 0 || fsync(fd) != 0;
    int saved_errno = errno;
    if (close(fd) != 0 && !failed) failed = 1, saved_errno = errno;
    if (failed) {
        unlink(temp);
        free(temp);
        return QCM_FAIL_IN(function, QC_ERR_IO, "cannot write '%s': %s", path, strerror(saved_errno));
    }
    *temp_out = temp;
    return QC_OK;
}

qc_status qcm__commit(const char *temp, const char *path, const char *function)
{
    if (rename(temp, path) == 0) return QC_OK;
    int saved_errno = errno;
    unlink(temp);
    return QCM_FAIL_IN(function, QC_ERR_IO, "cannot write '%s': %s", path, strerror(saved_errno));
}

void qcm__discard(const char *temp)
{
    if (temp) unlink(temp);
}
