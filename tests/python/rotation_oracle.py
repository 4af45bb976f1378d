"""torch autograd of qcore's built-in rotation objective (qc_linear_rotation_loss), the oracle of its
gradient in tests and its peer in benchmarks/bench_rotate_learn.py: per-token asymmetric activations and
per-channel symmetric weights, min-max scales from the float32 values, round straight-through, zero point
constant (SpinQuant's fake quantizers)."""
import torch


def fake_quant(v, bits, symmetric):
    """Per-row min-max fake quantization of a float32 tensor, differentiable except for the rounding."""
    hi = torch.clamp(v.max(dim=1, keepdim=True).values, min=0)
    lo = torch.clamp(v.min(dim=1, keepdim=True).values, max=0)
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        scale, zero = torch.maximum(-lo, hi) / qmax, torch.zeros_like(hi)
    else:
        qmin, qmax = 0, 2 ** bits - 1
        scale = (hi - lo) / (qmax - qmin)
        zero = torch.clamp(torch.round(qmin - lo / scale), qmin, qmax).detach()
    t = v / scale
    return (torch.clamp(t + (torch.round(t) - t).detach() + zero, qmin, qmax) - zero) * scale


def objective(x, w, act_bits, weight_bits):
    """loss_and_grad(r) -> (loss, dL/dR as numpy) for x [n, in] and w [out, in] (numpy float32)."""
    x64, w64 = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    target = x64 @ w64.T

    def loss_and_grad(r):
        rt = torch.tensor(r, requires_grad=True)
        a = fake_quant((x64 @ rt).float(), act_bits, False).double()
        b = fake_quant((w64 @ rt).float(), weight_bits, True).double()
        loss = torch.sum((target - a @ b.T) ** 2) / x.shape[0]
        loss.backward()
        return loss.item(), rt.grad.numpy()

    return loss_and_grad
