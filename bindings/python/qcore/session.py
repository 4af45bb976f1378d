"""Running ONNX models with qcore's executor (qc_session_* in include/qcore/qc_model.h)."""
import math

import numpy as np

from ._errors import check
from ._ffi import ffi, lib, onnx_lib
from ._tensor import DTYPES, as_array, view
from .core import default_context

_NUMPY = {code: np.dtype(dtype) for dtype, code in DTYPES.items()}


class Session:
    """An executor session over a Model: Session(model, ctx=None).run({name: array}) -> {output: array}.

    Inputs must have the dtype the graph declares (BOOL inputs as uint8) and be C-contiguous. `capture`
    names intermediate values to return as well; `set_initializer` swaps weights between runs."""

    def __init__(self, model, ctx=None):
        self.model = model
        self.ctx = ctx if ctx is not None else default_context()
        out = ffi.new("qc_session **")
        check(onnx_lib.qc_session_create(out, model._m, self.ctx._ctx))
        self._s = ffi.gc(out[0], onnx_lib.qc_session_free)
        self.output_names = [o.name for o in model.outputs]
        self._captured = []
        self._out = ffi.new("qc_tensor *")  # reused by every _value call

    def capture(self, name):
        """Keeps intermediate value `name` so that run() returns it too."""
        check(onnx_lib.qc_session_capture(self._s, name.encode()))
        self._captured.append(name)

    def set_initializer(self, name, array):
        """Replaces initializer `name` (same dtype and shape) for later runs; the array is copied."""
        array = as_array(array, "array", list(DTYPES), "qcore.Session.set_initializer")
        t, _keep = view(array)
        check(onnx_lib.qc_session_set_initializer(self._s, name.encode(), t))

    _MODES = {"exact": "QC_ACCUMULATE_EXACT", "wrap": "QC_ACCUMULATE_WRAP", "saturate": "QC_ACCUMULATE_SATURATE"}

    def set_accumulator(self, bits, mode="wrap"):
        """Simulates a `bits`-bit accumulator ('wrap' or 'saturate'; 'exact' restores int32) in the integer
        linear ops (MatMulInteger, QLinearMatMul) of later runs."""
        if mode not in self._MODES:
            raise ValueError("qcore.Session.set_accumulator: mode must be one of %s, got %r" % (", ".join(self._MODES), mode))
        check(onnx_lib.qc_session_set_accumulator(self._s, bits, getattr(onnx_lib, self._MODES[mode])))

    _KERNELS = {False: "QC_INTEGER_KERNELS_OFF", "off": "QC_INTEGER_KERNELS_OFF", True: "QC_INTEGER_KERNELS_AUTO",
                "auto": "QC_INTEGER_KERNELS_AUTO", "int8": "QC_INTEGER_KERNELS_INT8",
                "bitserial": "QC_INTEGER_KERNELS_BITSERIAL"}

    def set_integer_kernels(self, kernels=True):
        """How later runs execute the uniform quantized MatMul/Gemm layers (Q/DQ around them): "auto" or
        True (the default: on integers, bit-serial where both operands' codes span few bits, else int8),
        "int8", "bitserial" (wherever the codes span at most 4 bits), or "off"/False (dequantized in float as
        the graph says, the reference). The integer kernels give the same sums, so the same output bits."""
        if isinstance(kernels, str) or isinstance(kernels, bool):
            name = self._KERNELS.get(kernels)
        else:
            name = None
        if name is None:
            raise ValueError("qcore.Session.set_integer_kernels: kernels must be one of True, False, %s, got %r"
                             % (", ".join(repr(k) for k in self._KERNELS if isinstance(k, str)), kernels))
        check(onnx_lib.qc_session_set_integer_kernels(self._s, getattr(onnx_lib, name)))

    def integer_kernel_stats(self):
        """Which kernels the integer-run linear layers of the last run used: int8_layers,
        bitserial_layers, simulated_layers (each layer counts once per run)."""
        out = ffi.new("qc_integer_kernel_stats *")
        check(onnx_lib.qc_session_integer_kernel_stats(self._s, out))
        return {k: getattr(out, k) for k in ("int8_layers", "bitserial_layers", "simulated_layers")}

    def accumulator_stats(self):
        """What the integer linear ops of the last run saw: dot_products, overflowing_products,
        overflow_events, max_abs_partial_sum."""
        out = ffi.new("qc_accumulator_stats *")
        check(onnx_lib.qc_session_accumulator_stats(self._s, out))
        return {k: getattr(out, k) for k in ("dot_products", "overflowing_products", "overflow_events",
                                             "max_abs_partial_sum")}

    def run(self, inputs):
        """Runs the graph on `inputs` ({name: numpy array}); returns {name: numpy array} (copies) for the
        graph outputs and the captured values."""
        keep = []
        for name, array in inputs.items():
            if not _ready(array):  # the checked path, for its precise errors
                array = as_array(np.asarray(array) if np.isscalar(array) else array, name, _INPUT_DTYPES,
                                 "qcore.Session.run")
            t, buffer = view(array)
            keep.append((array, buffer))
            check(onnx_lib.qc_session_set_input(self._s, _encoded(name), t))
        self.ctx.call(_run_session, self._s)
        return {name: self._value(name) for name in self.output_names + self._captured}

    def _value(self, name):
        t = self._out
        check(onnx_lib.qc_session_value(self._s, _encoded(name), t))
        shape = tuple(t.dims[d] for d in range(t.ndim))
        dtype = _NUMPY[t.dtype]
        nbytes = dtype.itemsize * math.prod(shape)
        if nbytes == 0:
            return np.empty(shape, dtype)
        return np.frombuffer(ffi.buffer(t.data, nbytes), dtype).reshape(shape).copy()


_INPUT_DTYPES = list(DTYPES)
_NAMES = {}


def _encoded(name):
    """name.encode(), remembered: run() is called many times with the same names."""
    encoded = _NAMES.get(name)
    if encoded is None:
        encoded = _NAMES[name] = name.encode()
    return encoded


def _ready(array):
    """True for arrays the executor takes as they are (the common case, checked cheaply)."""
    return (type(array) is np.ndarray and array.dtype in DTYPES and array.flags.c_contiguous and array.flags.aligned
            and array.ndim <= lib.QC_MAX_DIMS)


def _run_session(ctx, session):
    return onnx_lib.qc_session_run(session)
