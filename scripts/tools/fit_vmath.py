#!/usr/bin/env python3
"""Derives the polynomial and rational coefficients of libqcore/model/ops/vmath.c.

Each approximation is a weighted minimax fit on a dense grid, solved as a linear programme (scipy's
HiGHS): polynomials directly, rationals by the differential-correction iteration (each step bounds
|x P - f Q| by delta times the previous denominator). References come from mpmath at 50 digits.
The coefficients are then rounded to float32 and the approximation is re-evaluated in float32 the way
the C code does (Horner, no fused multiply-add) to report the error that survives rounding.

    python3 scripts/tools/fit_vmath.py          # prints the C constants and the measured errors
"""
import mpmath as mp
import numpy as np
from scipy.optimize import linprog
from scipy.special import erf as erf_ref

mp.mp.dps = 50
f32 = np.float32


def grid(a, b, n=4000):
    """Chebyshev-distributed points on [a, b], with the ends included."""
    k = np.arange(n)
    x = 0.5 * (a + b) + 0.5 * (b - a) * np.cos(np.pi * (k + 0.5) / n)
    return np.sort(np.concatenate([x, [a, b]]))


def minimax_poly(basis, target, weight):
    """Coefficients c minimising max |weight * (basis @ c - target)|; basis is (points, terms)."""
    m, n = basis.shape
    # HiGHS's feasibility tolerance is about 1e-7: scale the errors to order 1 (least-squares estimate).
    ls = np.linalg.lstsq(basis * weight[:, None], target * weight, rcond=None)[0]
    scale = 1.0 / np.max(np.abs(weight * (basis @ ls - target)))
    weight = weight * scale
    wb = basis * weight[:, None]
    wt = target * weight
    # variables: c (n), delta; minimise delta subject to +-(wb c - wt) <= delta
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    a_ub = np.vstack([np.hstack([wb, -np.ones((m, 1))]), np.hstack([-wb, -np.ones((m, 1))])])
    b_ub = np.concatenate([wt, -wt])
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * (n + 1), method="highs")
    assert res.success, res.message
    return res.x[:n], res.x[-1] / scale


def horner32(coeffs, x):
    """coeffs from the constant term up, evaluated in float32 by Horner without FMA."""
    acc = f32(coeffs[-1]) * np.ones_like(x, dtype=f32)
    for c in reversed(coeffs[:-1]):
        acc = (acc * x).astype(f32) + f32(c)
    return acc.astype(f32)


def c_list(name, coeffs):
    return "\n".join(f"#define {name}{i} {float(f32(c))!r:>16}f" for i, c in enumerate(coeffs))


# ---- exp: e^r = 1 + r + r^2 (c2 + c3 r + ... + c6 r^4) on |r| <= ln2/2, relative error ---------
def fit_exp():
    half = float(mp.log(2)) / 2 * 1.001  # a margin for the rounding of k * ln2
    r = grid(-half, half)
    ex = np.array([float(mp.exp(v)) for v in r])
    deg = 6
    # target (e^r - 1) with the constant fixed to 1: basis r^1..r^deg, relative weight 1/e^r
    basis = np.stack([r ** j for j in range(1, deg + 1)], axis=1)
    c, d = minimax_poly(basis, ex - 1.0, 1.0 / ex)
    coeffs = [1.0] + list(c)
    r32 = r.astype(f32)
    approx = horner32(coeffs, r32).astype(np.float64)
    exact = np.array([float(mp.exp(mp.mpf(float(v)))) for v in r32])
    print(f"exp: degree {deg}, minimax relative {d:.3g}, float32 relative {np.max(np.abs(approx / exact - 1)):.3g}")
    return coeffs


# ---- erf: x P(x^2) on [0, 1]; 1 - exp(S(x - 2.5)) on [1, 4] (S fits log erfc); both relative ----
def fit_erf_small(top=1.0, n=7):
    x = grid(0.0, top)[1:]
    target = erf_ref(x)
    t = x * x
    c, d = minimax_poly(np.stack([x * t ** j for j in range(n)], axis=1), target, 1.0 / target)
    xs = np.linspace(0, top, 200001).astype(f32)[1:]
    val = xs * horner32(list(c), (xs * xs).astype(f32))
    print(f"erf small: {n} terms on [0, {top}]: minimax relative {d:.3g}, "
          f"float32 relative {np.max(np.abs(val / erf_ref(xs.astype(np.float64)) - 1)):.3g}")
    return list(c)


def fit_erfc_log(lo=1.0, hi=4.0, centre=2.5, n=9):
    x = grid(lo, hi)
    target = np.array([float(mp.log(mp.erfc(v))) for v in x])
    u = x - centre
    c, d = minimax_poly(np.stack([u ** j for j in range(n)], axis=1), target, np.ones_like(x))
    print(f"log erfc: {n} terms on [{lo}, {hi}] in x - {centre}: minimax absolute {d:.3g} "
          f"(the relative error of erfc)")
    return list(c)


# ---- tanh near 0: x + x^3 P(x^2), relative error -----------------------------------------------
def fit_tanh_small(top=0.5, n=5):
    x = grid(0.0, top)[1:]
    target = np.array([float(mp.tanh(v)) for v in x])
    t = x * x
    basis = np.stack([x * t ** (j + 1) for j in range(n)], axis=1)
    c, d = minimax_poly(basis, target - x, 1.0 / target)
    xs = np.linspace(0, top, 200001).astype(f32)[1:]
    ts = (xs * xs).astype(f32)
    val = xs + (xs * ts).astype(f32) * horner32(list(c), ts)
    exact = np.tanh(xs.astype(np.float64))
    print(f"tanh small: {n} terms on [0, {top}]: minimax relative {d:.3g}, "
          f"float32 relative {np.max(np.abs(val / exact - 1)):.3g}")
    return list(c)


if __name__ == "__main__":
    ln2 = mp.log(2)
    hi = float(f32(np.round(float(ln2) * 2 ** 16) / 2 ** 16))  # 16 significant bits: k * hi is exact
    lo = float(f32(float(ln2 - hi)))
    print(f"ln2_hi {hi!r} ln2_lo {lo!r} log2e {float(f32(1 / float(ln2)))!r}")
    e = fit_exp()
    print(c_list("EXP_C", e))
    print(c_list("ERF_P", fit_erf_small()))
    print(c_list("ERFC_S", fit_erfc_log()))
    th = fit_tanh_small()
    print(c_list("TANH_C", th))
