"""Shared fixtures of the qcore Python tests.

The oracle for quantize / dequantize is ONNX itself: `onnx_qdq` builds a one-node QuantizeLinear or
DequantizeLinear model (opset 21) with onnx.helper and runs it with onnx.reference.ReferenceEvaluator and
with onnxruntime. qcore's zero points are int32 arrays; they are converted to the ONNX zero-point type of
the storage (int8, uint8, int16, uint16, INT4, UINT4), and results are returned as int64 (quantize) or
float32 (dequantize) so that storages of different widths compare by value (qcore stores an unsigned
16-bit grid in int32 where ONNX uses uint16).
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ml_dtypes = pytest.importorskip("ml_dtypes")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

try:
    import onnxruntime
except ImportError:  # the reference evaluator alone is still an oracle
    onnxruntime = None

SEED = 20240611
OPSET = 21

# storage name -> (ONNX element type, numpy dtype ONNX uses for it, (lo, hi))
STORAGE = {
    "int8": (TensorProto.INT8, np.dtype(np.int8), (-128, 127)),
    "uint8": (TensorProto.UINT8, np.dtype(np.uint8), (0, 255)),
    "int16": (TensorProto.INT16, np.dtype(np.int16), (-32768, 32767)),
    "uint16": (TensorProto.UINT16, np.dtype(np.uint16), (0, 65535)),
    "int4": (TensorProto.INT4, np.dtype(ml_dtypes.int4), (-8, 7)),
    "uint4": (TensorProto.UINT4, np.dtype(ml_dtypes.uint4), (0, 15)),
}

# QuantizeLinear in onnx.reference computes np.rint(x / scale).astype(np.int32) before clipping, which is
# undefined for quotients outside int32: the reference evaluator is only an oracle below this bound (and so
# is onnxruntime for 4-bit types, see OnnxQDQ.quantize). Tests of larger quotients add a numpy oracle.
REFERENCE_QUOTIENT_LIMIT = 2.0**30


@pytest.fixture
def rng():
    """A numpy Generator with a fixed seed (a fresh one per test, so tests do not depend on order)."""
    return np.random.default_rng(SEED)


def onnx_storage_for(opts):
    """The ONNX storage type whose range holds the grid of `opts` most tightly (signedness kept)."""
    if opts.bits <= 4:
        return "int4" if opts.signed else "uint4"
    if opts.bits <= 8:
        return "int8" if opts.signed else "uint8"
    return "int16" if opts.signed else "uint16"


def _to_storage(values, storage):
    """int array -> the numpy dtype ONNX uses for `storage`, after checking the range."""
    _, dtype, (lo, hi) = STORAGE[storage]
    values = np.asarray(values)
    assert values.dtype.kind in "iu", values.dtype
    if values.size:
        assert lo <= values.min() and values.max() <= hi, (storage, values.min(), values.max())
    return values.astype(np.int64).astype(dtype)


def _attributes(axis, block_size):
    attrs = {}
    if axis is not None:
        attrs["axis"] = int(axis)
    if block_size is not None:
        attrs["block_size"] = int(block_size)
    return attrs


def _check_param_layout(shape, scale, axis, block_size):
    """The parameter layouts of ONNX (and of qc_quant.h)."""
    if block_size is not None:
        expected = list(shape)
        expected[axis] = -(-shape[axis] // block_size)
        assert list(scale.shape) == expected, (scale.shape, expected)
    elif axis is not None:
        assert scale.shape == (shape[axis],), (scale.shape, shape, axis)
    else:
        assert scale.ndim == 0, scale.shape


def broadcast_params(shape, scale, zero_point, axis=None, block_size=None):
    """Element-wise scale and zero point (the ONNX broadcasting rules), for oracles written in numpy."""
    scale = np.asarray(scale)
    zero_point = np.asarray(zero_point)
    if block_size is not None:
        s = np.repeat(scale, block_size, axis=axis).take(range(shape[axis]), axis=axis)
        z = np.repeat(zero_point, block_size, axis=axis).take(range(shape[axis]), axis=axis)
        return s, z
    if axis is not None:
        dims = [1] * len(shape)
        dims[axis] = shape[axis]
        return np.broadcast_to(scale.reshape(dims), shape), np.broadcast_to(zero_point.reshape(dims), shape)
    return np.broadcast_to(scale, shape), np.broadcast_to(zero_point, shape)


class OnnxQDQ:
    """Runs ONNX QuantizeLinear / DequantizeLinear on numpy data with every available backend."""

    def __init__(self):
        self.ort_available = onnxruntime is not None

    # -- model construction ------------------------------------------------------------------
    @staticmethod
    def _model(node, inputs, outputs, initializers):
        graph = helper.make_graph([node] if not isinstance(node, list) else node, "qdq", inputs, outputs,
                                  initializer=initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 10
        onnx.checker.check_model(model)
        return model

    def quantize_model(self, shape, scale, zero_point, storage, axis=None, block_size=None, cast_to_int8=False):
        """QuantizeLinear(x, scale, zero_point) with scale and zero point as initializers. With
        cast_to_int8 a Cast follows (onnxruntime's Python API has no numpy type for INT4/UINT4)."""
        onnx_type = STORAGE[storage][0]
        inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
                 numpy_helper.from_array(_to_storage(zero_point, storage), "zero_point")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["q"],
                                  **_attributes(axis, block_size))]
        out_type = onnx_type
        if cast_to_int8:
            out_type = TensorProto.INT8 if storage == "int4" else TensorProto.UINT8
            nodes.append(helper.make_node("Cast", ["q"], ["y"], to=out_type))
        return self._model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                           [helper.make_tensor_value_info("y" if cast_to_int8 else "q", out_type, list(shape))],
                           inits)

    def dequantize_model(self, q, scale, zero_point, storage, axis=None, block_size=None):
        """DequantizeLinear(q, scale, zero_point) with every input an initializer (onnxruntime's Python
        API cannot feed INT4/UINT4 arrays; an initializer holds them packed, as ONNX stores them)."""
        inits = [numpy_helper.from_array(_to_storage(q, storage), "q"),
                 numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
                 numpy_helper.from_array(_to_storage(zero_point, storage), "zero_point")]
        node = helper.make_node("DequantizeLinear", ["q", "scale", "zero_point"], ["x"],
                                **_attributes(axis, block_size))
        return self._model(node, [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(np.shape(q)))],
                           inits)

    @staticmethod
    def _ort_session(model):
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    # -- running ---------------------------------------------------------------------------------
    def quantize(self, x, scale, zero_point, storage, axis=None, block_size=None):
        """{backend: int64 array} of QuantizeLinear. The reference evaluator is left out when some
        |x / scale| is too large for its int32 intermediate (see REFERENCE_QUOTIENT_LIMIT)."""
        x = np.array(x, np.float32, order="C")  # (np.ascontiguousarray would make a 0-d x 1-d)
        scale = np.asarray(scale, np.float32)
        _check_param_layout(x.shape, scale, axis, block_size)
        results = {}
        s, _ = broadcast_params(x.shape, scale, np.zeros(scale.shape, np.int64), axis, block_size)
        with np.errstate(over="ignore", divide="ignore"):
            quotient = np.abs(x / s) if x.size else np.zeros(0, np.float32)
        if x.size == 0 or float(quotient.max()) < REFERENCE_QUOTIENT_LIMIT:
            model = self.quantize_model(x.shape, scale, zero_point, storage, axis, block_size)
            (q,) = ReferenceEvaluator(model).run(None, {"x": x})
            assert q.dtype == STORAGE[storage][1], q.dtype
            results["reference"] = q.astype(np.int64)
        # onnxruntime 1.31 dies with SIGFPE on a blocked QuantizeLinear whose blocked axis has extent 0, and
        # its INT4/UINT4 QuantizeLinear gives qmin instead of qmax for some quotients beyond int32 (e.g. a
        # [3] tensor of 1e20 at scale 0.5 -> [0, 0, 15] as UINT4): it is no oracle in those cases
        ort_crashes = block_size is not None and x.shape[axis] == 0
        ort_overflows = storage in ("int4", "uint4") and x.size and float(quotient.max()) >= REFERENCE_QUOTIENT_LIMIT
        if self.ort_available and not ort_crashes and not ort_overflows:
            packed4 = storage in ("int4", "uint4")
            model = self.quantize_model(x.shape, scale, zero_point, storage, axis, block_size, cast_to_int8=packed4)
            (q,) = self._ort_session(model).run(None, {"x": x})
            results["onnxruntime"] = q.astype(np.int64)
        return results

    def dequantize(self, q, scale, zero_point, storage, axis=None, block_size=None):
        """{backend: float32 array} of DequantizeLinear."""
        q = np.asarray(q)
        scale = np.asarray(scale, np.float32)
        _check_param_layout(q.shape, scale, axis, block_size)
        model = self.dequantize_model(q, scale, zero_point, storage, axis, block_size)
        results = {"reference": ReferenceEvaluator(model).run(None, {})[0]}
        if self.ort_available:
            results["onnxruntime"] = self._ort_session(model).run(None, {})[0]
        for name, value in results.items():
            assert value.dtype == np.float32, (name, value.dtype)
        return results

    @staticmethod
    def packed_bytes(values, storage):
        """The bytes ONNX stores for a 4-bit tensor (numpy_helper.from_array packs INT4/UINT4)."""
        assert storage in ("int4", "uint4")
        return np.frombuffer(numpy_helper.from_array(_to_storage(values, storage)).raw_data, np.uint8)


@pytest.fixture(scope="session")
def onnx_qdq():
    return OnnxQDQ()


def bits_of(a):
    """The bit patterns of a float32 array (so that -0.0 != 0.0 and NaNs compare)."""
    return np.array(a, np.float32, order="C").view(np.uint32)


def assert_same_floats(actual, expected, what=""):
    """Bit-for-bit equality of float32 arrays, with the first differing element in the message."""
    actual = np.asarray(actual, np.float32)
    expected = np.asarray(expected, np.float32)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    diff = np.flatnonzero(bits_of(actual).ravel() != bits_of(expected).ravel())
    if diff.size:
        i = diff[0]
        raise AssertionError("%s: %d of %d elements differ; first at flat index %d: got %r, expected %r"
                             % (what, diff.size, actual.size, i, actual.ravel()[i], expected.ravel()[i]))


def assert_same_ints(actual, expected, what=""):
    actual = np.asarray(actual).astype(np.int64)
    expected = np.asarray(expected).astype(np.int64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    diff = np.flatnonzero(actual.ravel() != expected.ravel())
    if diff.size:
        i = diff[0]
        raise AssertionError("%s: %d of %d elements differ; first at flat index %d: got %d, expected %d"
                             % (what, diff.size, actual.size, i, actual.ravel()[i], expected.ravel()[i]))
