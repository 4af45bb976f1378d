"""QEM fitting, levels, encoding and packing (qc_lq.h) against numpy oracles of the formulas (lq_oracle.py):
the closed form against a least-squares solve, the error sequence never rising, nearest-level codes with
ties, bit-planes against numpy.packbits; results the same on 1, 2 and 3 threads; bad input errors."""
import numpy as np
import pytest

import lq_oracle as oracle
import qcore

CODES = ["signed", "unsigned"]


def sample(rng, rows, n, code):
    """Heavy-tailed data; after a ReLU for unsigned codes (as LQ-Nets' {0,1} activations see it)."""
    x = rng.standard_t(4, size=(rows, n)) * rng.uniform(0.1, 3.0, size=(rows, 1))
    return (np.maximum(x, 0) if code == "unsigned" else x).astype(np.float32)


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_one_step_is_the_least_squares_solve(rng, code, bits):
    x = sample(rng, 5, 301, code)
    fit = qcore.lq_fit(x, bits, code, qcore.LqOptions(max_iters=1, ridge=0.0))
    v0 = oracle.initial_basis(x, bits)
    codes = oracle.encode(x, v0, code)
    for r in range(x.shape[0]):
        expected = oracle.closed_form(x[r], codes[r], bits, code, 0.0, v0[r])
        np.testing.assert_allclose(fit.basis[r], expected, rtol=2e-6, atol=1e-7 * np.abs(x[r]).max())


def test_ridge_step_is_the_regularized_solve(rng):
    x = sample(rng, 4, 40, "signed")
    ridge = 3.0  # large against n = 40, so the regularization visibly moves the solution
    fit = qcore.lq_fit(x, 2, "signed", qcore.LqOptions(max_iters=1, ridge=ridge))
    v0 = oracle.initial_basis(x, 2)
    codes = oracle.encode(x, v0, "signed")
    accepted = 0
    for r in range(x.shape[0]):
        plain = oracle.closed_form(x[r], codes[r], 2, "signed", 0.0, v0[r])
        expected = oracle.closed_form(x[r], codes[r], 2, "signed", ridge, v0[r])
        if fit.basis[r].tolist() != v0[r].tolist():  # the step was accepted (its error fell)
            accepted += 1
            np.testing.assert_allclose(fit.basis[r], expected, rtol=2e-6)
            assert not np.allclose(expected, plain, rtol=1e-4)
    assert accepted >= 2


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_error_never_rises_and_matches_the_levels(rng, code, bits):
    x = sample(rng, 7, 1000, code)
    fit = qcore.lq_fit(x, bits, code, qcore.LqOptions(max_iters=60), history=True)
    assert np.all(np.diff(fit.history) <= 0)
    assert fit.history[0] == fit.error_initial and fit.history[-1] == fit.error_final
    assert fit.error_final < fit.error_initial and fit.iterations >= 1
    # The reported errors are the squared distances to the nearest levels of the initial and fitted bases.
    for basis, error in [(oracle.initial_basis(x, bits), fit.error_initial), (fit.basis, fit.error_final)]:
        q = oracle.decode(oracle.encode(x, basis, code), basis, code)
        np.testing.assert_allclose(((x - q) ** 2).sum(), error, rtol=1e-9)


def test_fit_beats_uniform_levels_at_two_bits(rng):
    """QEM's non-uniform levels fit heavy-tailed weights better than the best uniform 4-level grid of the
    same span search (an independent baseline: per-row MSE-optimal symmetric uniform grid)."""
    x = sample(rng, 8, 2000, "signed").astype(np.float64)
    fit = qcore.lq_fit(x.astype(np.float32), 2, "signed")
    best_uniform = 0.0
    for r in range(x.shape[0]):
        errs = []
        for step in np.linspace(0.01, 3, 600) * np.abs(x[r]).mean():
            q = (np.clip(np.floor(x[r] / step), -2, 1) + 0.5) * step
            errs.append(((x[r] - q) ** 2).sum())
        best_uniform += min(errs)
    assert fit.error_final < best_uniform


def test_max_iters_zero_keeps_the_initial_basis(rng):
    x = sample(rng, 3, 100, "signed")
    fit = qcore.lq_fit(x, 3, "signed", qcore.LqOptions(max_iters=0))
    np.testing.assert_array_equal(fit.basis, oracle.initial_basis(x, 3))
    assert fit.iterations == 0 and fit.error_initial == fit.error_final


@pytest.mark.parametrize("code", CODES)
def test_levels_thresholds_codes(rng, code):
    basis = rng.standard_normal((6, 3)).astype(np.float32)
    basis[0] = [1, 1, 0]  # equal levels: ordered by code
    levels, codes, thresholds = qcore.lq_levels(basis, code)
    by_code = oracle.levels_by_code(basis, code)
    for r in range(6):
        order = np.lexsort((np.arange(8), by_code[r]))
        np.testing.assert_array_equal(codes[r], order)
        np.testing.assert_array_equal(levels[r], by_code[r][order])
        np.testing.assert_array_equal(thresholds[r], (levels[r][:-1] + levels[r][1:]) / 2)


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_encode_decode_nearest_level_with_ties(rng, code, bits):
    basis = np.abs(rng.standard_normal((4, bits))).astype(np.float32) * np.float32(0.5)
    levels, _, thresholds = qcore.lq_levels(basis, code)
    x = sample(rng, 4, 999, code)
    # Values exactly on thresholds (representable ones) and just beside them.
    for r in range(4):
        t = thresholds[r].astype(np.float32)
        on = t[t.astype(np.float64) == thresholds[r]]
        x[r, :on.size] = on
        x[r, 100:100 + t.size] = np.nextafter(t, np.float32(np.inf))
    codes = qcore.lq_encode(x, basis, code)
    np.testing.assert_array_equal(codes, oracle.encode(x, basis, code))
    np.testing.assert_array_equal(qcore.lq_decode(codes, basis, code),
                                  oracle.decode(codes, basis, code).astype(np.float32))
    shared = qcore.lq_encode(x, basis[:1], code)
    np.testing.assert_array_equal(shared, oracle.encode(x, basis[:1], code))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 511, 512, 513, 1100])
@pytest.mark.parametrize("bits", [1, 3, 4])
def test_pack_matches_packbits(rng, n, bits):
    codes = rng.integers(0, 1 << bits, size=(3, n), dtype=np.uint8)
    planes = qcore.lq_pack(codes, bits)
    assert planes.shape == (3, bits, qcore.plane_words(n)) and qcore.plane_words(n) % 8 == 0
    np.testing.assert_array_equal(planes, oracle.pack(codes, bits))


def test_results_do_not_depend_on_threads(rng):
    x = sample(rng, 33, 700, "signed")
    fits = [qcore.lq_fit(x, 3, "signed", ctx=qcore.Context(threads=t), history=True) for t in (1, 2, 3)]
    for f in fits[1:]:
        np.testing.assert_array_equal(f.basis, fits[0].basis)
        np.testing.assert_array_equal(f.history, fits[0].history)
    codes = [qcore.lq_encode(x, fits[0].basis, "signed", ctx=qcore.Context(threads=t)) for t in (1, 3)]
    np.testing.assert_array_equal(codes[0], codes[1])


def test_bad_input(rng):
    x = sample(rng, 2, 50, "signed")
    with pytest.raises(qcore.NumericError, match=r"qc_lq_fit: .*'x'"):
        bad = x.copy()
        bad[1, 7] = np.nan
        qcore.lq_fit(bad, 2)
    with pytest.raises(qcore.InvalidArgumentError, match=r"K = dims\[1\] = 5"):
        qcore.lq_fit(x, 5)
    with pytest.raises(qcore.InvalidArgumentError, match="max_iters"):
        qcore.lq_fit(x, 2, opts=qcore.LqOptions(max_iters=-1))
    with pytest.raises(qcore.InvalidArgumentError, match="ridge"):
        qcore.lq_fit(x, 2, opts=qcore.LqOptions(ridge=float("nan")))
    with pytest.raises(qcore.InvalidArgumentError, match="'code'"):
        qcore.lq_fit(x, 2, "ternary")
    with pytest.raises(qcore.ShapeError, match="'x': rows are empty"):
        qcore.lq_fit(np.zeros((2, 0), np.float32), 2)
    basis = np.ones((2, 2), np.float32)
    with pytest.raises(qcore.ShapeError, match="'basis': 3 rows, expected 2 or 1"):
        qcore.lq_encode(x, np.ones((3, 2), np.float32))
    with pytest.raises(qcore.NumericError, match="'basis'"):
        qcore.lq_encode(x, np.array([[1, np.inf]], np.float32))
    with pytest.raises(qcore.InvalidArgumentError, match="element 3 is 4, not below 2\\^2"):
        qcore.lq_decode(np.array([[0, 1, 2, 4]], np.uint8), basis[:1])
    with pytest.raises(qcore.InvalidArgumentError, match="element 1 is 9, not below 2\\^3"):
        qcore.lq_pack(np.array([[0, 9]], np.uint8), 3)
    with pytest.raises(qcore.DTypeError):
        qcore.lq_encode(x.astype(np.float64), basis)


def refit_problem(rng, code, bits, rows=6, n=40, samples=600):
    w = rng.standard_normal((rows, n)).astype(np.float32)
    if code == "unsigned":
        w = np.abs(w)
    x = np.maximum(rng.standard_normal((samples, n)), 0).astype(np.float32)
    xq = (x + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)  # the inputs as a quantized model sees them
    stats = qcore.GpxqStats("gpfq", n)
    stats.add(x, xq)
    fit = qcore.lq_fit(w, bits, code)
    codes = qcore.lq_encode(w, fit.basis, code)
    return w, x, xq, stats.hessian(), stats.cross(), fit.basis, codes


def output_error(w, x, xq, codes, basis, code):
    return ((x.astype(np.float64) @ w.T.astype(np.float64) - xq @ oracle.decode(codes, basis, code).T) ** 2).sum()


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_output_refit_is_the_least_squares_fit_of_the_outputs(rng, code, bits):
    w, x, xq, h, g, basis, codes = refit_problem(rng, code, bits)
    refit = qcore.lq_refit_output(codes, basis, w, h, g, code, ridge=0.0)
    for o in range(w.shape[0]):
        design = xq.astype(np.float64) @ oracle.code_bits(codes[o], bits, code).astype(np.float64)  # [samples, K]
        expected = np.linalg.lstsq(design, x.astype(np.float64) @ w[o].astype(np.float64), rcond=None)[0]
        np.testing.assert_allclose(refit[o], expected, rtol=2e-5, atol=1e-6)
    assert output_error(w, x, xq, codes, refit, code) < output_error(w, x, xq, codes, basis, code)


def test_output_refit_threads_and_errors(rng):
    w, x, xq, h, g, basis, codes = refit_problem(rng, "signed", 2, rows=37)
    results = [qcore.lq_refit_output(codes, basis, w, h, g, ctx=qcore.Context(threads=t)) for t in (1, 2, 3)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    with pytest.raises(qcore.ShapeError, match="'h'"):
        qcore.lq_refit_output(codes, basis, w, h[:5, :5].copy(), g)
    with pytest.raises(qcore.NumericError, match="'g'"):
        bad = g.copy()
        bad[3, 4] = np.nan
        qcore.lq_refit_output(codes, basis, w, h, bad)
    with pytest.raises(qcore.InvalidArgumentError, match="'ridge'"):
        qcore.lq_refit_output(codes, basis, w, h, g, ridge=-1.0)
    with pytest.raises(qcore.InvalidArgumentError, match="element 0 is 7, not below 2\\^2"):
        bad_codes = codes.copy()
        bad_codes[0, 0] = 7
        qcore.lq_refit_output(bad_codes, basis, w, h, g)
    # A row whose system is singular (ridge 0, H = 0) keeps its old basis.
    kept = qcore.lq_refit_output(codes, basis, w, np.zeros_like(h), g, ridge=0.0)
    np.testing.assert_array_equal(kept, basis)


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("bits", [1, 2, 3])
def test_assigned_codes_follow_optq_on_the_levels(rng, code, bits):
    """Codes equal the numpy oracle of the rule (unblocked, float64) on a layer wider than one block of 128
    columns, and the layer's output error is below nearest-level encoding's with the same bases."""
    w, x, xq, h, g, basis, nearest = refit_problem(rng, code, bits, rows=9, n=300, samples=900)
    codes, used = qcore.lq_assign_codes(w, basis, h, g, code, damping=0.01)
    assert used == 0.01
    expected = oracle.assign_codes(w, basis, h, g, code, 0.01)
    assert (codes != expected).sum() <= 2, (codes != expected).sum()  # only summation-order ties may flip
    assert output_error(w, x, xq, codes, basis, code) < 0.9 * output_error(w, x, xq, nearest, basis, code)


def test_assigned_codes_threads_damping_and_errors(rng):
    w, x, xq, h, g, basis, _ = refit_problem(rng, "signed", 2, rows=37, n=200)
    results = [qcore.lq_assign_codes(w, basis, h, g, ctx=qcore.Context(threads=t))[0] for t in (1, 2, 3)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    # Not positive definite: the damping ratio grows tenfold until H + dI factorizes (mean diag(H) = -0.5
    # counts as 1, so d = 1 is the first that works), and the codes are the oracle's at that damping.
    negative = -0.5 * np.eye(w.shape[1])
    codes, used = qcore.lq_assign_codes(w, basis, negative, negative, damping=0.01)
    assert used == pytest.approx(1.0)
    np.testing.assert_array_equal(codes, oracle.assign_codes(w, basis, negative, negative, "signed", used))
    with pytest.raises(qcore.SingularError, match="not positive definite"):
        qcore.lq_assign_codes(w, basis, -1e9 * np.eye(w.shape[1]), g)
    with pytest.raises(qcore.InvalidArgumentError, match="'damping'"):
        qcore.lq_assign_codes(w, basis, h, g, damping=0.0)
    with pytest.raises(qcore.ShapeError, match="'g'"):
        qcore.lq_assign_codes(w, basis, h, g[:5, :5].copy())
    with pytest.raises(qcore.NumericError, match="'h'"):
        bad = h.copy()
        bad[1, 2] = np.inf
        qcore.lq_assign_codes(w, basis, bad, g)
    with pytest.raises(qcore.ShapeError, match="'basis'"):
        qcore.lq_assign_codes(w, basis[:4].copy(), h, g)


def test_long_row_split_over_threads_same_bits(rng):
    """One long row (a layer's activations) is encoded in chunks shared by the threads: same bits on 1, 2
    and 3 threads, and errors as numpy computes them."""
    x = sample(rng, 1, 300001, "unsigned")  # several 65536-value chunks and a short last one
    fits = [qcore.lq_fit(x, 2, "unsigned", ctx=qcore.Context(threads=t), history=True) for t in (1, 2, 3)]
    for f in fits[1:]:
        np.testing.assert_array_equal(f.basis, fits[0].basis)
        np.testing.assert_array_equal(f.history, fits[0].history)
    q = oracle.decode(oracle.encode(x, fits[0].basis, "unsigned"), fits[0].basis, "unsigned")
    np.testing.assert_allclose(((x - q) ** 2).sum(), fits[0].error_final, rtol=1e-9)
    assert np.all(np.diff(fits[0].history) <= 0)
