"""Independent numpy implementations of the published OPTQ and GPFQ update rules, for the tests.

They follow the papers' formulas directly, one input at a time (no lazy blocks, no reversed factorization,
no lower-triangular rewrite for the original GPFQ), in float64, and choose min-max grid parameters by the
rules written in qc_quant.h. OPTQ's weight updates follow qc_gpxq.h's precision rule instead: U in float64,
the running weights and every update w_j -= e_i U_ij in float32 (as OPTQ's reference implementation does).
Nothing here calls qcore."""
import numpy as np


class Grid:
    """A uniform grid: bits, signed, symmetric; granularity 'tensor', 'channel' or 'group'."""

    def __init__(self, bits, signed=True, symmetric=True, granularity="channel", group_size=128):
        self.bits, self.signed, self.symmetric = bits, signed, symmetric
        self.granularity, self.group_size = granularity, group_size
        half = 1 << (bits - 1)
        self.qmin, self.qmax = (-half, half - 1) if signed else (0, 2 * half - 1)
        self.fixed_zero_point = 0 if signed else (self.qmin + self.qmax + 1) // 2

    def params(self, values):
        """(scale float32, zero point) of qc_quant.h's min-max rule for float32 `values`."""
        lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        if self.symmetric:
            scale = np.float32(max(-lo, hi) / (self.qmax - self.fixed_zero_point))
        else:
            scale = np.float32((hi - lo) / (self.qmax - self.qmin))
        if not (scale > 0 and np.isfinite(scale)):
            scale = np.float32(1.0)
        zero_point = self.fixed_zero_point
        if not self.symmetric:
            zero_point = int(np.clip(np.rint(self.qmin - lo / float(scale)), self.qmin, self.qmax))
        return scale, zero_point

    def quantize(self, w, scale, zero_point):
        """Levels of float64 `w` with (scale, zero point) arrays broadcast against it."""
        return np.clip(np.rint(w / scale.astype(np.float64)) + zero_point, self.qmin, self.qmax).astype(np.int64)

    def group_columns(self, d):
        size = d if self.granularity != "group" else min(self.group_size, d)
        return [np.arange(start, min(start + size, d)) for start in range(0, d, size)]


class Params:
    """Per (row, group) scales and zero points, filled as the algorithm chooses them; and per weight, for
    plain rounding, how far its argument w / scale was from a rounding tie (in levels: |frac - 1/2|) and
    the step at which it was quantized (inf and -1 until then, and under AXE)."""

    def __init__(self, grid, rows, d):
        self.grid, self.groups = grid, grid.group_columns(d)
        self.scale = np.zeros((rows, len(self.groups)), np.float32)
        self.zero_point = np.zeros((rows, len(self.groups)), np.int64)
        self.group_of = np.concatenate([np.full(len(c), g) for g, c in enumerate(self.groups)])
        self.tie_distance = np.full((rows, d), np.inf)
        self.step = np.full(d, -1)

    def choose(self, g, values):
        """Chooses group g of every row from float32 `values` [rows, columns of g] (per tensor: all of W)."""
        if self.grid.granularity == "tensor":
            s, z = self.grid.params(values)
            self.scale[:], self.zero_point[:] = s, z
            return
        for r in range(values.shape[0]):
            self.scale[r, g], self.zero_point[r, g] = self.grid.params(values[r])

    def quantize(self, w, column, axe=None):
        """Levels and dequantized values of the column vector w (one weight per row) of input `column`;
        with an axe_oracle.Axe, under its constraints."""
        g = self.group_of[column]
        s, z = self.scale[:, g], self.zero_point[:, g]
        self.step[column] = max(self.step.max() + 1, 0)
        if axe is not None:
            return axe.quantize(w, column, s, z, self.grid.qmin, self.grid.qmax)
        argument = w / s.astype(np.float64)
        self.tie_distance[:, column] = np.abs(argument - np.floor(argument) - 0.5)
        q = self.grid.quantize(w, s, z)
        return q, (q - z) * s.astype(np.float64)

    def thresholds(self, axe, values, groups=None):
        """AXE's thresholds of the groups `groups` (all: None) from float64 values [rows, in]."""
        if axe is None:
            return
        for g in range(len(self.groups)) if groups is None else groups:
            axe.thresholds(values[:, self.groups[g]], self.scale[:, g], self.groups[g])


def processing_order(diag, act_order):
    return np.argsort(-diag, kind="stable") if act_order else np.arange(len(diag))


def optq(w, h, grid, damp_ratio=0.01, act_order=False, axe=None):
    """OPTQ as published: for each input i, q_i = Q(w_i), e_i = (w_i - w'_i) / U_ii, w_j -= e_i U_ij for
    every later j, with U = chol(H^-1)^T (upper). With an axe_oracle.Axe, Q is AXE's constrained rounding.
    Precision (qc_gpxq.h): U in float64; the weights w float32, q_i and e_i computed from w_i in float64,
    then e_i rounded to float32 and each update w_j -= e_i U_ij multiplied and subtracted in float32.
    Returns (levels int64 [out, in], Params)."""
    w, h = w.astype(np.float64), h.astype(np.float64).copy()
    rows, d = w.shape
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    order = processing_order(np.diag(h), act_order)
    params = Params(grid, rows, d)
    if grid.granularity != "group":
        params.choose(0, w.astype(np.float32))
        params.thresholds(axe, w)
    hp = h[np.ix_(order, order)]
    hp[np.diag_indices(d)] += damp_ratio * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(hp)).T
    u32 = u.astype(np.float32)
    work = w[:, order].astype(np.float32)
    position = np.argsort(order)
    chosen = np.zeros(len(params.groups), bool)
    levels = np.zeros((rows, d), np.int64)
    for i, c in enumerate(order):
        g = params.group_of[c]
        if grid.granularity == "group" and not chosen[g]:
            params.choose(g, work[:, position[params.groups[g]]].astype(np.float32))
            running = np.zeros_like(w)
            running[:, params.groups[g]] = work[:, position[params.groups[g]]]
            params.thresholds(axe, running, [g])
            chosen[g] = True
        wi = work[:, i].astype(np.float64)
        q, deq = params.quantize(wi, c, axe)
        e = ((wi - deq) / u[i, i]).astype(np.float32)
        work[:, i + 1:] -= np.outer(e, u32[i, i + 1:])
        levels[:, c] = q
    return levels, params


def gpfq_original(w, x, xq, grid, act_order=False):
    """GPFQ as first published (Lybrand & Saab), over the samples themselves: with u = 0,
    q_t = Q(<Xq_t, u + w_t X_t> / |Xq_t|^2), u += w_t X_t - w'_t Xq_t. x, xq: [n, in]. An input with
    Xq_t = 0 is quantized as 0."""
    w, x, xq = w.astype(np.float64), x.astype(np.float64), xq.astype(np.float64)
    rows, d = w.shape
    norms = np.einsum("ij,ij->j", xq, xq)
    dead = norms == 0
    params = _params_from_w(w, dead, grid)
    u = np.zeros((rows, x.shape[0]))
    levels = np.zeros((rows, d), np.int64)
    for t in processing_order(norms, act_order):
        target = u + np.outer(w[:, t], x[:, t])
        v = np.zeros(rows) if dead[t] else target @ xq[:, t] / norms[t]
        q, deq = params.quantize(v, t)
        u = target - np.outer(deq, xq[:, t])
        levels[:, t] = q
    return levels, params


def gpfq_triangular(w, h, g, grid, damp_ratio=0.01, act_order=False, axe=None):
    """GPFQ's lower-triangular form: q_t = Q((sum_{j<=t} G_tj w_j - sum_{j<t} H_tj w'_j) / (H_tt + delta)),
    Q being AXE's constrained rounding with an axe_oracle.Axe."""
    w = w.astype(np.float64)
    rows, d = w.shape
    dead = np.diag(h) == 0
    params = _params_from_w(w, dead, grid)
    params.thresholds(axe, np.where(dead, 0.0, w))
    order = processing_order(np.diag(h), act_order)
    delta = damp_ratio * np.mean(np.diag(h))
    deq_done = np.zeros((rows, d))
    levels = np.zeros((rows, d), np.int64)
    for k, t in enumerate(order):
        before = order[:k]
        v = w[:, order[:k + 1]] @ g[t, order[:k + 1]] - deq_done[:, before] @ h[t, before]
        v = np.zeros(rows) if dead[t] else v / (h[t, t] + delta)
        q, deq = params.quantize(v, t, axe)
        deq_done[:, t] = deq
        levels[:, t] = q
    return levels, params


def _params_from_w(w, dead, grid):
    params = Params(grid, w.shape[0], w.shape[1])
    zeroed = w.copy()
    zeroed[:, dead] = 0.0
    for g, cols in enumerate(params.groups):
        params.choose(g, zeroed[:, cols].astype(np.float32))
    return params
