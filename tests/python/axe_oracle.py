"""Independent numpy implementations of the accumulator calculus and of AXE's update rules (the soft global
and strict local constraints, reference/axe-gpxq.md §3), for the tests. Nothing here calls qcore.

Integers are Python ints or int64 arrays (the tests keep P <= 40, far from int64's limits); the strict
constraint is written as a search over the candidate level against the worst case, not as the library's
closed-form limits."""
import numpy as np

import gpxq_oracle


def input_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def worst_case(q, x_min, x_max):
    """(high, low): the largest and smallest sums of integer weights q over inputs in [x_min, x_max]."""
    q = np.asarray(q, np.int64)
    pos, neg = int(q[q > 0].sum()), int(q[q < 0].sum())
    return x_max * pos + x_min * neg, x_min * pos + x_max * neg


def bits_for(magnitude):
    """Smallest P with |v| <= 2^(P-1) - 1."""
    p = 1
    while (1 << (p - 1)) - 1 < abs(magnitude):
        p += 1
    return p


def tiles_of(k, tile):
    tile = tile or k
    return [np.arange(start, min(start + tile, k)) for start in range(0, k, tile)]


def duchi_threshold(u, radius):
    """theta of the Euclidean projection of u onto the L1 ball of `radius` (Duchi et al. 2008, Fig. 1)."""
    a = np.sort(np.abs(u))[::-1]
    if a.sum() <= radius:
        return 0.0
    sums = np.cumsum(a)
    j = np.arange(1, len(a) + 1)
    rho = j[a > (sums - radius) / j].max()
    return (sums[rho - 1] - radius) / rho


class Axe:
    """AXE's state for a [rows, K] layer: thresholds lambda and the running sums p (positive levels) and n
    (negative levels) per (row, tile); levels are centred (minus the zero point)."""

    def __init__(self, rows, k, bits, in_bits, in_signed, tile=0, soft=True):
        self.bits, self.soft, self.k = bits, soft, k
        self.x_min, self.x_max = input_range(in_bits, in_signed)
        self.tile = tile or k
        tiles = len(tiles_of(k, self.tile))
        self.lam = np.zeros((rows, tiles))
        self.pos = np.zeros((rows, tiles), np.int64)
        self.neg = np.zeros((rows, tiles), np.int64)
        self.radius = (2.0 ** bits - 2) / (self.x_max - self.x_min)
        # What the constraints did, per (row, tile): levels the soft threshold changed, the L1 mass (in
        # levels) it removed, and levels the strict constraint moved.
        self.soft_changed = np.zeros((rows, tiles), np.int64)
        self.soft_removed = np.zeros((rows, tiles))
        self.clamped = np.zeros((rows, tiles), np.int64)

    def thresholds(self, values, scale, columns):
        """lambda for the tiles covering `columns` from float64 values [rows, len(columns)] with per-row
        scales [rows] (the scale of those tiles)."""
        if not self.soft:
            return
        for b in sorted(set(columns // self.tile)):
            inside = (columns // self.tile) == b
            for r in range(values.shape[0]):
                u = values[r, inside] / np.float64(scale[r])
                self.lam[r, b] = np.float64(scale[r]) * duchi_threshold(u - u.mean(), self.radius)

    def _fits(self, pos, neg):
        limit = (1 << (self.bits - 1)) - 1
        return self.x_max * pos + self.x_min * neg <= limit and self.x_min * pos + self.x_max * neg >= -limit

    def _allowed(self, r, b, c):
        """The candidate level nearest to c (toward 0) that keeps tile b of row r within the bound."""
        pos, neg = int(self.pos[r, b]), int(self.neg[r, b])
        step = -1 if c > 0 else 1
        while c != 0 and not self._fits(pos + max(c, 0), neg + min(c, 0)):
            c += step
        return c

    def quantize(self, v, column, scale, zero_point, qmin, qmax):
        """Levels (with zero point) and dequantized values of the column vector v (one argument per row)."""
        b = column // self.tile
        s = scale.astype(np.float64)
        lam = self.lam[:, b]
        shrunk = np.where(lam > 0, np.sign(v) * np.maximum(np.abs(v) - lam, 0.0), v)
        plain = np.clip(np.rint(v / s), qmin - zero_point, qmax - zero_point).astype(np.int64)
        centred = np.clip(np.rint(shrunk / s), qmin - zero_point, qmax - zero_point).astype(np.int64)
        active = lam > 0
        self.soft_changed[active, b] += centred[active] != plain[active]
        self.soft_removed[active, b] += (np.abs(v[active]) - np.abs(shrunk[active])) / s[active]
        for r in range(len(v)):
            allowed = self._allowed(r, b, int(centred[r]))
            self.clamped[r, b] += allowed != centred[r]
            centred[r] = allowed
            if centred[r] > 0:
                self.pos[r, b] += centred[r]
            else:
                self.neg[r, b] += centred[r]
        return centred + zero_point, centred * s


def statistics(axe):
    """What AXE did, as qcore.AxeStats counts it; the slack and width from the final sums p and n."""
    limit = (1 << (axe.bits - 1)) - 1
    slack, needed = limit, 1
    for pos, neg in zip(axe.pos.ravel().tolist(), axe.neg.ravel().tolist()):
        worst = max(axe.x_max * pos + axe.x_min * neg, -(axe.x_min * pos + axe.x_max * neg))
        slack, needed = min(slack, limit - worst), max(needed, bits_for(worst))
    return dict(slots=axe.lam.size, soft_slots=int((axe.lam > 0).sum()), soft_changed=int(axe.soft_changed.sum()),
                soft_removed=float(axe.soft_removed.sum()), clamped=int(axe.clamped.sum()),
                clamped_slots=int((axe.clamped > 0).sum()), min_slack=slack, bits_needed=needed)


def rtn(w, grid, axe):
    """RTN+AXE: parameters from w, then columns in index order without error feedback (qcore.rtn)."""
    w = w.astype(np.float64)
    params = gpxq_oracle.Params(grid, *w.shape)
    for g, cols in enumerate(params.groups):
        params.choose(g, w[:, cols].astype(np.float32))
    params.thresholds(axe, w)
    levels = np.zeros(w.shape, np.int64)
    for c in range(w.shape[1]):
        levels[:, c], _ = params.quantize(w[:, c], c, axe)
    return levels, params
