"""Rotations that spread outliers before quantization, on numpy arrays: Haar-random orthogonal matrices,
constructed Hadamard matrices, the fast Walsh-Hadamard transform (plain and randomized), outlier metrics,
and Cayley SGD, which learns a rotation. See include/qcore/qc_rotate.h for the exact definitions.

A rotation R acts on rows: X [rows, n] becomes X @ R.

    q = qcore.random_orthogonal(384, stream=1)              # float32 [384, 384], Q.T @ Q = I
    y = qcore.fwht(x)                                       # x @ hadamard_matrix(n) / sqrt(n), O(n log n)
    y = qcore.random_hadamard(x, stream=2)                  # x @ random_hadamard_matrix(n, stream=2)
    before = qcore.outlier_metrics(x, qcore.QuantOptions(bits=4))
    after = qcore.outlier_metrics(y, qcore.QuantOptions(bits=4))
    r, losses, errors = qcore.cayley_minimize(np.eye(n), loss_and_grad, steps=200)   # (loss, grad) = f(R)
    r, losses, orth = qcore.cayley_run(np.eye(n), qcore.LinearRotationLoss(x, w, act, weight), steps=200)
"""
from dataclasses import dataclass

import numpy as np

from ._errors import InvalidArgumentError, check
from ._ffi import ffi, lib
from ._tensor import as_array, view
from .core import default_context


def _square(n, dtype, function, run):
    """An [n, n] float32 or float64 matrix that run(view) fills."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidArgumentError("%s: argument 'n' must be an integer >= 1, got %r" % (function, n))
    out = np.empty((n, n), dtype)
    t, _keep = view(as_array(out, "dtype", [np.float32, np.float64], function))
    run(t)
    return out


def random_orthogonal(n, dtype=np.float32, stream=0, ctx=None):
    """A Haar-random orthogonal [n, n] matrix: the sign-corrected QR of the float64 Gaussian matrix
    qcore.random_normal((n, n), np.float64, stream, ctx) draws."""
    return _square(n, dtype, "qcore.random_orthogonal",
                   lambda t: (ctx or default_context()).call(lib.qc_random_orthogonal, t, stream))


def hadamard_factor(n):
    """K of the order n = K * 2^k (1 for a power of 2); raises UnsupportedError when no construction
    reaches n."""
    out = ffi.new("int64_t *")
    check(lib.qc_hadamard_factor(out, n), "qcore.hadamard_factor")
    return out[0]


def hadamard_matrix(n, dtype=np.float32):
    """H_n = H_{2^k} (x) H_K with entries +-1 (not normalized): H_n @ H_n.T = n I."""
    function = "qcore.hadamard_matrix"
    return _square(n, dtype, function, lambda t: check(lib.qc_hadamard_matrix(t), function))


def random_hadamard_matrix(n, dtype=np.float32, stream=0, ctx=None):
    """R = H_n @ diag(d) / sqrt(n), d random signs from `stream` under the context's seed."""
    return _square(n, dtype, "qcore.random_hadamard_matrix",
                   lambda t: (ctx or default_context()).call(lib.qc_random_hadamard_matrix, t, stream))


def _transform(function, x, inplace, ctx, c_function, *args):
    x = as_array(x, "x", [np.float32], function, writable=inplace)
    y = x if inplace else x.copy()
    t, _keep = view(y)
    (ctx or default_context()).call(c_function, t, *args)
    return y


def fwht(x, transpose=False, inplace=False, ctx=None):
    """x @ H_n / sqrt(n) over the last axis of the float32 array x (n = x.shape[-1]), or x @ H_n.T / sqrt(n)
    with `transpose` (the inverse). Works on a copy unless `inplace`."""
    return _transform("qcore.fwht", x, inplace, ctx, lib.qc_fwht, int(bool(transpose)))


def random_hadamard(x, stream=0, transpose=False, inplace=False, ctx=None):
    """x @ random_hadamard_matrix(n, stream=stream), or x @ its transpose (the inverse) with `transpose`."""
    return _transform("qcore.random_hadamard", x, inplace, ctx, lib.qc_random_hadamard, stream,
                      int(bool(transpose)))


@dataclass
class OutlierMetrics:
    """kurtosis: Pearson's (3 for a Gaussian; not the excess); max_over_rms: max |x| / sqrt(mean x^2);
    sqnr_db: SQNR of fake quantization under the grid (nan when no grid was given)."""

    kurtosis: float
    max_over_rms: float
    sqnr_db: float


def outlier_metrics(x, grid=None, ctx=None):
    """Outlier metrics of the float32 array x; `grid` (QuantOptions) adds the SQNR of quantizing x with it."""
    function = "qcore.outlier_metrics"
    x = as_array(x, "x", [np.float32], function)
    t, _keep = view(x)
    c_grid = ffi.NULL if grid is None else grid.to_c(function)
    out = ffi.new("qc_outlier_metrics *", [lib.QC_OUTLIER_METRICS_VERSION])
    (ctx or default_context()).call(lib.qc_outlier_metrics_compute, out, t, c_grid)
    return OutlierMetrics(out.kurtosis, out.max_over_rms, out.sqnr_db)


@dataclass
class CayleyOptions:
    """Cayley SGD (see qc_rotate.h): lr, the largest step; momentum (beta); iterations of the Cayley fixed
    point; step_bound (q: alpha = min(lr, 2q / (||W||_1 + 1e-8))); qr_every: re-orthonormalize by QR every
    this many steps (0: never)."""

    lr: float = 0.1
    momentum: float = 0.9
    iterations: int = 5
    step_bound: float = 0.5
    qr_every: int = 100

    def to_c(self):
        o = ffi.new("qc_cayley_options *")
        check(lib.qc_cayley_options_init(o, lib.QC_CAYLEY_OPTIONS_VERSION))
        o.lr, o.momentum, o.iterations = self.lr, self.momentum, self.iterations
        o.step_bound, o.qr_every = self.step_bound, self.qr_every
        return o


class CayleySGD:
    """Cayley SGD over float64 [n, p] matrices with orthonormal columns (p = n: rotations)."""

    def __init__(self, n, p=None, options=None):
        handle = ffi.new("qc_cayley **")
        check(lib.qc_cayley_create(handle, n, n if p is None else p, (options or CayleyOptions()).to_c()),
              "qcore.CayleySGD")
        self._opt = ffi.gc(handle[0], lib.qc_cayley_free)

    def step(self, x, grad, ctx=None):
        """Updates x (float64, in place) from the loss's gradient at x; returns max |X^T X - I| after."""
        function = "qcore.CayleySGD.step"
        xt, _xb = view(as_array(x, "x", [np.float64], function, writable=True))
        gt, _gb = view(as_array(grad, "grad", [np.float64], function))
        err = ffi.new("double *")
        (ctx or default_context()).call(lib.qc_cayley_step, self._opt, xt, gt, err)
        return err[0]


def cayley_minimize(x, loss_and_grad, steps, options=None, ctx=None):
    """Minimizes loss_and_grad(x) -> (loss, grad) over orthonormal-column x (float64, copied) for `steps`
    steps. Returns (x, losses, orthogonality errors), one entry per step (the loss before the step)."""
    x = np.array(x, np.float64, order="C")
    opt = CayleySGD(x.shape[0], x.shape[1] if x.ndim == 2 else None, options)
    losses, errors = [], []
    for _ in range(steps):
        loss, grad = loss_and_grad(x)
        losses.append(float(loss))
        errors.append(opt.step(x, np.ascontiguousarray(grad, np.float64), ctx))
    return x, losses, errors


class LinearRotationLoss:
    """The built-in rotation objective of one linear layer (qc_rotate.h): for calibration inputs x
    (float32 [n, in]) and the weight w (float32 [out, in], qcore's layout),
        L(R) = ||x w^T - Q_a(x R) Q_w(w R)^T||_F^2 / n,
    with `act` and `weight` QuantOptions grids (None: that side is not quantized). Its gradient counts the
    rounding as the identity and differentiates min-max scales per tensor or per row, and MSE scales there
    as their alpha (held constant) times the min-max scale (other grids count as the identity; see
    qc_rotate.h). Calling it on R (float64 [in, in]) gives (loss, grad); loss(R) the
    loss alone. Pass it to cayley_run to learn R in C without Python callbacks."""

    def __init__(self, x, w, act=None, weight=None):
        function = "qcore.LinearRotationLoss"
        xt, _xb = view(as_array(x, "x", [np.float32], function))
        wt, _wb = view(as_array(w, "w", [np.float32], function))
        grids = [ffi.NULL if g is None else g.to_c(function) for g in (act, weight)]
        handle = ffi.new("qc_linear_rotation_loss **")
        check(lib.qc_linear_rotation_loss_create(handle, xt, wt, grids[0], grids[1]), function)
        self._objective = ffi.gc(handle[0], lib.qc_linear_rotation_loss_free)
        self.size = x.shape[1]

    def _eval(self, r, with_grad, ctx):
        function = "qcore.LinearRotationLoss"
        rt, _rb = view(as_array(r, "r", [np.float64], function))
        loss = ffi.new("double *")
        grad = np.zeros(r.shape, np.float64) if with_grad else None
        gt, _gb = view(grad) if with_grad else (ffi.NULL, None)
        context = ctx or default_context()
        check(lib.qc_linear_rotation_loss_eval(self._objective, context._ctx, rt, loss, gt))
        return loss[0], grad

    def __call__(self, r, ctx=None):
        return self._eval(r, True, ctx)

    def loss(self, r, ctx=None):
        return self._eval(r, False, ctx)[0]


class _PythonLoss:
    """A Python loss_and_grad(x) -> (loss, grad) as a qc_loss_grad_fn; grad None stops the run."""

    def __init__(self, loss_and_grad):
        self.loss_and_grad = loss_and_grad
        self.pending = None
        self.callback = ffi.callback("qc_loss_grad_fn", self._call, onerror=self._on_error)

    def _call(self, user, ctx, x, loss, grad):
        shape = (x.dims[0], x.dims[1])
        current = np.frombuffer(ffi.buffer(x.data, shape[0] * shape[1] * 8), np.float64).reshape(shape).copy()
        value, gradient = self.loss_and_grad(current)
        loss[0] = float(value)
        if gradient is None:
            return lib.QC_ERR_CANCELLED
        out = np.frombuffer(ffi.buffer(grad.data, shape[0] * shape[1] * 8), np.float64).reshape(shape)
        out[...] = gradient
        return lib.QC_OK

    def _on_error(self, exc_type, exc_value, traceback):
        self.pending = exc_value
        lib.qc_error_set(lib.QC_ERR_INVALID_ARG, b"the Python loss function raised an exception")
        return lib.QC_ERR_INVALID_ARG


def cayley_run(x, loss, steps, options=None, ctx=None):
    """Runs qcore's Cayley SGD driver (qc_cayley_minimize) for `steps` steps from x (float64 [n, p] with
    orthonormal columns; copied). `loss` is a LinearRotationLoss (evaluated in C) or a Python function
    x -> (loss, grad), which may return (loss, None) to stop the run there. Returns (x, losses, orth_error):
    losses at X_0 .. X_k (k the steps taken, one more entry than steps taken) and max |X^T X - I| at the
    end. The context's progress callback hears ("cayley", step, steps)."""
    function = "qcore.cayley_run"
    x = np.array(x, np.float64, order="C")
    xt, _xb = view(as_array(x, "x", [np.float64], function, writable=True))
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InvalidArgumentError("%s: argument 'steps' must be an integer >= 0, got %r" % (function, steps))
    if isinstance(loss, LinearRotationLoss):
        fn, user, python = ffi.addressof(lib, "qc_linear_rotation_loss_eval"), loss._objective, None
    else:
        python = _PythonLoss(loss)
        fn, user = python.callback, ffi.NULL
    losses = np.zeros(steps + 1, np.float64)
    done, orth = ffi.new("int64_t *"), ffi.new("double *")
    context = ctx or default_context()
    context._pending = None
    status = lib.qc_cayley_minimize(context._ctx, xt, steps, (options or CayleyOptions()).to_c(), fn, user,
                                    ffi.cast("double *", losses.ctypes.data), done, orth)
    if python is not None and python.pending is not None:
        raise python.pending
    if status == lib.QC_ERR_CANCELLED and context._pending is not None:
        pending, context._pending = context._pending, None
        raise pending
    check(status)
    return x, losses[:done[0] + 1].tolist(), orth[0]


__all__ = ["CayleyOptions", "CayleySGD", "LinearRotationLoss", "cayley_minimize", "cayley_run", "OutlierMetrics", "fwht", "hadamard_factor", "hadamard_matrix", "outlier_metrics", "random_hadamard",
           "random_hadamard_matrix", "random_orthogonal"]
