"""The Cayley SGD driver (qc_cayley_minimize) and the built-in linear-layer objective
(qc_linear_rotation_loss). Oracles: the Python step loop qcore.cayley_minimize (the same steps, so the same
iterates), the closed-form orthogonal Procrustes optimum (numpy SVD), a numpy implementation of the
objective and its quantizers (ONNX QuantizeLinear arithmetic in float32), and torch autograd through the
same quantizers with a straight-through round (SpinQuant's formulation) for the gradient."""
import numpy as np
import pytest

import qcore


def procrustes(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4 * n, n))
    b = a @ qcore.random_orthogonal(n, np.float64, stream=seed) + 0.01 * rng.standard_normal((4 * n, n))
    u, _, vt = np.linalg.svd(a.T @ b)
    best = u @ vt

    def loss_and_grad(x):
        r = a @ x - b
        return 0.5 * np.sum(r * r), a.T @ r

    start = np.eye(n)
    start[0, 0] = np.sign(np.linalg.det(best))  # Cayley steps keep det: start in the optimum's component
    return loss_and_grad, best, start


def test_driver_takes_the_python_loops_steps_and_reaches_procrustes_optimum():
    loss_and_grad, best, start = procrustes(16, 5)
    options = qcore.CayleyOptions(lr=0.1 / 16, momentum=0.9, iterations=5, qr_every=10)
    x_py, losses_py, errors_py = qcore.cayley_minimize(start, loss_and_grad, 600, options)
    x, losses, orth = qcore.cayley_run(start, loss_and_grad, 600, options)
    assert np.array_equal(x, x_py)
    assert losses[:600] == losses_py and len(losses) == 601
    assert losses[600] == pytest.approx(loss_and_grad(x)[0], rel=1e-15)
    assert orth == errors_py[-1] < 1e-12
    assert np.abs(x - best).max() < 1e-4


def test_callback_stops_the_run_and_failures_restore_x():
    loss_and_grad, _, start = procrustes(8, 2)
    calls = []

    def stop_after_five(x):
        calls.append(x)
        loss, grad = loss_and_grad(x)
        return loss, (None if len(calls) == 6 else grad)

    x, losses, _ = qcore.cayley_run(start, stop_after_five, 100)
    x_py, losses_py, _ = qcore.cayley_minimize(start, loss_and_grad, 5)
    assert np.array_equal(x, x_py) and len(losses) == 6 and losses[:5] == losses_py

    def fails_at_three(x):
        calls.append(None)
        if len(calls) > 3:
            raise KeyError("boom")
        return loss_and_grad(x)

    calls.clear()
    with pytest.raises(KeyError):
        qcore.cayley_run(start, fails_at_three, 10)
    with pytest.raises(qcore.NumericError, match="step 0"):
        qcore.cayley_run(start, lambda x: (np.nan, np.zeros_like(x)), 10)
    with pytest.raises(qcore.NumericError, match="grad"):
        qcore.cayley_run(start, lambda x: (1.0, np.full_like(x, np.inf)), 10)


def test_progress_reports_each_step_and_can_cancel():
    loss_and_grad, _, start = procrustes(8, 3)
    seen = []
    ctx = qcore.Context(progress=lambda stage, done, total: seen.append((stage, done, total)))
    qcore.cayley_run(start, loss_and_grad, 4, ctx=ctx)
    assert seen == [("cayley", i, 4) for i in range(1, 5)]
    ctx = qcore.Context(progress=lambda stage, done, total: done == 2)
    with pytest.raises(qcore.CancelledError):
        qcore.cayley_run(start, loss_and_grad, 4, ctx=ctx)


# ---- the objective ----------------------------------------------------------------------------------

def fake_quant(v, bits, per_row, symmetric):
    """ONNX QuantizeLinear/DequantizeLinear in float32 with min-max parameters (qc_quant.h's rules)."""
    v = v.astype(np.float32)
    axes = 1 if per_row else None
    lo = np.minimum(v.min(axis=axes, keepdims=per_row), 0).astype(np.float64)
    hi = np.maximum(v.max(axis=axes, keepdims=per_row), 0).astype(np.float64)
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        scale = (np.maximum(-lo, hi) / qmax).astype(np.float32)
        zero = np.zeros_like(scale)
    else:
        qmin, qmax = 0, 2 ** bits - 1
        scale = ((hi - lo) / (qmax - qmin)).astype(np.float32)
        zero = np.clip(np.rint(qmin - lo / scale.astype(np.float64)), qmin, qmax).astype(np.float32)
    q = np.clip(np.rint(v / scale) + zero, qmin, qmax)
    return ((q - zero) * scale).astype(np.float32)


def numpy_loss(x, w, r, act_bits, weight_bits):
    """||x w^T - Q_a(x r) Q_w(w r)^T||^2 / n: per-token asymmetric activations, per-channel symmetric
    weights."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    a = fake_quant((x64 @ r).astype(np.float32), act_bits, True, False).astype(np.float64)
    b = fake_quant((w64 @ r).astype(np.float32), weight_bits, True, True).astype(np.float64)
    e = x64 @ w64.T - a @ b.T
    return np.sum(e * e) / x.shape[0]


def torch_gradient(x, w, r, act_bits, weight_bits):
    """dL/dR by autograd (rotation_oracle): round straight-through, min-max scales differentiated."""
    pytest.importorskip("torch")
    import rotation_oracle
    return rotation_oracle.objective(x, w, act_bits, weight_bits)(r)[1]


ACT = qcore.QuantOptions(bits=4, signed=False, symmetric=False, granularity="channel", axis=0)
WEIGHT = qcore.QuantOptions(bits=4, granularity="channel", axis=0)


def outlier_layer(n=512, d=64, out=48, seed=0):
    """A layer whose inputs have a few channels 30x larger than the rest, as transformers' do."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, [1, d // 3, d - 5]] *= 30.0
    w = (rng.standard_normal((out, d)) / np.sqrt(d)).astype(np.float32)
    return x, w


def test_objective_value_equals_numpy_and_gradient_equals_torch_autograd():
    x, w = outlier_layer(n=300, d=40, out=24, seed=1)
    objective = qcore.LinearRotationLoss(x, w, ACT, WEIGHT)
    for r in (np.eye(40), qcore.random_orthogonal(40, np.float64, stream=4),
              qcore.random_hadamard_matrix(40, np.float64, stream=5)):
        loss, grad = objective(r)
        assert loss == pytest.approx(numpy_loss(x, w, r, 4, 4), rel=1e-6)
        assert objective.loss(r) == loss
        want = torch_gradient(x, w, r, 4, 4)
        assert np.abs(grad - want).max() <= 1e-6 * np.abs(want).max()


def assert_identity_backward(objective, x, w, r, a32, b32):
    """The objective at r against numpy, given the forward values Q_a(x r) and Q_w(w r) (float32), with
    each quantizer counted as the identity in the backward pass."""
    x64, w64, a, b = (v.astype(np.float64) for v in (x, w, a32, b32))
    e = x64 @ w64.T - a @ b.T
    n = x.shape[0]
    loss, grad = objective(r)
    assert loss == pytest.approx(np.sum(e * e) / n, rel=1e-6)
    want = -2.0 / n * (x64.T @ e @ b + w64.T @ e.T @ a)
    assert np.abs(grad - want).max() <= 1e-6 * np.abs(want).max()


def test_grids_without_a_differentiated_scale_count_as_the_identity():
    """Per-group activations (groups of 8 along the input): the backward pass is the identity's."""
    x, w = outlier_layer(n=64, d=32, out=16, seed=5)
    act = qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=8)
    r = qcore.random_orthogonal(32, np.float64, stream=3)
    v = (x.astype(np.float64) @ r).astype(np.float32)
    a = qcore.fake_quantize(v, *qcore.choose_params(v, act), act)
    assert_identity_backward(qcore.LinearRotationLoss(x, w, act, None), x, w, r, a,
                             (w.astype(np.float64) @ r).astype(np.float32))


def torch_mse_act_gradient(x, w, r, act):
    """dL/dR by autograd for an MSE activation grid per tensor or per row (weights in float): the scale is
    alpha times the min-max function of the extremes (widened to 0), alpha read off qcore's chosen scale
    and held constant, z constant, round straight-through."""
    torch = pytest.importorskip("torch")
    x64, w64 = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    rt = torch.tensor(r, requires_grad=True)
    v32 = (x.astype(np.float64) @ r).astype(np.float32)
    scale, zero = (torch.tensor(np.asarray(p).reshape(-1, 1)) for p in qcore.choose_params(v32, act))
    zero = zero.float()
    qmin, qmax = (-(2 ** (act.bits - 1)), 2 ** (act.bits - 1) - 1) if act.signed else (0, 2 ** act.bits - 1)
    v = (x64 @ rt).float()  # quantized in float32, as qcore does
    rows = v if act.granularity == "channel" else v.reshape(1, -1)
    hi = torch.clamp(rows.max(dim=1, keepdim=True).values, min=0)
    lo = torch.clamp(rows.min(dim=1, keepdim=True).values, max=0)
    minmax = torch.maximum(-lo, hi) / (qmax - zero) if act.symmetric else (hi - lo) / (qmax - qmin)
    s = scale * (minmax / minmax.detach())  # qcore's scale, with the derivative of alpha times min-max
    t = rows / s
    q = (torch.clamp(t + (torch.round(t) - t).detach() + zero, qmin, qmax) - zero) * s
    loss = torch.sum((x64 @ w64.T - q.reshape(v.shape).double() @ (w64 @ rt).T) ** 2) / x.shape[0]
    loss.backward()
    return loss.item(), rt.grad.numpy()


@pytest.mark.parametrize("act", [qcore.QuantOptions(bits=4, granularity="tensor", scale_method="mse"),
                                 qcore.QuantOptions(bits=4, signed=False, symmetric=False, granularity="channel",
                                                    axis=0, scale_method="mse")], ids=["tensor", "token"])
def test_mse_activation_scales_are_differentiated_as_alpha_times_min_max(act):
    x, w = outlier_layer(n=200, d=32, out=24, seed=6)
    r = qcore.random_hadamard_matrix(32, np.float64, stream=7)
    v = (x.astype(np.float64) @ r).astype(np.float32)
    minmax = qcore.QuantOptions(**{**act.__dict__, "scale_method": "minmax"})
    assert np.any(np.asarray(qcore.choose_params(v, act)[0]) < np.asarray(qcore.choose_params(v, minmax)[0]))
    loss, grad = qcore.LinearRotationLoss(x, w, act, None)(r)
    want_loss, want = torch_mse_act_gradient(x, w, r, act)
    assert loss == pytest.approx(want_loss, rel=1e-6)
    # float32 autograd differs by ~1.5e-6; alpha taken as 1 would differ by 1.3e-2 (token) and 0.58 (tensor)
    assert np.abs(grad - want).max() <= 1e-5 * np.abs(want).max()


def test_objective_without_quantizers_is_zero_for_rotations_and_matches_numpy_off_the_manifold():
    x, w = outlier_layer(n=100, d=24, out=8, seed=2)
    objective = qcore.LinearRotationLoss(x, w)
    r = qcore.random_orthogonal(24, np.float64, stream=1)
    loss, _ = objective(r)
    assert loss <= 1e-9 * np.sum((x.astype(np.float64) @ w.T.astype(np.float64)) ** 2) / 100
    m = r + 0.05 * np.random.default_rng(0).standard_normal((24, 24))  # not orthogonal: exact gradient
    assert_identity_backward(objective, x, w, m, (x.astype(np.float64) @ m).astype(np.float32),
                             (w.astype(np.float64) @ m).astype(np.float32))


def test_objective_is_bit_identical_on_any_thread_count():
    x, w = outlier_layer(n=256, d=64, out=32, seed=3)
    objective = qcore.LinearRotationLoss(x, w, ACT, WEIGHT)
    r = qcore.random_orthogonal(64, np.float64, stream=2)
    results = [objective(r, ctx=qcore.Context(threads=t)) for t in (1, 2, 3)]
    assert all(res[0] == results[0][0] and np.array_equal(res[1], results[0][1]) for res in results)


def test_learned_rotation_beats_identity_and_randomized_hadamard_on_an_outlier_layer():
    x, w = outlier_layer()
    objective = qcore.LinearRotationLoss(x, w, ACT, WEIGHT)
    start = qcore.random_hadamard_matrix(64, np.float64, stream=7)
    options = qcore.CayleyOptions(lr=0.02, momentum=0.9, qr_every=20)
    r, losses, orth = qcore.cayley_run(start, objective, 200, options)
    assert orth < 1e-6 and np.abs(r.T @ r - np.eye(64)).max() < 1e-6
    true_error = {name: numpy_loss(x, w, m, 4, 4)
                  for name, m in (("identity", np.eye(64)), ("hadamard", start), ("learned", r))}
    assert true_error["learned"] == pytest.approx(losses[-1], rel=1e-6)
    assert true_error["learned"] < 0.9 * true_error["hadamard"] < true_error["identity"]


def test_bad_arguments_are_named():
    x, w = outlier_layer(n=20, d=8, out=4)
    with pytest.raises(qcore.ShapeError, match="'x'.*'w'"):
        qcore.LinearRotationLoss(x, w[:, :7].copy())
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(qcore.NumericError, match="'x'"):
        qcore.LinearRotationLoss(bad, w)
    with pytest.raises(qcore.InvalidArgumentError, match="'act'"):
        qcore.LinearRotationLoss(x, w, qcore.QuantOptions(bits=4, granularity="channel", axis=2))
    objective = qcore.LinearRotationLoss(x, w, ACT, WEIGHT)
    with pytest.raises(qcore.ShapeError, match="'r'.*\\[8, 8\\]"):
        objective(np.eye(9))
    with pytest.raises(qcore.DTypeError, match="'r'"):
        objective(np.eye(8, dtype=np.float32))
    with pytest.raises(qcore.InvalidArgumentError, match="steps"):
        qcore.cayley_run(np.eye(8), objective, -1)
