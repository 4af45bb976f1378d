"""numpy arrays as qc_tensor views, without copying: dtype and layout are checked here, with a clear
error, rather than converted behind the caller's back."""
import numpy as np

from ._errors import DTypeError, InvalidArgumentError, LayoutError
from ._ffi import ffi, lib

DTYPES = {
    np.dtype(np.float32): lib.QC_DT_F32,
    np.dtype(np.float64): lib.QC_DT_F64,
    np.dtype(np.int8): lib.QC_DT_I8,
    np.dtype(np.uint8): lib.QC_DT_U8,
    np.dtype(np.int16): lib.QC_DT_I16,
    np.dtype(np.int32): lib.QC_DT_I32,
    np.dtype(np.int64): lib.QC_DT_I64,
}


def as_array(value, name, dtypes, function, writable=False):
    """Checks that `value` is a C-contiguous numpy array of one of `dtypes` with at most QC_MAX_DIMS
    axes (and writable if asked); errors name the Python `function` and the argument."""
    where = "%s: argument '%s'" % (function, name)
    if not isinstance(value, np.ndarray):
        raise DTypeError("%s: expected a numpy array, got %s" % (where, type(value).__name__))
    allowed = [np.dtype(d) for d in dtypes]
    if value.dtype not in allowed:
        raise DTypeError("%s: dtype %s is not accepted (expected %s); convert with .astype()"
                         % (where, value.dtype, " or ".join(str(d) for d in allowed)))
    if not value.flags.c_contiguous:
        raise LayoutError("%s: the array must be C-contiguous; use numpy.ascontiguousarray" % where)
    if writable and not value.flags.writeable:
        raise LayoutError("%s: the array is read-only but qcore writes into it" % where)
    if not value.flags.aligned:  # e.g. a view of a model file's bytes: kernels need whole aligned elements
        if writable:
            raise LayoutError("%s: the array is not aligned to its element size; qcore writes into it" % where)
        value = value.copy()
    check_rank(value.ndim, name, function)
    return value


def as_scalar_or_array(value, name, dtype, function):
    """A numpy array of `dtype`, accepting a Python or numpy scalar (copied into a 0-d array)."""
    if np.isscalar(value) and not isinstance(value, (str, bytes)):
        return np.asarray(value, dtype)
    return as_array(value, name, [dtype], function)


def check_rank(ndim, name, function):
    if ndim > lib.QC_MAX_DIMS:
        raise InvalidArgumentError("%s: argument '%s': ndim = %d; qcore tensors have at most %d axes"
                                   % (function, name, ndim, lib.QC_MAX_DIMS))


def view(array, qc_dtype=None, shape=None):
    """A qc_tensor over `array`'s memory. The returned cdata keeps a reference to the buffer; the
    caller must keep `array` alive while the view is used."""
    t = ffi.new("qc_tensor *")
    shape = array.shape if shape is None else tuple(shape)
    t.dtype = DTYPES[array.dtype] if qc_dtype is None else qc_dtype
    t.ndim = len(shape)
    stride = 1
    for axis in reversed(range(len(shape))):
        t.dims[axis] = shape[axis]
        t.strides[axis] = stride
        stride *= shape[axis]
    buffer = ffi.from_buffer(array, require_writable=False)
    t.data = ffi.cast("void *", buffer)
    return t, buffer


def named_views(inputs, function):
    """{name: numpy array} as C arrays (char *names[], qc_tensor values[]) for the library's batch functions,
    and what must stay alive while they are used."""
    names = [ffi.new("char[]", name.encode()) for name in inputs]
    values = ffi.new("qc_tensor[]", len(inputs))
    alive = [names]
    for k, (name, array) in enumerate(inputs.items()):
        array = as_array(array, name, list(DTYPES), function)
        t, buffer = view(array)
        values[k] = t[0]
        alive.append((array, buffer))
    return ffi.new("char *[]", names), values, alive
