/* IDX files, as MNIST and Fashion-MNIST ship: two zero bytes, a type code, the rank, big-endian 32-bit
 * dimensions, then big-endian data; plain or gzip-compressed. Compressed input is inflated as it
 * arrives, so memory never exceeds what the stream really holds, whatever the header declares. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "array_internal.h"
#include "error.h"

enum { IDX_MAX_RANK = QC_MAX_DIMS, INITIAL_CAPACITY = 1 << 20 };

static int idx_type(uint8_t code, qc_dtype *dtype, size_t *size)
{
    switch (code) {
    case 0x08: *dtype = QC_DT_U8, *size = 1; return 1;
    case 0x09: *dtype = QC_DT_I8, *size = 1; return 1;
    case 0x0B: *dtype = QC_DT_I16, *size = 2; return 1;
    case 0x0C: *dtype = QC_DT_I32, *size = 4; return 1;
    case 0x0D: *dtype = QC_DT_F32, *size = 4; return 1;
    case 0x0E: *dtype = QC_DT_F64, *size = 8; return 1;
    default: return 0;
    }
}

static size_t declared_size(const uint8_t *p, size_t n, size_t cap);

/* A growing buffer of inflated bytes. */
typedef struct bytes {
    uint8_t *data;
    size_t size, capacity;
} bytes;

static qc_status inflate_all(bytes *out, const uint8_t *data, size_t size, const char *function)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return QCM_FAIL_IN(function, QC_ERR_INTERNAL, "zlib could not start");
    z.next_in = (Bytef *)data;
    qc_status st = QC_OK;
    int rc = Z_OK;
    size_t remaining = size;
    while (rc != Z_STREAM_END && st == QC_OK) {
        if (out->size > declared_size(out->data, out->size, SIZE_MAX / 2)) {
            st = QCM_FAIL_IN(function, QC_ERR_FORMAT, "gzip data is not an IDX file: bad header, or more data than it declares");
            break;
        }
        if (out->size == out->capacity) {
            size_t grown = out->capacity ? out->capacity * 2 : INITIAL_CAPACITY;
            uint8_t *p = realloc(out->data, grown);
            if (p == NULL) {
                st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu inflated bytes", grown);
                break;
            }
            out->data = p, out->capacity = grown;
        }
        uInt chunk = remaining > (1u << 30) ? (1u << 30) : (uInt)remaining;
        z.avail_in = chunk;
        z.next_out = out->data + out->size;
        z.avail_out = (uInt)(out->capacity - out->size > (1u << 30) ? (1u << 30) : out->capacity - out->size);
        uInt before_out = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        remaining -= chunk - z.avail_in;
        out->size += before_out - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            st = QCM_FAIL_IN(function, QC_ERR_FORMAT, "gzip data is corrupt (%s)", z.msg ? z.msg : "zlib error");
        else if (rc == Z_BUF_ERROR && remaining == 0 && z.avail_out > 0)
            st = QCM_FAIL_IN(function, QC_ERR_FORMAT, "gzip data is truncated");
    }
    inflateEnd(&z);
    return st;
}

static uint32_t big_endian32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The bytes a whole IDX file must have according to its header (capped at `cap`), or SIZE_MAX while
 * fewer than the header's bytes are known. Header errors surface later, in parse_plain. */
static size_t declared_size(const uint8_t *p, size_t n, size_t cap)
{
    qc_dtype dtype;
    size_t item;
    if (n < 4 || !idx_type(p[2], &dtype, &item) || p[3] > IDX_MAX_RANK) return n < 4 ? SIZE_MAX : 0;
    size_t header = 4 + 4 * (size_t)p[3];
    if (n < header) return SIZE_MAX;
    size_t count = 1;
    for (int d = 0; d < p[3]; d++) {
        uint32_t dim = big_endian32(p + 4 + 4 * d);
        if (dim == 0) return header;
        count = count > cap / dim ? cap : count * dim;
    }
    return count > (cap - header) / item ? cap : header + count * item;
}

static qc_status parse_plain(qc_array **out, const uint8_t *data, size_t size, const char *function)
{
    if (size < 4 || data[0] != 0 || data[1] != 0) return QCM_FAIL_IN(function, QC_ERR_FORMAT, "not an IDX file (bad magic)");
    qc_dtype dtype;
    size_t item;
    if (!idx_type(data[2], &dtype, &item))
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "IDX type code 0x%02x is unknown", data[2]);
    int ndim = data[3];
    if (ndim > IDX_MAX_RANK) return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "IDX rank %d exceeds %d", ndim, IDX_MAX_RANK);
    size_t header = 4 + 4 * (size_t)ndim;
    if (size < header) return QCM_FAIL_IN(function, QC_ERR_FORMAT, "IDX header is truncated");
    if (declared_size(data, size, SIZE_MAX / 2) != size)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "IDX data has %zu bytes, the header declares %s", size - header,
                           declared_size(data, size, SIZE_MAX / 2) > size ? "more" : "fewer");
    int64_t dims[QC_MAX_DIMS];
    for (int d = 0; d < ndim; d++) dims[d] = big_endian32(data + 4 + 4 * d);
    qc_array *a;
    size_t nbytes;
    QCM_TRY(qca__create(&a, dtype, ndim, dims, &nbytes, function));
    memcpy(a->data, data + header, nbytes);
    qca__swap_bytes(a->data, nbytes / item, item);
    *out = a;
    return QC_OK;
}

qc_status qca__parse_idx(qc_array **out, const uint8_t *data, size_t size, const char *function)
{
    if (size < 2 || data[0] != 0x1f || data[1] != 0x8b) return parse_plain(out, data, size, function);
    bytes inflated = {NULL, 0, 0};
    qc_status st = inflate_all(&inflated, data, size, function);
    if (st == QC_OK) st = parse_plain(out, inflated.data, inflated.size, function);
    free(inflated.data);
    return st;
}
