"""Cayley SGD against closed-form optima: the orthogonal Procrustes problem min ||A X - B||_F over
orthogonal X, solved by X* = U V^T from the SVD U S V^T of A^T B (numpy), and the linear problem
max tr(X^T C) over X [n, p] with orthonormal columns, solved by the thin SVD of C. The iterates stay
orthogonal, the steps are bit-identical on 1, 2 and 3 threads, and bad input is named."""
import numpy as np
import pytest

import qcore


def procrustes(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4 * n, n))
    b = a @ qcore.random_orthogonal(n, np.float64, stream=seed) + 0.01 * rng.standard_normal((4 * n, n))
    u, _, vt = np.linalg.svd(a.T @ b)

    def loss_and_grad(x):
        r = a @ x - b
        return 0.5 * np.sum(r * r), a.T @ r

    return loss_and_grad, u @ vt


def start_beside(best):
    """The identity, with its first column negated when det(best) = -1: Cayley steps never leave the
    component of O(n) they start in, so the start must share the optimum's determinant."""
    x = np.eye(best.shape[0])
    x[0, 0] = np.sign(np.linalg.det(best))
    return x


@pytest.mark.parametrize("n", [8, 16, 40])
def test_procrustes_optimum_is_reached_and_x_stays_orthogonal(n):
    loss_and_grad, best = procrustes(n, n)
    options = qcore.CayleyOptions(lr=0.1 / n, momentum=0.9, iterations=5, qr_every=10)
    x, losses, errors = qcore.cayley_minimize(start_beside(best), loss_and_grad, 600, options)
    assert np.abs(x - best).max() < 1e-4
    assert losses[-1] <= losses[0] and losses[-1] == pytest.approx(loss_and_grad(best)[0], rel=1e-6)
    assert max(errors) < 1e-3 and errors[-1] < 1e-12


def test_without_qr_more_iterations_keep_x_closer_to_orthogonal():
    loss_and_grad, best = procrustes(16, 3)
    worst = {}
    for iterations in (2, 5, 10):
        options = qcore.CayleyOptions(lr=0.01, momentum=0.9, iterations=iterations, qr_every=0)
        x, _, errors = qcore.cayley_minimize(start_beside(best), loss_and_grad, 400, options)
        worst[iterations] = max(errors)
    assert worst[10] < 1e-5 < worst[5] * 10 and worst[5] < worst[2]
    assert np.abs(x - best).max() < 1e-4  # the last run, 10 iterations


def test_stiefel_linear_problem():
    n, p = 24, 5
    c = np.random.default_rng(4).standard_normal((n, p))
    u, _, vt = np.linalg.svd(c, full_matrices=False)
    x0 = np.ascontiguousarray(qcore.random_orthogonal(n, np.float64, stream=2)[:, :p])
    x, _, errors = qcore.cayley_minimize(x0, lambda x: (-np.sum(x * c), -c), 500,
                                         qcore.CayleyOptions(lr=0.05, qr_every=25))
    assert np.abs(x - u @ vt).max() < 1e-4
    assert errors[-1] < 1e-12


def test_steps_are_identical_on_1_2_and_3_threads():
    loss_and_grad, _ = procrustes(64, 5)
    results = []
    for threads in (1, 2, 3):
        ctx = qcore.Context(threads=threads)
        x, _, _ = qcore.cayley_minimize(np.eye(64), loss_and_grad, 20, qcore.CayleyOptions(lr=0.001, qr_every=7),
                                        ctx)
        results.append(x)
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])


def test_bad_input_is_named():
    opt = qcore.CayleySGD(4)
    x, g = np.eye(4), np.zeros((4, 4))
    with pytest.raises(qcore.ShapeError, match=r"argument 'x' has shape \[3, 4\]"):
        opt.step(np.eye(4)[:3].copy(), g[:3].copy())
    with pytest.raises(qcore.ShapeError, match=r"'grad'"):
        opt.step(x, np.zeros((4, 3)))
    g[1, 2] = np.nan
    before = x.copy()
    with pytest.raises(qcore.NumericError, match=r"argument 'grad'"):
        opt.step(x, g)
    assert np.array_equal(x, before)
    with pytest.raises(qcore.DTypeError, match=r"argument 'x'"):
        opt.step(x.astype(np.float32), np.zeros((4, 4)))
    with pytest.raises(qcore.ShapeError, match=r"'p'"):
        qcore.CayleySGD(3, 4)
    for bad, pattern in ((qcore.CayleyOptions(lr=0.0), "lr"), (qcore.CayleyOptions(momentum=1.0), "momentum"),
                         (qcore.CayleyOptions(iterations=0), "iterations"), (qcore.CayleyOptions(qr_every=-1), "qr_every"),
                         (qcore.CayleyOptions(step_bound=float("inf")), "step_bound")):
        with pytest.raises(qcore.InvalidArgumentError, match=r"argument 'opts': %s" % pattern):
            qcore.CayleySGD(4, options=bad)
