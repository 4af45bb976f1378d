"""numpy re-implementations of qc_lq.h's rules, written from the formulas: levels of a basis, nearest-level
encoding (ties to the lower level), bit-planes, the QEM closed form and the code-value dot products."""
import numpy as np


def code_bits(codes, bits, code):
    """Code values [..., bits]: bit j of each code as -1/+1 (signed) or 0/1 (unsigned)."""
    b = np.stack([(codes.astype(np.int64) >> j) & 1 for j in range(bits)], -1)
    return 2 * b - 1 if code == "signed" else b


def levels_by_code(basis, code):
    """float64 [G, 2^K]: the level of every code, per basis row."""
    bits = basis.shape[1]
    c = code_bits(np.arange(1 << bits), bits, code).astype(np.float64)
    return basis.astype(np.float64) @ c.T


def encode(x, basis, code):
    """The code of each value's nearest level; a value on a midpoint takes the lower level (equal levels in
    code order)."""
    lv = levels_by_code(basis, code)
    out = np.empty(x.shape, np.uint8)
    for r in range(x.shape[0]):
        row_levels = lv[r if lv.shape[0] > 1 else 0]
        order = np.lexsort((np.arange(row_levels.size), row_levels))
        sorted_levels = row_levels[order]
        thresholds = (sorted_levels[:-1] + sorted_levels[1:]) / 2
        index = np.searchsorted(thresholds, x[r].astype(np.float64), side="left")
        out[r] = order[index]
    return out


def decode(codes, basis, code):
    """float64 levels of codes under basis [R, K] or [1, K]."""
    lv = levels_by_code(basis, code)
    rows = np.arange(codes.shape[0])[:, None] if lv.shape[0] > 1 else 0
    return lv[rows, codes.astype(np.int64)]


def pack(codes, bits):
    """uint64 [R, bits, W], W = ceil(n / 512) * 8, element k at bit k & 63 of word k >> 6."""
    rows, n = codes.shape
    words = -(-n // 512) * 8
    out = np.zeros((rows, bits, words), np.uint64)
    for j in range(bits):
        plane = np.zeros((rows, words * 64), np.uint8)
        plane[:, :n] = (codes >> j) & 1
        out[:, j] = np.packbits(plane, axis=1, bitorder="little").view("<u8")
    return out


def closed_form(x, codes, bits, code, ridge, v_old):
    """(B B^T + ridge I)^-1 (B x + ridge v_old) for one row, by least squares on the stacked system
    [B^T; sqrt(ridge) I] v = [x; sqrt(ridge) v_old]."""
    b = code_bits(codes, bits, code).astype(np.float64)          # [n, K] = B^T
    a = np.vstack([b, np.sqrt(ridge) * np.eye(bits)])
    rhs = np.concatenate([x.astype(np.float64), np.sqrt(ridge) * v_old.astype(np.float64)])
    return np.linalg.lstsq(a, rhs, rcond=None)[0]


def initial_basis(x, bits):
    """v_j = rms(x) 2^(j + 1 - K), per row, as float32."""
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))
    return (rms[:, None] * 2.0 ** (np.arange(bits) + 1 - bits)).astype(np.float32)


def dots(x_codes, ka, x_code, w_codes, kw, w_code):
    """int64 [M, O, Kw, Ka]: dot products of the code values of w's plane i and x's plane j."""
    bx = code_bits(x_codes, ka, x_code)  # [M, n, Ka]
    bw = code_bits(w_codes, kw, w_code)  # [O, n, Kw]
    return np.einsum("oni,mnj->moij", bw, bx)


def assign_codes(w, basis, h, g, code, damping):
    """OPTQ's sequential rounding on each row's LQ levels, column by column without blocks, from the rule in
    qc_lq.h: W* = W G^T (H + dI)^-1 (d = damping times mean(diag H), or times 1 when that is not positive), U = the upper Cholesky factor of (H + dI)^-1, column j rounded to its
    nearest level (encode's rule) and its error (W*_j - level) / U_jj carried into the later columns by U_j."""
    n = w.shape[1]
    mean = np.mean(np.diag(h))
    hd = h + damping * (mean if mean > 0 else 1.0) * np.eye(n)
    hinv = np.linalg.inv(hd)
    u = np.linalg.cholesky(hinv).T
    target = w.astype(np.float64) @ g.T @ hinv
    codes = np.empty(w.shape, np.uint8)
    for j in range(n):
        codes[:, j] = encode(target[:, j:j + 1], basis, code)[:, 0]
        err = (target[:, j] - decode(codes[:, j:j + 1], basis, code)[:, 0]) / u[j, j]
        target[:, j + 1:] -= np.outer(err, u[j, j + 1:])
    return codes
