"""benchmarks/rotation_act_loss.py (the objective of rotation_accuracy.py's learned_a4 rotations) against
torch autograd of its formula written directly, qcore's built-in objective, and a brute-force clip search."""
import os
import sys

import numpy as np
import pytest

import qcore

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "benchmarks"))
from rotation_act_loss import ActivationRotationLoss, mse_clip_ratio  # noqa: E402


def problem(seed=1, n=200, d=16, out=24):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, 3] *= 20  # an outlier channel, as after MiniLM's LayerNorms
    w = rng.standard_normal((out, d)).astype(np.float32)
    r = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return x, w, r


def autograd(x, w, r, ratio, bits=4):
    """(loss, dL/dR): ||X W^T - Q(X R) (W R)^T||^2 / n with s = ratio max|X R| / qmax, round straight-through."""
    torch = pytest.importorskip("torch")
    x64, w64 = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    rt = torch.tensor(r, requires_grad=True)
    qmax = 2 ** (bits - 1) - 1
    a = x64 @ rt
    s = ratio * a.abs().max() / qmax
    t = a / s
    q = torch.clamp(t + (torch.round(t) - t).detach(), -qmax - 1, qmax) * s
    loss = torch.sum((x64 @ w64.T - q @ (w64 @ rt).T) ** 2) / x.shape[0]
    loss.backward()
    return loss.item(), rt.grad.numpy()


@pytest.mark.parametrize("clip", ["minmax", "mse"])
def test_loss_and_gradient_match_autograd(clip):
    x, w, r = problem()
    objective = ActivationRotationLoss(x, w, clip=clip)
    loss, grad = objective(r)
    ratio = 1.0 if clip == "minmax" else mse_clip_ratio(x.astype(np.float64) @ r, 7)
    if clip == "mse":
        assert ratio < 1.0  # the outlier channel makes clipping pay, so the clipped values' terms are exercised
    want_loss, want_grad = autograd(x, w, r, ratio)
    assert loss == pytest.approx(want_loss, rel=1e-9)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-7, atol=1e-7 * np.abs(want_grad).max())


def test_minmax_is_qcores_objective_without_weight_grid():
    x, w, r = problem(seed=2)
    want_loss, want_grad = qcore.LinearRotationLoss(x, w, qcore.QuantOptions(bits=4, granularity="tensor"), None)(r)
    loss, grad = ActivationRotationLoss(x, w, clip="minmax")(r)
    assert loss == pytest.approx(want_loss, rel=1e-6)  # qcore rounds X R to float32 first
    np.testing.assert_allclose(grad, want_grad, atol=1e-5 * np.abs(want_grad).max())


def test_mse_is_qcores_objective_with_an_mse_grid():
    """Since 1.6 qcore differentiates MSE grids the same way; its 50-candidate search picks the same clip."""
    x, w, r = problem(seed=5)
    act = qcore.QuantOptions(bits=4, granularity="tensor", scale_method="mse", mse_steps=50)
    want_loss, want_grad = qcore.LinearRotationLoss(x, w, act, None)(r)
    loss, grad = ActivationRotationLoss(x, w, clip="mse")(r)
    assert loss == pytest.approx(want_loss, rel=1e-6)
    np.testing.assert_allclose(grad, want_grad, atol=1e-5 * np.abs(want_grad).max())


def test_clip_ratio_is_the_brute_force_minimum():
    x, _, r = problem(seed=3)
    a = x.astype(np.float64) @ r
    amax = np.abs(a).max()

    def error(c):
        s = c * amax / 7
        return np.sum((np.clip(np.round(a / s), -8, 7) * s - a) ** 2)

    grid = [0.2 + 0.8 * i / 49 for i in range(50)]
    assert error(mse_clip_ratio(a, 7)) == pytest.approx(min(error(c) for c in grid), rel=1e-12)


def test_best_keeps_the_least_loss_seen():
    x, w, r = problem(seed=4)
    objective = ActivationRotationLoss(x, w, every=1000)
    losses = [objective(m)[0] for m in (r, np.eye(16), r[:, ::-1].copy())]
    k = int(np.argmin(losses))
    assert objective.best_loss == min(losses)
    np.testing.assert_array_equal(objective.best, (r, np.eye(16), r[:, ::-1])[k])


def test_rejects_an_unknown_clip():
    x, w, _ = problem()
    with pytest.raises(ValueError, match="clip"):
        ActivationRotationLoss(x, w, clip="percentile")
