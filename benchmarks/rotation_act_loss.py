"""A rotation objective for OPTQ at W4A4 (rotation_accuracy.py's kind "learned_a4"): the output error of
the layers reading one input under the pipeline's activation quantizer alone,
    L(R) = || X W^T - Q(X R) (W R)^T ||_F^2 / n,
with Q per-tensor signed symmetric (q = clamp(round(v / s), -2^(b-1), 2^(b-1) - 1), s = c max|X R| / qmax)
and c the clip ratio of least squared error over `ratios` equal steps from 0.2 to 1, searched on the exact
values (as the pipeline's MSE activation scale, which searches a histogram of them). The weights stay in
float, as SpinQuant learns its rotations when GPTQ quantizes the weights: OPTQ removes most of the weight
error, so an objective that counts RTN weight error (qcore.LinearRotationLoss with a weight grid) spends
the rotation on an error the pipeline does not make. With W R's Gram C = R^T W^T W R the loss only needs
W^T W. Gradient: straight-through in the rounding, zero for clipped values, and the scale s as c times the
min-max function of max|X R| (c held fixed), so clipped values pull the largest one in; with c = 1 (clip
"minmax") this is qcore.LinearRotationLoss's gradient with a per-tensor min-max grid and no weight grid.
"""
import numpy as np


def mse_clip_ratio(a, qmax, ratios=50, low=0.2):
    """The ratio c (of max|a|) whose per-tensor grid gives the least squared error on a; ties keep the larger."""
    amax = float(np.abs(a).max())
    best, best_error = 1.0, np.inf
    for i in range(ratios - 1, -1, -1):
        c = low + (1.0 - low) * i / (ratios - 1)
        s = c * amax / qmax
        e = float(np.sum((np.clip(np.round(a / s), -qmax - 1, qmax) * s - a) ** 2))
        if e < best_error:
            best_error, best = e, c
    return best


class ActivationRotationLoss:
    """Callable R -> (loss, grad) for qcore.cayley_run. x [n, in] calibration rows, w [out, in] the weights
    of the layers reading them (stacked); clip "mse" (c searched at every `every`-th call, so that a run's
    steps see a fixed quantizer between searches) or "minmax" (c = 1). `best` holds the R of the least loss
    seen so far and `best_loss` its loss: with the adaptive step the loss does not fall at every step, and a
    point the run passed through is as orthogonal as its last one."""

    def __init__(self, x, w, bits=4, clip="mse", every=1):
        if clip not in ("mse", "minmax"):
            raise ValueError("clip must be 'mse' or 'minmax', got %r" % (clip,))
        self.x = np.asarray(x, np.float64)
        w = np.asarray(w, np.float64)
        self.gram = w.T @ w
        self.qmax = 2 ** (bits - 1) - 1
        self.clip, self.every, self.calls, self.ratio = clip, every, 0, 1.0
        self.best, self.best_loss = None, np.inf

    def __call__(self, r):
        x, qmax, n = self.x, self.qmax, self.x.shape[0]
        a = x @ r
        if self.clip == "mse" and self.calls % self.every == 0:
            self.ratio = mse_clip_ratio(a, qmax)
        self.calls += 1
        top = np.unravel_index(np.argmax(np.abs(a)), a.shape)
        s = self.ratio * abs(a[top]) / qmax
        v = a / s
        q = np.clip(np.round(v), -qmax - 1, qmax)
        inside = (v >= -qmax - 1.5) & (v <= qmax + 0.5)
        p = x - (q * s) @ r.T                       # X - Q(X R) R^T: the output error is p W^T
        pc = p @ self.gram
        loss = float(np.sum(pc * p)) / n
        if loss < self.best_loss:
            self.best, self.best_loss = np.array(r, np.float64), loss
        dp = (2.0 / n) * pc                         # dL/dp
        dq = -dp @ r                                # dL/dQ(X R)
        da = dq * inside
        ds = float(np.sum(dq * (q - v * inside)))   # dQ/ds = q - v where not clipped, q where clipped
        da[top] += ds * self.ratio / qmax * np.sign(a[top])
        return loss, x.T @ da - dp.T @ (q * s)
