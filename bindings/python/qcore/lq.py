"""Learned non-uniform quantization (QEM-fitted bases, LQ-Nets levels) and the bit-serial kernels on
numpy arrays. See include/qcore/qc_lq.h and qc_kernels.h for the exact rules.

    fit = qcore.lq_fit(w, bits=2, code="signed")               # one basis per row of w [out, in]
    planes = qcore.lq_pack(qcore.lq_encode(w, fit.basis, "signed"), bits=2)
    act = qcore.lq_fit(relu_inputs.reshape(1, -1), bits=2, code="unsigned")
    y = qcore.bitserial_gemm(x, act.basis[0], "unsigned", planes, fit.basis, "signed", bias)

Codes are "signed" (bits mean -1/+1) or "unsigned" (bits mean 0/1). Bit-planes are uint64 arrays
[rows, K, plane_words(n)].
"""
from dataclasses import dataclass

import numpy as np

from ._errors import InvalidArgumentError, check
from ._ffi import ffi, lib
from ._tensor import as_array, view
from .core import default_context

_CODES = {"signed": lib.QC_LQ_SIGNED, "unsigned": lib.QC_LQ_UNSIGNED}


def _code(code, name, function):
    if code not in _CODES:
        raise InvalidArgumentError("%s: argument '%s' must be 'signed' or 'unsigned', got %r" % (function, name, code))
    return _CODES[code]


def _planes(planes, name, function):
    array = as_array(planes, name, [np.uint64, np.int64], function)
    return view(array, lib.QC_DT_I64)


@dataclass
class LqOptions:
    """max_iters: closed-form steps at most; ridge: delta of (B B^T + delta I)^-1 (B x + delta v); tol: stop
    when a step lowers the error by no more than tol times it (0: when it stops falling)."""

    max_iters: int = 100
    ridge: float = 1e-4
    tol: float = 0.0

    def to_c(self):
        o = ffi.new("qc_lq_options *")
        check(lib.qc_lq_options_init(o, lib.QC_LQ_OPTIONS_VERSION))
        o.max_iters, o.ridge, o.tol = self.max_iters, self.ridge, self.tol
        return o


@dataclass
class LqFit:
    """Fitted bases (float32 [G, K]), the most steps a row took, the total squared error before and after,
    and (when asked for) the total error after each step (float64 [max_iters + 1])."""

    basis: np.ndarray
    iterations: int
    error_initial: float
    error_final: float
    history: np.ndarray = None


def lq_fit(x, bits, code="signed", opts=None, ctx=None, history=False):
    """QEM: one basis of `bits` (1..4) entries per row of x (float32 [G, n])."""
    function = "qcore.lq_fit"
    x = as_array(x, "x", [np.float32], function)
    opts = opts or LqOptions()
    if x.ndim != 2:
        raise InvalidArgumentError("%s: argument 'x' must be 2-D [G, n], got shape %s" % (function, x.shape))
    basis = np.empty((x.shape[0], bits), np.float32)
    hist = np.empty(max(opts.max_iters, 0) + 1, np.float64) if history else None
    result = ffi.new("qc_lq_fit_result *", [lib.QC_LQ_FIT_RESULT_VERSION])
    bt, _bb = view(basis)
    ht, _hb = view(hist) if history else (ffi.NULL, None)
    xt, _xb = view(x)
    (ctx or default_context()).call(lib.qc_lq_fit, bt, result, ht, xt, _code(code, "code", function), opts.to_c())
    return LqFit(basis, result.iterations, result.error_initial, result.error_final, hist)


def lq_levels(basis, code="signed"):
    """(levels float64 [G, 2^K] sorted, their codes uint8 [G, 2^K], thresholds float64 [G, 2^K - 1])."""
    function = "qcore.lq_levels"
    basis = as_array(basis, "basis", [np.float32], function)
    count = 1 << basis.shape[-1] if basis.ndim == 2 and 1 <= basis.shape[-1] <= 4 else 2
    rows = basis.shape[0] if basis.ndim else 0
    levels, codes = np.empty((rows, count), np.float64), np.empty((rows, count), np.uint8)
    thresholds = np.empty((rows, count - 1), np.float64)
    views = [view(a) for a in (levels, codes, thresholds, basis)]
    check(lib.qc_lq_levels(*[v for v, _ in views], _code(code, "code", function)), function)
    return levels, codes, thresholds


def lq_encode(x, basis, code="signed", ctx=None):
    """Codes (uint8, x's shape [R, n]) of x's nearest levels under basis [R, K] or [1, K]."""
    function = "qcore.lq_encode"
    x = as_array(x, "x", [np.float32], function)
    basis = as_array(basis, "basis", [np.float32], function)
    codes = np.empty(x.shape, np.uint8)
    views = [view(a) for a in (codes, x, basis)]
    (ctx or default_context()).call(lib.qc_lq_encode, *[v for v, _ in views], _code(code, "code", function))
    return codes


def lq_decode(codes, basis, code="signed", ctx=None):
    """The levels (float32) of codes (uint8 [R, n]) under basis [R, K] or [1, K]."""
    function = "qcore.lq_decode"
    codes = as_array(codes, "codes", [np.uint8], function)
    basis = as_array(basis, "basis", [np.float32], function)
    values = np.empty(codes.shape, np.float32)
    views = [view(a) for a in (values, codes, basis)]
    (ctx or default_context()).call(lib.qc_lq_decode, *[v for v, _ in views], _code(code, "code", function))
    return values


def lq_refit_output(codes, basis, w, h, g, code="signed", ridge=1e-4, ctx=None):
    """Output-aware bases (float32 [O, K]) for weight codes (uint8 [O, n]) fixed: per row, the basis that
    minimizes sum_s (<x_s, w_o> - <xq_s, level(codes_o)>)^2 (+ ridge |v - basis_o|^2), with H = sum xq xq^T
    and G = sum xq x^T (float64 [n, n]; qcore.GpxqStats("gpfq", n) accumulates both)."""
    function = "qcore.lq_refit_output"
    codes = as_array(codes, "codes", [np.uint8], function)
    basis = as_array(basis, "basis", [np.float32], function)
    w = as_array(w, "w", [np.float32], function)
    h = as_array(h, "h", [np.float64], function)
    g = as_array(g, "g", [np.float64], function)
    out = np.empty(basis.shape, np.float32)
    views = [view(a) for a in (out, codes, basis, w, h, g)]
    (ctx or default_context()).call(lib.qc_lq_refit_output, *[v for v, _ in views], _code(code, "code", function),
                                    float(ridge))
    return out


def lq_assign_codes(w, basis, h, g, code="signed", damping=0.01, ctx=None):
    """Output-aware weight codes (uint8 [O, n]) for fixed bases (float32 [O, K]): OPTQ's column-by-column
    rounding on each row's LQ levels towards W* = W G^T (H + dI)^-1, with H and G as for lq_refit_output.
    Returns (codes, the damping ratio used: `damping`, or more when H + dI was not positive definite)."""
    function = "qcore.lq_assign_codes"
    w = as_array(w, "w", [np.float32], function)
    basis = as_array(basis, "basis", [np.float32], function)
    h = as_array(h, "h", [np.float64], function)
    g = as_array(g, "g", [np.float64], function)
    codes = np.empty(w.shape if w.ndim == 2 else (0, 0), np.uint8)
    used = ffi.new("double *")
    views = [view(a) for a in (codes, w, basis, h, g)]
    t = [v for v, _ in views]
    (ctx or default_context()).call(lib.qc_lq_assign_codes, t[0], used, t[1], t[2], t[3], t[4],
                                    _code(code, "code", function), float(damping))
    return codes, float(used[0])


def plane_words(n):
    """64-bit words per bit-plane row of n elements."""
    return lib.qc_lq_plane_words(n)


def lq_pack(codes, bits, ctx=None):
    """Bit-planes (uint64 [R, bits, plane_words(n)]) of codes (uint8 [R, n])."""
    function = "qcore.lq_pack"
    codes = as_array(codes, "codes", [np.uint8], function)
    n = codes.shape[1] if codes.ndim == 2 else 0
    planes = np.empty((codes.shape[0] if codes.ndim else 0, bits, plane_words(n)), np.uint64)
    pt, _pb = view(planes, lib.QC_DT_I64)
    ct, _cb = view(codes)
    (ctx or default_context()).call(lib.qc_lq_pack, pt, ct)
    return planes


def bitserial_dots(x_planes, x_code, w_planes, w_code, n, ctx=None):
    """The exact dot products D[m, o, i, j] = <code values of plane i of w_o, of plane j of x_m> (int32)."""
    function = "qcore.bitserial_dots"
    xt, _xb = _planes(x_planes, "x_planes", function)
    wt, _wb = _planes(w_planes, "w_planes", function)
    dots = np.empty((x_planes.shape[0], w_planes.shape[0], w_planes.shape[1], x_planes.shape[1]), np.int32)
    dt, _db = view(dots)
    (ctx or default_context()).call(lib.qc_bitserial_dots, dt, xt, _code(x_code, "x_code", function), wt,
                                    _code(w_code, "w_code", function), n)
    return dots


def bitserial_interleave(w_planes, ctx=None):
    """W's bit-rows (uint64 [O, Kw, W] planes) interleaved eight to a group for bitserial_gemm's
    w_interleaved: uint64 [ceil(O Kw / 8), W, 8], out[g, k, lane] = row 8 g + lane's word k (0 past O Kw)."""
    function = "qcore.bitserial_interleave"
    wt, _wb = _planes(w_planes, "w_planes", function)
    shape = w_planes.shape if w_planes.ndim == 3 else (0, 1, 0)
    out = np.empty((lib.qc_bitserial_interleaved_groups(shape[0], shape[1]), shape[2], 8), np.uint64)
    ot, _ob = view(out, lib.QC_DT_I64)
    (ctx or default_context()).call(lib.qc_bitserial_interleave, ot, wt)
    return out


def bitserial_gemm(x, x_basis, x_code, w_planes, w_basis, w_code, bias=None, ctx=None, w_interleaved=None):
    """y = Q(x) Q(W)^T (+ bias) on the bit-serial kernels, x float32 [M, n] (or [n]: the GEMV) encoded
    inside the kernel with x_basis (float32 [Ka], or [M, Ka]); returns float32 [M, O] (or [O]).
    w_interleaved: bitserial_interleave(w_planes), read instead of the planes (the same bits; faster for
    few rows of x)."""
    function = "qcore.bitserial_gemm"
    x = as_array(x, "x", [np.float32], function)
    x_basis = as_array(x_basis, "x_basis", [np.float32], function)
    w_basis = as_array(w_basis, "w_basis", [np.float32], function)
    wt, _wb = _planes(w_planes, "w_planes", function)
    y = np.empty(x.shape[:-1] + (w_planes.shape[0],), np.float32)
    views = [view(a) for a in (y, x, x_basis, w_basis)]
    bt, _bb = (ffi.NULL, None) if bias is None else view(as_array(bias, "bias", [np.float32], function))
    code_args = (_code(x_code, "x_code", function), _code(w_code, "w_code", function))
    if w_interleaved is not None:
        if x.ndim != 2:
            raise ValueError("%s: w_interleaved takes x as a matrix [M, n], got %d dimensions" % (function, x.ndim))
        it, _ib = _planes(w_interleaved, "w_interleaved", function)
        (ctx or default_context()).call(lib.qc_bitserial_gemm_interleaved, views[0][0], views[1][0], views[2][0],
                                        code_args[0], wt, it, views[3][0], code_args[1], bt)
        return y
    c_function = lib.qc_bitserial_gemv if x.ndim == 1 else lib.qc_bitserial_gemm
    (ctx or default_context()).call(c_function, views[0][0], views[1][0], views[2][0], code_args[0], wt, views[3][0],
                                    code_args[1], bt)
    return y


class BitserialLayer:
    """A bit-serial layer made once (qc_bitserial_layer): the weights, bases and bias are checked and what
    depends on them alone is derived here, so that each run(x) checks only x. x_basis is float32 [Ka] (one
    basis for every row); n the rows' length; w_interleaved as for bitserial_gemm. run(x) gives bit for bit
    bitserial_gemm's result for x float32 [..., n] as float32 [..., O]. The layer keeps the arrays it was
    made from (the C layer borrows them)."""

    def __init__(self, n, x_basis, x_code, w_planes, w_basis, w_code, bias=None, ctx=None, w_interleaved=None):
        function = "qcore.BitserialLayer"
        self._ctx = ctx or default_context()
        self._keep = [as_array(x_basis, "x_basis", [np.float32], function),
                      as_array(w_basis, "w_basis", [np.float32], function),
                      as_array(w_planes, "w_planes", [np.uint64, np.int64], function)]
        views = [view(self._keep[0]), view(self._keep[1]), view(self._keep[2], lib.QC_DT_I64)]
        bt = ffi.NULL
        if bias is not None:
            self._keep.append(as_array(bias, "bias", [np.float32], function))
            views.append(view(self._keep[-1]))
            bt = views[-1][0]
        it = ffi.NULL
        if w_interleaved is not None:
            self._keep.append(as_array(w_interleaved, "w_interleaved", [np.uint64, np.int64], function))
            views.append(view(self._keep[-1], lib.QC_DT_I64))
            it = views[-1][0]
        self.n, self.outputs = int(n), int(self._keep[2].shape[0]) if self._keep[2].ndim else 0
        handle = ffi.new("qc_bitserial_layer **")
        check(lib.qc_bitserial_layer_create(handle, self._ctx._ctx, self.n, views[0][0],
                                            _code(x_code, "x_code", function), views[2][0], it, views[1][0],
                                            _code(w_code, "w_code", function), bt))
        self._layer = ffi.gc(handle[0], lib.qc_bitserial_layer_free)

    def run(self, x, ctx=None):
        x = as_array(x, "x", [np.float32], "qcore.BitserialLayer.run")
        y = np.empty(x.shape[:-1] + (self.outputs,) if x.ndim else (self.outputs,), np.float32)
        xv, yv = view(x), view(y)
        check(lib.qc_bitserial_layer_run(self._layer, (ctx or self._ctx)._ctx, yv[0], xv[0]))
        return y


def int8_gemm(x, w, ctx=None):
    """Exact int32 y = x @ w.T for x uint8 [M, n] and w int8 [O, n] (n <= 65535), on VNNI where present."""
    function = "qcore.int8_gemm"
    x = as_array(x, "x", [np.uint8], function)
    w = as_array(w, "w", [np.int8], function)
    y = np.empty((x.shape[0] if x.ndim else 0, w.shape[0] if w.ndim else 0), np.int32)
    views = [view(a) for a in (y, x, w)]
    (ctx or default_context()).call(lib.qc_int8_gemm, *[v for v, _ in views])
    return y


__all__ = ["BitserialLayer", "LqFit", "LqOptions", "bitserial_dots", "bitserial_gemm", "bitserial_interleave", "int8_gemm", "lq_decode",
           "lq_encode", "lq_fit", "lq_levels", "lq_pack", "lq_refit_output", "lq_assign_codes", "plane_words"]
