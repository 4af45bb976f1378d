/* numpy .npy files (format versions 1.0, 2.0, 3.0): magic, version, little-endian header length, a
 * Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}, then the raw data. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array_internal.h"
#include "error.h"

typedef struct npy_header {
    qc_dtype dtype;
    size_t itemsize;
    int swap;            /* big-endian data */
    int fortran_order;
    int ndim;
    int64_t dims[QC_MAX_DIMS];
} npy_header;

/* The value text after 'key': in the header dict, or NULL. */
static const char *value_of(const char *header, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(header, quoted);
    if (p == NULL) return NULL;
    p += strlen(quoted);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static qc_status parse_descr(npy_header *h, const char *header, const char *function)
{
    const char *v = value_of(header, "descr");
    if (v == NULL || *v != '\'') return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy header has no 'descr' string");
    static const struct { const char *code; qc_dtype dtype; size_t size; } types[] = {
        {"f4", QC_DT_F32, 4}, {"f8", QC_DT_F64, 8}, {"i1", QC_DT_I8, 1}, {"u1", QC_DT_U8, 1},
        {"i2", QC_DT_I16, 2}, {"i4", QC_DT_I32, 4}, {"i8", QC_DT_I64, 8},
    };
    char order = v[1];
    const char *code = v + 2;
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy descr '%.8s' has no byte-order mark", v);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strncmp(code, types[i].code, 2) == 0 && code[2] == '\'') {
            h->dtype = types[i].dtype;
            h->itemsize = types[i].size;
            h->swap = order == '>' && types[i].size > 1;
            return QC_OK;
        }
    return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, ".npy element type %.12s is not one of f4 f8 i1 u1 i2 i4 i8", v);
}

static qc_status parse_shape(npy_header *h, const char *header, const char *function)
{
    const char *v = value_of(header, "shape");
    if (v == NULL || *v != '(') return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy header has no 'shape' tuple");
    v++;
    h->ndim = 0;
    for (;;) {
        while (*v == ' ' || *v == ',') v++;
        if (*v == ')') return QC_OK;
        if (!isdigit((unsigned char)*v)) return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy shape is malformed near '%.10s'", v);
        if (h->ndim == QC_MAX_DIMS)
            return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, ".npy array has more than %d dimensions", QC_MAX_DIMS);
        char *end;
        unsigned long long d = strtoull(v, &end, 10);
        if (d > (unsigned long long)INT64_MAX) return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy shape entry is too large");
        h->dims[h->ndim++] = (int64_t)d;
        v = end;
    }
}

static qc_status parse_header(npy_header *h, const char *header, const char *function)
{
    QCM_TRY(parse_descr(h, header, function));
    const char *fortran = value_of(header, "fortran_order");
    if (fortran == NULL) return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy header has no 'fortran_order'");
    if (strncmp(fortran, "True", 4) != 0 && strncmp(fortran, "False", 5) != 0)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy fortran_order is neither True nor False");
    h->fortran_order = fortran[0] == 'T';
    return parse_shape(h, header, function);
}

/* Fortran order holds the transpose's C order: copy element (i0, .., ik) from the reversed strides. */
static void from_fortran(void *dst, const uint8_t *src, const npy_header *h)
{
    int64_t count = 1, index[QC_MAX_DIMS] = {0};
    for (int d = 0; d < h->ndim; d++) count *= h->dims[d];
    for (int64_t c = 0; c < count; c++) {
        int64_t f = 0, stride = 1;
        for (int d = 0; d < h->ndim; d++) {
            f += index[d] * stride;
            stride *= h->dims[d];
        }
        memcpy((uint8_t *)dst + (size_t)c * h->itemsize, src + (size_t)f * h->itemsize, h->itemsize);
        for (int d = h->ndim - 1; d >= 0 && ++index[d] == h->dims[d]; d--) index[d] = 0;
    }
}

qc_status qca__parse_npy(qc_array **out, const uint8_t *data, size_t size, const char *function)
{
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < 10 || memcmp(data, magic, 6) != 0) return QCM_FAIL_IN(function, QC_ERR_FORMAT, "not a .npy file (no magic)");
    int major = data[6];
    if (major < 1 || major > 3) return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy format version %d is unknown", major);
    size_t prefix = major == 1 ? 10 : 12;
    if (size < prefix) return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy file is truncated in its header");
    size_t header_len = major == 1 ? (size_t)data[8] | (size_t)data[9] << 8
                                   : (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24;
    if (header_len > size - prefix) return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy header runs past the end of the file");
    char *header = malloc(header_len + 1);
    if (header == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for the .npy header");
    memcpy(header, data + prefix, header_len);
    header[header_len] = '\0';
    npy_header h;
    qc_status st = parse_header(&h, header, function);
    free(header);
    QCM_TRY(st);
    size_t available = size - prefix - header_len, nbytes;
    qc_array *a;
    int64_t count = 1;
    for (int d = 0; d < h.ndim; d++) {
        if (h.dims[d] != 0 && (uint64_t)count > available / h.itemsize / (uint64_t)h.dims[d] + 1)
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy shape declares more data than the file holds");
        count *= h.dims[d];
    }
    if ((uint64_t)count * h.itemsize != available)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, ".npy data has %zu bytes, the header declares %llu", available,
                           (unsigned long long)count * h.itemsize);
    QCM_TRY(qca__create(&a, h.dtype, h.ndim, h.dims, &nbytes, function));
    const uint8_t *payload = data + prefix + header_len;
    if (h.fortran_order)
        from_fortran(a->data, payload, &h);
    else
        memcpy(a->data, payload, nbytes);
    if (h.swap) qca__swap_bytes(a->data, (size_t)count, h.itemsize);
    *out = a;
    return QC_OK;
}
