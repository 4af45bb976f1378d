/* Serialized ONNX TensorProto files (the input_N.pb / output_N.pb of ONNX test data sets). */
#include <stdlib.h>
#include <string.h>

#include "array_internal.h"
#include "error.h"
#include "model_internal.h"

static int dtype_of(int32_t onnx_type, qc_dtype *out)
{
    switch (onnx_type) {
    case QC_ONNX_FLOAT: *out = QC_DT_F32; return 1;
    case QC_ONNX_DOUBLE: *out = QC_DT_F64; return 1;
    case QC_ONNX_INT8: *out = QC_DT_I8; return 1;
    case QC_ONNX_UINT8: *out = QC_DT_U8; return 1;
    case QC_ONNX_BOOL: *out = QC_DT_U8; return 1;
    case QC_ONNX_INT16: *out = QC_DT_I16; return 1;
    case QC_ONNX_INT32: *out = QC_DT_I32; return 1;
    case QC_ONNX_INT64: *out = QC_DT_I64; return 1;
    case QC_ONNX_INT4: *out = QC_DT_INT4; return 1;
    case QC_ONNX_UINT4: *out = QC_DT_UINT4; return 1;
    default: return 0;
    }
}

static qc_status to_array(qc_array **out, const Onnx__TensorProto *t, const char *function)
{
    qc_dtype dtype;
    if (!dtype_of(t->data_type, &dtype))
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "TensorProto '%s' has element type %s, which qcore arrays do not hold",
                           t->name ? t->name : "", qc_onnx_type_string(t->data_type));
    if (t->n_dims > QC_MAX_DIMS)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "TensorProto has rank %zu; qcore handles at most %d", t->n_dims,
                           QC_MAX_DIMS);
    qcm_tensor_bytes b = {0};
    QCM_TRY(qcm__tensor_bytes(&b, t, NULL, "TensorProto", function));
    qc_array *a = NULL;
    size_t nbytes;
    qc_status st = qca__create(&a, dtype, (int)t->n_dims, t->dims, &nbytes, function);
    if (st == QC_OK && nbytes != b.nbytes)
        st = QCM_FAIL_IN(function, QC_ERR_INTERNAL, "TensorProto size %zu disagrees with %zu", b.nbytes, nbytes);
    if (st == QC_OK) {
        if (nbytes > 0) memcpy(a->data, b.data, nbytes);
        free(a->name);
        a->name = strdup(t->name ? t->name : "");
        if (a->name == NULL) st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a name");
    }
    free(b.owned);
    if (st != QC_OK) {
        qc_array_free(a);
        return st;
    }
    *out = a;
    return QC_OK;
}

qc_status qca__parse_tensor_proto(qc_array **out, const uint8_t *data, size_t size, const char *function)
{
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, data);
    if (t == NULL) return QCM_FAIL_IN(function, QC_ERR_FORMAT, "not a serialized TensorProto (%zu bytes do not parse)", size);
    qc_status st = to_array(out, t, function);
    onnx__tensor_proto__free_unpacked(t, NULL);
    return st;
}
