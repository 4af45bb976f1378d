"""Outlier metrics against numpy and scipy formulas (Pearson kurtosis: scipy.stats.kurtosis with
fisher=False, 3 for a Gaussian; max/RMS; SQNR of a numpy re-implementation of the symmetric min-max grid),
their use before and after a rotation, and the precise errors of every rotation function."""
import numpy as np
import pytest

import qcore

scipy_stats = pytest.importorskip("scipy.stats")


def heavy_tailed(rng, shape):
    """Activations with a few channels 30x larger, as transformers have."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, [3, 77]] *= 30.0
    return x


def np_fake_quant_symmetric(x, bits):
    """Per-tensor symmetric signed min-max grid with ONNX rounding, in float32 as qc_quant.h specifies."""
    qmax = 2 ** (bits - 1) - 1
    scale = np.float32(np.abs(x).max() / np.float64(qmax))
    q = np.clip(np.rint(x / scale), -qmax - 1, qmax)
    return (q * scale).astype(np.float32)


def np_sqnr_db(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    return 10 * np.log10(np.sum(x * x) / np.sum((x - y) ** 2))


@pytest.mark.parametrize("bits", [4, 8])
def test_metrics_match_numpy_and_scipy(bits):
    x = heavy_tailed(np.random.default_rng(bits), (64, 384))
    m = qcore.outlier_metrics(x, qcore.QuantOptions(bits=bits))
    xd = x.astype(np.float64).ravel()
    assert m.kurtosis == pytest.approx(scipy_stats.kurtosis(xd, fisher=False), rel=1e-10)
    assert m.max_over_rms == pytest.approx(np.abs(xd).max() / np.sqrt(np.mean(xd * xd)), rel=1e-12)
    assert m.sqnr_db == pytest.approx(np_sqnr_db(x, np_fake_quant_symmetric(x, bits)), rel=1e-9)


def test_metrics_reuse_the_quantizer_for_any_grid():
    x = heavy_tailed(np.random.default_rng(5), (32, 128))
    grid = qcore.QuantOptions(bits=4, symmetric=False, granularity="channel", axis=1, scale_method="mse")
    scale, zero_point = qcore.choose_params(x, grid)
    want = qcore.sqnr_db(x, qcore.fake_quantize(x, scale, zero_point, grid))
    assert qcore.outlier_metrics(x, grid).sqnr_db == pytest.approx(want, rel=1e-12)
    assert np.isnan(qcore.outlier_metrics(x).sqnr_db)


def test_a_rotation_spreads_outliers():
    x = heavy_tailed(np.random.default_rng(6), (256, 384))
    grid = qcore.QuantOptions(bits=4)
    before = qcore.outlier_metrics(x, grid)
    for rotated in (x @ qcore.random_orthogonal(384, stream=1), qcore.random_hadamard(x, stream=1)):
        after = qcore.outlier_metrics(np.ascontiguousarray(rotated, np.float32), grid)
        # Rows keep different energies (a scale mixture), so the kurtosis stays above 3, but far below before.
        assert before.kurtosis > 100 and after.kurtosis < before.kurtosis / 20
        assert after.max_over_rms < before.max_over_rms / 3
        assert after.sqnr_db > before.sqnr_db + 2


# ---- precise errors ---------------------------------------------------------------------------------------

def test_unsupported_orders_name_the_argument():
    with pytest.raises(qcore.UnsupportedError, match=r"qc_fwht: argument 'x': .*n = 92.*odd part 23"):
        qcore.fwht(np.zeros((2, 92), np.float32))
    with pytest.raises(qcore.UnsupportedError, match=r"argument 'n'.*n = 3\b"):
        qcore.hadamard_factor(3)
    with pytest.raises(qcore.UnsupportedError, match=r"argument 'out'.*n = 116"):
        qcore.hadamard_matrix(116)
    with pytest.raises(qcore.UnsupportedError, match=r"qc_random_hadamard: argument 'x'"):
        qcore.random_hadamard(np.zeros(24 * 23, np.float32))


def test_nan_and_inf_are_reported_and_leave_x_unchanged():
    x = np.ones((3, 64), np.float32)
    x[1, 5] = np.nan
    before = x.copy()
    with pytest.raises(qcore.NumericError, match=r"argument 'x'"):
        qcore.fwht(x, inplace=True)
    np.testing.assert_array_equal(x, before)
    x[1, 5] = np.inf
    with pytest.raises(qcore.NumericError, match=r"argument 'x'"):
        qcore.random_hadamard(x)
    with pytest.raises(qcore.NumericError, match=r"qc_outlier_metrics_compute: .*'x'"):
        qcore.outlier_metrics(x)


def test_wrong_types_layouts_and_shapes():
    with pytest.raises(qcore.DTypeError, match=r"argument 'x'"):
        qcore.fwht(np.zeros((2, 64), np.float64))
    with pytest.raises(qcore.LayoutError, match=r"argument 'x'"):
        qcore.fwht(np.zeros((64, 2), np.float32).T)
    with pytest.raises(qcore.ShapeError, match=r"argument 'x'"):
        qcore.fwht(np.zeros((), np.float32))
    with pytest.raises(qcore.ShapeError, match=r"argument 'x'"):
        qcore.fwht(np.zeros((4, 0), np.float32))
    with pytest.raises(qcore.DTypeError, match=r"argument 'dtype'"):
        qcore.random_orthogonal(8, np.int32)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(qcore.InvalidArgumentError, match=r"argument 'n'"):
            qcore.random_orthogonal(bad)
    with pytest.raises(qcore.NumericError, match=r"'x' is constant"):
        qcore.outlier_metrics(np.full(10, 2.0, np.float32))
    with pytest.raises(qcore.InvalidArgumentError, match=r"outlier_metrics: argument 'opts': bits = 1"):
        qcore.outlier_metrics(np.arange(10, dtype=np.float32), qcore.QuantOptions(bits=1))
    with pytest.raises(qcore.InvalidArgumentError, match=r"axis"):
        qcore.outlier_metrics(np.arange(10, dtype=np.float32), qcore.QuantOptions(granularity="channel", axis=3))
