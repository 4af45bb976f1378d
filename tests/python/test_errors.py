"""Bad arguments through the Python package: the documented exception class, and a message that names
the argument (and the problem). qc_core.h: a failure's message names the function and the argument, such
as "qc_quantize: argument 'scale': ..."; test_messages_name_the_function checks the function part."""
import io
import re

import numpy as np
import pytest

import qcore
from qcore import lib

O = qcore.QuantOptions


@pytest.fixture
def data(rng):
    x = rng.standard_normal((4, 8)).astype(np.float32)
    scale, zero_point = qcore.choose_params(x, O())
    return x, scale, zero_point


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def with_element(x, index, value):
    y = x.copy()
    y.reshape(-1)[index] = value
    return y


# id -> (call(x, scale, zero_point), exception class, function names the message may use, substrings)
# The first function name is the qcore entry point called; the message must contain one of them.
CASES = {
    # dtypes and layouts, checked by the package before the call
    "x-float64": (lambda x, s, z: qcore.quantize(x.astype(np.float64), s, z, O()),
                  qcore.DTypeError, ("quantize", "qc_quantize"), ["'x'", "float64"]),
    "x-float64-choose": (lambda x, s, z: qcore.choose_params(x.astype(np.float64), O()),
                         qcore.DTypeError, ("choose_params", "qc_quant_choose_params"), ["'x'", "float64"]),
    "x-strided": (lambda x, s, z: qcore.quantize(x[:, ::2], s, z, O()),
                  qcore.LayoutError, ("quantize", "qc_quantize"), ["'x'", "contiguous"]),
    "x-strided-fake": (lambda x, s, z: qcore.fake_quantize(x[:, ::2], s, z, O()),
                       qcore.LayoutError, ("fake_quantize", "qc_fake_quantize"), ["'x'", "contiguous"]),
    "x-transposed-choose": (lambda x, s, z: qcore.choose_params(x.T, O()),
                            qcore.LayoutError, ("choose_params", "qc_quant_choose_params"), ["'x'", "contiguous"]),
    "out-readonly": (lambda x, s, z: qcore.fake_quantize(x, s, z, O(), out=readonly(x)),
                     qcore.LayoutError, ("fake_quantize", "qc_fake_quantize"), ["'out'", "read-only"]),
    "out-shape": (lambda x, s, z: qcore.fake_quantize(x, s, z, O(), out=np.empty(x.size, np.float32)),
                  qcore.ShapeError, ("fake_quantize", "qc_fake_quantize"), ["'x'", "[4, 8]", "[32]"]),
    "out-float64": (lambda x, s, z: qcore.fake_quantize(x, s, z, O(), out=np.empty(x.shape)),
                    qcore.DTypeError, ("fake_quantize", "qc_fake_quantize"), ["'out'", "float64"]),
    "scale-float64": (lambda x, s, z: qcore.quantize(x, s.astype(np.float64), z, O()),
                      qcore.DTypeError, ("quantize", "qc_quantize"), ["'scale'", "float64"]),
    "zero-point-int64": (lambda x, s, z: qcore.quantize(x, s, z.astype(np.int64), O()),
                         qcore.DTypeError, ("quantize", "qc_quantize"), ["'zero_point'", "int64"]),
    "q-float32": (lambda x, s, z: qcore.dequantize(x, s, z, O()),
                  qcore.DTypeError, ("dequantize", "qc_dequantize"), ["'q'", "float32"]),
    # shapes
    "scale-shape-tensor": (lambda x, s, z: qcore.quantize(x, np.ones(3, np.float32), z, O()),
                           qcore.ShapeError, ("quantize", "qc_quantize"), ["'scale'", "[3]"]),
    "scale-shape-channel": (lambda x, s, z: qcore.quantize(x, np.ones(5, np.float32), None,
                                                           O(granularity="channel", axis=1)),
                            qcore.ShapeError, ("quantize", "qc_quantize"), ["'scale'", "[5]", "[8]"]),
    "scale-shape-group": (lambda x, s, z: qcore.fake_quantize(x, np.ones((4, 2), np.float32), None,
                                                              O(granularity="group", axis=1, group_size=3)),
                          qcore.ShapeError, ("fake_quantize", "qc_fake_quantize"), ["'scale'", "[4, 3]"]),
    "zero-point-shape": (lambda x, s, z: qcore.dequantize(np.zeros(x.shape, np.int8), np.ones(4, np.float32),
                                                          np.zeros(8, np.int32), O(granularity="channel")),
                         qcore.ShapeError, ("dequantize", "qc_dequantize"), ["'zero_point'", "[8]", "[4]"]),
    # options
    "bits-1-choose": (lambda x, s, z: qcore.choose_params(x, O(bits=1)),
                      qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"), ["'opts'", "bits = 1"]),
    "bits-17-quantize": (lambda x, s, z: qcore.quantize(x, s, z, O(bits=17)),
                         qcore.InvalidArgumentError, ("quantize", "qc_quantize"), ["'opts'", "bits = 17"]),
    "bits-17-dequantize": (lambda x, s, z: qcore.dequantize(np.zeros(x.shape, np.int32), s, z, O(bits=17)),
                           qcore.InvalidArgumentError, ("dequantize", "qc_dequantize"), ["'opts'", "bits = 17"]),
    "bits-1-fake": (lambda x, s, z: qcore.fake_quantize(x, s, z, O(bits=1)),
                    qcore.InvalidArgumentError, ("fake_quantize", "qc_fake_quantize"), ["'opts'", "bits = 1"]),
    "percentile-50": (lambda x, s, z: qcore.choose_params(x, O(scale_method="percentile", percentile=50)),
                      qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"),
                      ["'opts'", "percentile = 50"]),
    "percentile-100.5": (lambda x, s, z: qcore.fake_quantize(x, s, z, O(scale_method="percentile", percentile=100.5)),
                         qcore.InvalidArgumentError, ("fake_quantize", "qc_fake_quantize"),
                         ["'opts'", "percentile = 100.5"]),
    "mse-steps-1": (lambda x, s, z: qcore.choose_params(x, O(scale_method="mse", mse_steps=1)),
                    qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"), ["'opts'", "mse_steps = 1"]),
    "mse-steps-10001": (lambda x, s, z: qcore.choose_params(x, O(scale_method="mse", mse_steps=10001)),
                        qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"),
                        ["'opts'", "mse_steps = 10001"]),
    "mse-min-ratio-1": (lambda x, s, z: qcore.choose_params(x, O(scale_method="mse", mse_min_ratio=1.0)),
                        qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"),
                        ["'opts'", "mse_min_ratio = 1"]),
    "group-size-0": (lambda x, s, z: qcore.choose_params(x, O(granularity="group", group_size=0)),
                     qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"),
                     ["'opts'", "group_size = 0"]),
    "axis-2-of-2d": (lambda x, s, z: qcore.quantize(x, np.ones(4, np.float32), None, O(granularity="channel", axis=2)),
                     qcore.InvalidArgumentError, ("quantize", "qc_quantize"), ["'opts'", "axis = 2"]),
    "axis-minus-3-choose": (lambda x, s, z: qcore.choose_params(x, O(granularity="channel", axis=-3)),
                            qcore.InvalidArgumentError, ("choose_params", "qc_quant_choose_params"),
                            ["'opts'", "axis = -3"]),
    "granularity-unknown": (lambda x, s, z: qcore.choose_params(x, O(granularity="row")),
                            ValueError, ("choose_params", "qc_quant_choose_params"), ["granularity", "'row'"]),
    "scale-method-unknown": (lambda x, s, z: qcore.choose_params(x, O(scale_method="kl")),
                             ValueError, ("choose_params", "qc_quant_choose_params"), ["scale_method", "'kl'"]),
    # parameters
    "asymmetric-without-zero-point": (lambda x, s, z: qcore.quantize(x, s, None, O(symmetric=False)),
                                      qcore.InvalidArgumentError, ("quantize", "qc_quantize"),
                                      ["'zero_point'", "asymmetric"]),
    "asymmetric-without-zero-point-dequantize": (
        lambda x, s, z: qcore.dequantize(np.zeros(x.shape, np.int8), s, None, O(symmetric=False)),
        qcore.InvalidArgumentError, ("dequantize", "qc_dequantize"), ["'zero_point'", "asymmetric"]),
    "zero-point-above-grid": (lambda x, s, z: qcore.quantize(x, s, np.array(128, np.int32), O()),
                              qcore.InvalidArgumentError, ("quantize", "qc_quantize"),
                              ["'zero_point'", "128", "[-128, 127]"]),
    "zero-point-below-narrow-grid": (lambda x, s, z: qcore.fake_quantize(x, s, np.array(-128, np.int32),
                                                                         O(narrow_range=True)),
                                     qcore.InvalidArgumentError, ("fake_quantize", "qc_fake_quantize"),
                                     ["'zero_point'", "-128", "[-127, 127]"]),
    "zero-point-channel-entry": (lambda x, s, z: qcore.quantize(x, np.ones(8, np.float32),
                                                                np.array([0, 1, 2, 16, 0, 0, 0, 0], np.int32),
                                                                O(bits=4, symmetric=False, granularity="channel",
                                                                  axis=1)),
                                 qcore.InvalidArgumentError, ("quantize", "qc_quantize"),
                                 ["'zero_point'", "entry 3", "16"]),
    "scale-zero": (lambda x, s, z: qcore.quantize(x, np.array(0.0, np.float32), z, O()),
                   qcore.InvalidArgumentError, ("quantize", "qc_quantize"), ["'scale'", "entry 0"]),
    "scale-negative": (lambda x, s, z: qcore.dequantize(np.zeros(x.shape, np.int8), np.array(-1.0, np.float32), z, O()),
                       qcore.InvalidArgumentError, ("dequantize", "qc_dequantize"), ["'scale'", "-1"]),
    "scale-nan": (lambda x, s, z: qcore.fake_quantize(x, np.array(np.nan, np.float32), z, O()),
                  qcore.InvalidArgumentError, ("fake_quantize", "qc_fake_quantize"), ["'scale'", "nan"]),
    "scale-inf-channel": (lambda x, s, z: qcore.quantize(x, np.array([1, 1, np.inf, 1], np.float32), None,
                                                         O(granularity="channel")),
                          qcore.InvalidArgumentError, ("quantize", "qc_quantize"), ["'scale'", "entry 2", "inf"]),
    # data
    "x-nan-quantize": (lambda x, s, z: qcore.quantize(with_element(x, 19, np.nan), s, z, O()),
                       qcore.NumericError, ("quantize", "qc_quantize"), ["'x'", "element 19", "nan"]),
    "x-inf-fake": (lambda x, s, z: qcore.fake_quantize(with_element(x, 5, -np.inf), s, z, O()),
                   qcore.NumericError, ("fake_quantize", "qc_fake_quantize"), ["'x'", "element 5", "-inf"]),
    "x-inf-choose": (lambda x, s, z: qcore.choose_params(with_element(x, 31, np.inf), O(granularity="channel")),
                     qcore.NumericError, ("choose_params", "qc_quant_choose_params"), ["'x'", "element 31", "inf"]),
    "q-outside-grid": (lambda x, s, z: qcore.dequantize(with_element(np.zeros(x.shape, np.int8), 3, -128), s, z,
                                                        O(narrow_range=True)),
                       qcore.InvalidArgumentError, ("dequantize", "qc_dequantize"),
                       ["'q'", "element 3", "-128", "[-127, 127]"]),
    "q-outside-4bit-grid": (lambda x, s, z: qcore.dequantize(with_element(np.zeros(x.shape, np.int8), 30, 8), s, None,
                                                             O(bits=4)),
                            qcore.InvalidArgumentError, ("dequantize", "qc_dequantize"), ["'q'", "element 30", "8"]),
    "q-outside-packed-2bit-grid": (lambda x, s, z: qcore.dequantize(
        qcore.PackedInt4(qcore.pack_int4(with_element(np.zeros(32, np.int8), 9, -3)), x.shape, True), s, None,
        O(bits=2)), qcore.InvalidArgumentError, ("dequantize", "qc_dequantize"), ["'q'", "element 9", "-3"]),
    # storage that cannot hold the grid
    "q-dtype-too-narrow": (lambda x, s, z: qcore.quantize(x, s, None, O(bits=9), dtype=np.int8),
                           qcore.DTypeError, ("quantize", "qc_quantize"), ["'q'", "i8"]),
    "q-int4-for-8-bits": (lambda x, s, z: qcore.quantize(x, s, z, O(), dtype="int4"),
                          qcore.DTypeError, ("quantize", "qc_quantize"), ["'q'", "int4"]),
    "q-uint8-for-signed": (lambda x, s, z: qcore.quantize(x, s, z, O(), dtype=np.uint8),
                           qcore.DTypeError, ("quantize", "qc_quantize"), ["'q'", "u8"]),
    # contexts
    "context-threads-negative": (lambda x, s, z: qcore.Context(threads=-1),
                                 qcore.InvalidArgumentError, ("Context", "qc_ctx_set_param"), ["'value'", "-1"]),
    "context-arch-bogus": (lambda x, s, z: qcore.Context(arch="bogus"),
                           ValueError, ("Context", "qc_ctx_set_param"), ["arch", "'bogus'"]),
}

@pytest.mark.parametrize("case", list(CASES))
def test_bad_argument(data, case):
    call, exc, _, substrings = CASES[case]
    with pytest.raises(exc) as info:
        call(*data)
    message = str(info.value)
    for s in substrings:
        assert s in message, (case, message)
    if issubclass(exc, qcore.QcoreError):
        assert type(info.value) is exc   # not merely a subclass
        assert exc.status == ffi_string(lib.qc_status_string(getattr(lib, exc.status)))


def ffi_string(p):
    return qcore.ffi.string(p).decode()


def _names_function(message, names):
    return any(re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(n), message) for n in names)


@pytest.mark.parametrize("case", list(CASES))
def test_messages_name_the_function(data, case):
    call, exc, names, _ = CASES[case]
    with pytest.raises(exc) as info:
        call(*data)
    assert _names_function(str(info.value), names), (case, str(info.value))


def test_first_non_finite_element_is_reported(rng):
    """With several bad elements spread over the threads' work, the first in memory order is named."""
    x = rng.standard_normal((5, 100003)).astype(np.float32)
    x.reshape(-1)[[70001, 123457, 400000]] = [-np.inf, np.nan, np.inf]
    opts = O(granularity="channel", axis=0)
    scale = np.ones(5, np.float32)
    for call in (lambda: qcore.quantize(x, scale, None, opts), lambda: qcore.fake_quantize(x, scale, None, opts),
                 lambda: qcore.choose_params(x, opts)):
        with pytest.raises(qcore.NumericError, match=r"element 70001 is -inf"):
            call()


def test_error_classes():
    """Every exception class maps its C status, and derives from QcoreError and the Python base it names."""
    bases = {"InvalidArgumentError": ValueError, "ShapeError": ValueError, "DTypeError": TypeError,
             "LayoutError": ValueError, "NumericError": ArithmeticError, "OutOfMemoryError": MemoryError,
             "FileError": OSError, "FormatError": ValueError, "SingularError": ArithmeticError,
             "IntegerOverflowError": OverflowError}
    names = ["InvalidArgumentError", "ShapeError", "DTypeError", "LayoutError", "NumericError", "OutOfMemoryError",
             "FileError", "FormatError", "UnsupportedError", "VersionError", "SingularError", "IntegerOverflowError",
             "CancelledError", "InternalError"]
    statuses = set()
    for name in names:
        cls = getattr(qcore, name)
        assert issubclass(cls, qcore.QcoreError)
        if name in bases:
            assert issubclass(cls, bases[name])
        value = getattr(lib, cls.status)
        assert ffi_string(lib.qc_status_string(value)) == cls.status
        statuses.add(value)
    assert statuses == set(range(1, 15))


def test_unknown_arch_in_environment(monkeypatch):
    monkeypatch.setenv("QC_ARCH", "bogus")
    with pytest.raises(qcore.InvalidArgumentError) as info:
        qcore.Context()
    message = str(info.value)
    assert "qc_ctx_create" in message and "QC_ARCH" in message and "bogus" in message


def test_arch_from_environment(monkeypatch):
    monkeypatch.setenv("QC_ARCH", "ref")
    assert qcore.Context().arch == "ref"
    monkeypatch.setenv("QC_ARCH", "auto")
    assert qcore.Context().arch == qcore.best_arch()
    monkeypatch.setenv("QC_ARCH", "")
    assert qcore.Context().arch == qcore.best_arch()
    unsupported = [a for a in ("avx2", "avx512") if not qcore.arch_supported(a)]
    for arch in unsupported:
        monkeypatch.setenv("QC_ARCH", arch)
        with pytest.raises(qcore.UnsupportedError, match="qc_ctx_create"):
            qcore.Context()


def test_unsupported_arch_setting():
    for arch in ("avx2", "avx512"):
        if not qcore.arch_supported(arch):
            with pytest.raises(qcore.UnsupportedError, match=arch):
                qcore.Context(arch=arch)
        else:
            assert qcore.Context(arch=arch).arch == arch


def many_channels(rng):
    return rng.standard_normal((1000, 16)).astype(np.float32), O(granularity="channel", axis=0)


def test_progress_callback_is_called(rng):
    x, opts = many_channels(rng)
    calls = []
    ctx = qcore.Context(progress=lambda stage, done, total: calls.append((stage, done, total)))
    qcore.choose_params(x, opts, ctx=ctx)
    assert calls, "the progress callback was never called"
    dones = [d for _, d, _ in calls]
    assert dones == sorted(dones) and all(t == calls[-1][2] for _, _, t in calls) and dones[-1] == calls[-1][2]
    assert all(isinstance(s, str) and s for s, _, _ in calls)


def test_progress_returning_true_cancels(rng):
    x, opts = many_channels(rng)
    calls = []

    def stop(stage, done, total):
        calls.append(done)
        return True

    with pytest.raises(qcore.CancelledError) as info:
        qcore.choose_params(x, opts, ctx=qcore.Context(progress=stop))
    assert len(calls) == 1
    assert "qc_quant_choose_params" in str(info.value) and "progress" in str(info.value)


def test_progress_exception_is_reraised(rng):
    x, opts = many_channels(rng)

    class Stop(Exception):
        pass

    raised = Stop("from the callback")

    def fail(stage, done, total):
        raise raised

    ctx = qcore.Context(progress=fail)
    with pytest.raises(Stop) as info:
        qcore.choose_params(x, opts, ctx=ctx)
    assert info.value is raised
    # the context still works afterwards, and without the callback nothing is raised
    ctx.progress = None
    qcore.choose_params(x, opts, ctx=ctx)


def test_progress_bar_writes_a_bar(rng):
    stream = io.StringIO()
    bar = qcore.ProgressBar(stream=stream, width=10)
    bar("stage one", 3, 10)
    assert stream.getvalue() == "\r%-24s [###.......] 3/10" % "stage one"
    bar("stage one", 10, 10)
    assert stream.getvalue().endswith("[##########] 10/10\n")
    stream = io.StringIO()
    x, opts = many_channels(rng)
    qcore.choose_params(x, opts, ctx=qcore.Context(progress=qcore.ProgressBar(stream=stream)))
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and "#" * 30 in text and "1000/1000" in text


def test_unpack_int4_too_few_bytes():
    with pytest.raises(ValueError, match="'packed'"):
        qcore.unpack_int4(np.zeros(2, np.uint8), 5)


def test_pack_int4_out_of_range():
    with pytest.raises(qcore.InvalidArgumentError, match=r"qc_pack_int4: argument 'values': element 2 is 8"):
        qcore.pack_int4(np.array([0, 1, 8], np.int8), signed=True)
    with pytest.raises(qcore.InvalidArgumentError, match=r"element 0 is -1"):
        qcore.pack_int4(np.array([-1, 1], np.int8), signed=False)


def test_eight_dimensions_work(rng):
    x = rng.standard_normal((2, 1, 3, 1, 2, 1, 2, 3)).astype(np.float32)
    opts = O(symmetric=False, granularity="channel", axis=6)
    scale, zero_point = qcore.choose_params(x, opts)
    assert scale.shape == (2,)
    assert qcore.quantize(x, scale, zero_point, opts).shape == x.shape


def test_nine_dimensions_give_invalid_argument():
    x = np.zeros((1,) * 9, np.float32)
    with pytest.raises(qcore.InvalidArgumentError, match=r"'x'.*ndim"):
        qcore.quantize(x, np.array(1.0, np.float32), None, O())


def test_packed_int4_with_too_few_bytes():
    # data is 1 byte, but a view of a 32-byte buffer: the over-read stays inside memory numpy owns (an
    # AddressSanitizer build would otherwise abort the whole run)
    backing = np.zeros(32, np.uint8)
    q = qcore.PackedInt4(backing[:1], (64,), True)
    with pytest.raises((qcore.ShapeError, ValueError), match="'q"):
        qcore.dequantize(q, np.array(1.0, np.float32), None, O(bits=4))


def test_out_shape_error_names_out(data):
    x, s, z = data
    with pytest.raises(qcore.ShapeError, match="'out'"):
        qcore.fake_quantize(x, s, z, O(), out=np.empty(x.size, np.float32))
