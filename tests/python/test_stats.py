"""sqnr_db, relative_mse, kurtosis and max_over_rms against their numpy formulas (qc_quant.h)."""
import math

import numpy as np
import pytest

import qcore

RTOL = 1e-12  # the library sums in element order, numpy pairwise: a few ulps apart


def np_sqnr_db(ref, approx):
    r, a = ref.astype(np.float64), approx.astype(np.float64)
    return 10.0 * np.log10(np.sum(r * r) / np.sum((r - a) ** 2))


def np_relative_mse(ref, approx):
    r, a = ref.astype(np.float64), approx.astype(np.float64)
    return np.sum((r - a) ** 2) / np.sum(r * r)


def np_kurtosis(x):
    """Pearson kurtosis, scipy.stats.kurtosis(x, fisher=False, bias=True): m4 / m2^2."""
    d = x.astype(np.float64).ravel()
    d = d - d.mean()
    return d.size * np.sum(d ** 4) / np.sum(d ** 2) ** 2


def np_max_over_rms(x):
    v = x.astype(np.float64)
    return np.max(np.abs(v)) / np.sqrt(np.mean(v * v))


DTYPES = [np.float32, np.float64]


def pairs(rng, dtype):
    ref = rng.standard_normal((37, 29)).astype(dtype)
    yield ref, (ref + 0.01 * rng.standard_normal(ref.shape)).astype(dtype)
    yield ref, np.zeros_like(ref)
    ref = (rng.standard_t(2, 1001) * 1e3).astype(dtype)
    yield ref, np.round(ref).astype(dtype)
    ref = np.array([1e-20, -3e-20, 2e-20], dtype)
    yield ref, ref * np.array([1.0, 1.0, 0.5], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sqnr_and_relative_mse(rng, dtype):
    for ref, approx in pairs(rng, dtype):
        assert qcore.sqnr_db(ref, approx) == pytest.approx(np_sqnr_db(ref, approx), rel=RTOL)
        assert qcore.relative_mse(ref, approx) == pytest.approx(np_relative_mse(ref, approx), rel=RTOL)


def test_known_values():
    ref = np.array([1.0, 1.0], np.float32)
    assert qcore.sqnr_db(ref, np.array([1.0, 0.0], np.float32)) == pytest.approx(10 * math.log10(2), rel=1e-15)
    assert qcore.relative_mse(ref, np.array([1.0, 0.0], np.float32)) == 0.5
    assert qcore.kurtosis(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(1.64, rel=1e-15)
    assert qcore.max_over_rms(np.array([3.0, -4.0], np.float32)) == pytest.approx(4 / math.sqrt(12.5), rel=1e-15)
    assert qcore.kurtosis(np.array([-1.0, 1.0])) == 1.0           # the smallest Pearson kurtosis
    assert qcore.max_over_rms(np.full(7, -2.5)) == 1.0


def test_mixed_float_widths(rng):
    """f32 ref with f64 approx (each is read in its own type, sums in double)."""
    ref = rng.standard_normal(200).astype(np.float32)
    approx = ref.astype(np.float64) + 1e-3 * rng.standard_normal(200)
    assert qcore.sqnr_db(ref, approx) == pytest.approx(np_sqnr_db(ref, approx), rel=RTOL)
    assert qcore.relative_mse(approx, ref) == pytest.approx(np_relative_mse(approx, ref), rel=RTOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kurtosis_and_max_over_rms(rng, dtype):
    samples = [rng.standard_normal(5000), rng.standard_t(3, (40, 50)), rng.uniform(-1, 1, 999),
               rng.standard_normal(10) + 1e4, np.array([0.0, 0.0, 0.0, 5.0]), rng.laplace(size=(3, 4, 5))]
    for x in samples:
        x = x.astype(dtype)
        assert qcore.kurtosis(x) == pytest.approx(np_kurtosis(x), rel=1e-9 if np.abs(x).min() > 1e3 else RTOL)
        assert qcore.max_over_rms(x) == pytest.approx(np_max_over_rms(x), rel=RTOL)


def test_kurtosis_of_known_distributions(rng):
    assert qcore.kurtosis(rng.standard_normal(400000)) == pytest.approx(3.0, abs=0.05)
    assert qcore.kurtosis(rng.uniform(size=400000)) == pytest.approx(1.8, abs=0.02)
    assert qcore.kurtosis(rng.laplace(size=400000)) == pytest.approx(6.0, abs=0.2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_equal_arrays_give_infinite_sqnr(rng, dtype):
    x = rng.standard_normal((8, 9)).astype(dtype)
    assert qcore.sqnr_db(x, x.copy()) == math.inf
    assert qcore.relative_mse(x, x.copy()) == 0.0
    zeros = np.zeros(5, dtype)
    assert qcore.sqnr_db(zeros, zeros.copy()) == math.inf   # equal, though ref is all zero


@pytest.mark.parametrize("dtype", DTYPES)
def test_undefined_results_raise_numeric_error(dtype):
    zeros = np.zeros(6, dtype)
    ones = np.ones(6, dtype)
    with pytest.raises(qcore.NumericError, match="'ref'"):
        qcore.sqnr_db(zeros, ones)
    with pytest.raises(qcore.NumericError, match="'ref'"):
        qcore.relative_mse(zeros, ones)
    with pytest.raises(qcore.NumericError, match="'ref'"):
        qcore.relative_mse(zeros, zeros.copy())
    with pytest.raises(qcore.NumericError, match=r"qc_stat_kurtosis: argument 'x'.*constant"):
        qcore.kurtosis(np.full((3, 3), 2.5, dtype))
    with pytest.raises(qcore.NumericError, match=r"qc_stat_kurtosis"):
        qcore.kurtosis(zeros)
    with pytest.raises(qcore.NumericError, match=r"qc_stat_max_over_rms: argument 'x'.*zero"):
        qcore.max_over_rms(zeros)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_inputs_raise_numeric_error(bad, dtype):
    x = np.arange(1.0, 11.0).astype(dtype)
    y = x.copy()
    y[7] = bad
    for call, args, name, function in [(qcore.sqnr_db, (y, x), "ref", "qc_stat_sqnr_db"),
                                       (qcore.sqnr_db, (x, y), "approx", "qc_stat_sqnr_db"),
                                       (qcore.relative_mse, (y, x), "ref", "qc_stat_relative_mse"),
                                       (qcore.relative_mse, (x, y), "approx", "qc_stat_relative_mse"),
                                       (qcore.kurtosis, (y,), "x", "qc_stat_kurtosis"),
                                       (qcore.max_over_rms, (y,), "x", "qc_stat_max_over_rms")]:
        with pytest.raises(qcore.NumericError) as info:
            call(*args)
        message = str(info.value)
        assert function in message and "'%s'" % name in message and "element 7" in message, message


def test_shape_errors():
    a = np.ones((4, 5), np.float32)
    for call in (qcore.sqnr_db, qcore.relative_mse):
        with pytest.raises(qcore.ShapeError, match=r"'ref'.*'approx'|'approx'.*'ref'"):
            call(a, np.ones((5, 4), np.float32))
        with pytest.raises(qcore.ShapeError):
            call(a, np.ones(20, np.float32))       # same count, other shape
        with pytest.raises(qcore.ShapeError):
            call(np.ones(0, np.float32), np.ones(0, np.float32))
    for call in (qcore.kurtosis, qcore.max_over_rms):
        with pytest.raises(qcore.ShapeError, match="'x'"):
            call(np.ones((0, 3)))


def test_dtype_errors():
    for call, args, name in [(qcore.sqnr_db, (np.ones(3, np.int32), np.ones(3)), "ref"),
                             (qcore.relative_mse, (np.ones(3), np.ones(3, np.float16)), "approx"),
                             (qcore.kurtosis, (np.ones(3, np.int64),), "x"),
                             (qcore.max_over_rms, ([1.0, 2.0],), "x")]:
        with pytest.raises(qcore.DTypeError, match="'%s'" % name):
            call(*args)
