/* Arrays read from files: the owned tensor, format detection and file reading. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array_internal.h"
#include "error.h"

/* Bytes of a C-contiguous tensor, or 0 with *ok = 0 when the element count overflows. */
static size_t byte_size(qc_dtype dtype, int ndim, const int64_t *dims, int *ok)
{
    uint64_t n = 1;
    *ok = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 || (dims[d] != 0 && n > (uint64_t)INT64_MAX / 8 / (uint64_t)dims[d])) {
            *ok = 0;
            return 0;
        }
        n *= (uint64_t)dims[d];
    }
    return (size_t)((n * (uint64_t)qc_dtype_bits(dtype) + 7) / 8);
}

qc_status qca__create(qc_array **out, qc_dtype dtype, int ndim, const int64_t *dims, size_t *nbytes,
                      const char *function)
{
    int ok;
    *nbytes = byte_size(dtype, ndim, dims, &ok);
    if (!ok || ndim > QC_MAX_DIMS)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "the declared shape (rank %d) is not a valid qcore tensor", ndim);
    qc_array *a = calloc(1, sizeof *a);
    if (a == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for an array");
    a->data = malloc(*nbytes ? *nbytes : 1);
    a->name = strdup("");
    if (a->data == NULL || a->name == NULL) {
        qc_array_free(a);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", *nbytes);
    }
    qc_status st = qc_tensor_init(&a->tensor, a->data, dtype, ndim, dims, NULL);
    if (st != QC_OK) {
        qc_array_free(a);
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "the declared shape is not a valid tensor");
    }
    *out = a;
    return QC_OK;
}

void qca__swap_bytes(void *data, size_t n, size_t width)
{
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += width)
        for (size_t a = 0, b = width - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static qc_array_format detect(const uint8_t *data, size_t size)
{
    static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size >= 6 && memcmp(data, npy_magic, 6) == 0) return QC_ARRAY_NPY;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) return QC_ARRAY_IDX; /* gzip: IDX as datasets ship */
    if (size >= 4 && data[0] == 0 && data[1] == 0 && data[2] >= 0x08 && data[2] <= 0x0E) return QC_ARRAY_IDX;
    return QC_ARRAY_TENSOR_PROTO;
}

static qc_status parse(qc_array **out, const uint8_t *data, size_t size, qc_array_format format, const char *function)
{
    if (format == QC_ARRAY_AUTO) format = detect(data, size);
    switch (format) {
    case QC_ARRAY_NPY: return qca__parse_npy(out, data, size, function);
    case QC_ARRAY_IDX: return qca__parse_idx(out, data, size, function);
    case QC_ARRAY_TENSOR_PROTO: return qca__parse_tensor_proto(out, data, size, function);
    default: return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'format': unknown format %d", (int)format);
    }
}

qc_status qc_array_parse(qc_array **out, const void *data, size_t size, qc_array_format format)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    if (size > 0) QCM_CHECK_NOT_NULL(data);
    return parse(out, data, size, format, __func__);
}

qc_status qc_array_load(qc_array **out, const char *path, qc_array_format format)
{
    QCM_CHECK_NOT_NULL(out);
    QCM_CHECK_NOT_NULL(path);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return QCM_FAIL(QC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return QCM_FAIL(QC_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (data == MAP_FAILED) return QCM_FAIL(QC_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
    qc_status status = parse(out, data, size, format, __func__);
    if (data) munmap(data, size);
    return status;
}

const qc_tensor *qc_array_tensor(const qc_array *a)
{
    return a ? &a->tensor : NULL;
}

const char *qc_array_name(const qc_array *a)
{
    return a && a->name ? a->name : "";
}

void qc_array_free(qc_array *a)
{
    if (a == NULL) return;
    free(a->data);
    free(a->name);
    free(a);
}
