/* ONNX element types: sizes and names, including the values newer than Debian's onnx.proto. */
#include "qcore/qc_model.h"

int qc_onnx_type_bits(int32_t type)
{
    switch (type) {
    case QC_ONNX_UINT2: case QC_ONNX_INT2: return 2;
    case QC_ONNX_UINT4: case QC_ONNX_INT4: case QC_ONNX_FLOAT4E2M1: return 4;
    case QC_ONNX_UINT8: case QC_ONNX_INT8: case QC_ONNX_BOOL: case QC_ONNX_FLOAT8E4M3FN:
    case QC_ONNX_FLOAT8E4M3FNUZ: case QC_ONNX_FLOAT8E5M2: case QC_ONNX_FLOAT8E5M2FNUZ: case QC_ONNX_FLOAT8E8M0: return 8;
    case QC_ONNX_UINT16: case QC_ONNX_INT16: case QC_ONNX_FLOAT16: case QC_ONNX_BFLOAT16: return 16;
    case QC_ONNX_FLOAT: case QC_ONNX_INT32: case QC_ONNX_UINT32: return 32;
    case QC_ONNX_INT64: case QC_ONNX_DOUBLE: case QC_ONNX_UINT64: case QC_ONNX_COMPLEX64: return 64;
    case QC_ONNX_COMPLEX128: return 128;
    default: return 0;
    }
}

const char *qc_onnx_type_string(int32_t type)
{
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
        "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1", "FLOAT8E8M0",
        "UINT2", "INT2",
    };
    if (type < 0 || (size_t)type >= sizeof names / sizeof names[0]) return "UNKNOWN";
    return names[type];
}
