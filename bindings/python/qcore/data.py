"""Arrays from data files: .npy, IDX (plain or gzip, as MNIST and Fashion-MNIST ship) and serialized ONNX
TensorProto (.pb), read by libqcore-onnx (see qc_array_load in include/qcore/qc_model.h)."""
import os

import numpy as np

from ._errors import check
from ._ffi import ffi, lib, onnx_lib

_FORMATS = {"auto": onnx_lib.QC_ARRAY_AUTO, "npy": onnx_lib.QC_ARRAY_NPY, "idx": onnx_lib.QC_ARRAY_IDX,
            "tensor_proto": onnx_lib.QC_ARRAY_TENSOR_PROTO}
_NUMPY = {lib.QC_DT_F32: np.float32, lib.QC_DT_F64: np.float64, lib.QC_DT_I8: np.int8, lib.QC_DT_U8: np.uint8,
          lib.QC_DT_I16: np.int16, lib.QC_DT_I32: np.int32, lib.QC_DT_I64: np.int64}


def _format(fmt):
    if fmt not in _FORMATS:
        raise ValueError("qcore.load_array: argument 'format' must be one of %s, got %r" % (", ".join(_FORMATS), fmt))
    return _FORMATS[fmt]


def _to_numpy(handle):
    """A numpy copy of the array (4-bit types: the packed bytes as uint8, with the shape alongside)."""
    t = onnx_lib.qc_array_tensor(handle)
    shape = tuple(t.dims[d] for d in range(t.ndim))
    nbytes = ffi.new("size_t *")
    check(lib.qc_tensor_nbytes(nbytes, t))
    raw = np.frombuffer(ffi.buffer(t.data, nbytes[0]), np.uint8).copy() if nbytes[0] else np.empty(0, np.uint8)
    if t.dtype in _NUMPY:
        return raw.view(_NUMPY[t.dtype]).reshape(shape)
    from .quant import PackedInt4
    return PackedInt4(raw, shape, t.dtype == lib.QC_DT_INT4)


def load_array(path, format="auto"):
    """Reads an array file into a numpy array (a PackedInt4 for 4-bit TensorProto files)."""
    out = ffi.new("qc_array **")
    check(onnx_lib.qc_array_load(out, os.fsencode(path), _format(format)))
    handle = ffi.gc(out[0], onnx_lib.qc_array_free)
    return _to_numpy(handle)


def parse_array(data, format="auto"):
    """The same as load_array, from bytes in memory."""
    out = ffi.new("qc_array **")
    check(onnx_lib.qc_array_parse(out, ffi.from_buffer(data), len(data), _format(format)))
    handle = ffi.gc(out[0], onnx_lib.qc_array_free)
    return _to_numpy(handle)
