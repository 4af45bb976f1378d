"""The bit-serial kernels (qc_kernels.h): integer dot products equal a numpy einsum of the code values for
every code pairing, Kw and Ka in 1..4 and lengths that hit word and vector tails (n not a multiple of 64
or 512, odd M and O), on every kernel set this machine runs; the scaled product is bit-identical across
kernel sets and thread counts and agrees with numpy's product of the decoded levels; bad input errors."""
import numpy as np
import pytest

import lq_oracle as oracle
import qcore

ARCHS = ["ref", "avx2", "avx512"]
PAIRS = [("signed", "signed"), ("unsigned", "signed"), ("signed", "unsigned"), ("unsigned", "unsigned")]


def contexts(threads=0):
    return {a: qcore.Context(arch=a, threads=threads) for a in ARCHS if qcore.arch_supported(a)}


def random_codes(rng, rows, n, bits):
    return rng.integers(0, 1 << bits, size=(rows, n), dtype=np.uint8)


@pytest.mark.parametrize("x_code,w_code", PAIRS)
@pytest.mark.parametrize("n", [1, 63, 65, 511, 513, 1031])
def test_dots_equal_numpy_on_every_kernel_set(rng, x_code, w_code, n):
    for ka, kw in [(1, 1), (2, 3), (4, 4), (3, 1)]:
        m, o = 19, 7 + 2 * ka  # odd, with row-tile and column-tile tails
        xc, wc = random_codes(rng, m, n, ka), random_codes(rng, o, n, kw)
        expected = oracle.dots(xc, ka, x_code, wc, kw, w_code)
        xp, wp = qcore.lq_pack(xc, ka), qcore.lq_pack(wc, kw)
        for arch, ctx in contexts().items():
            got = qcore.bitserial_dots(xp, x_code, wp, w_code, n, ctx=ctx)
            np.testing.assert_array_equal(got, expected, err_msg="%s Ka=%d Kw=%d" % (arch, ka, kw))


def test_dots_many_outputs_cross_item_boundaries(rng):
    """More than one item of 16 rows by 128 outputs, so that the items' offsets are exercised."""
    n, m, o = 700, 37, 301
    xc, wc = random_codes(rng, m, n, 2), random_codes(rng, o, n, 1)
    expected = oracle.dots(xc, 2, "unsigned", wc, 1, "signed")
    for arch, ctx in contexts(threads=3).items():
        got = qcore.bitserial_dots(qcore.lq_pack(xc, 2), "unsigned", qcore.lq_pack(wc, 1), "signed", n, ctx=ctx)
        np.testing.assert_array_equal(got, expected, err_msg=arch)


def layer(rng, o, n, kw, w_code, ka, x_code, m):
    w = rng.standard_normal((o, n)).astype(np.float32)
    if w_code == "unsigned":
        w = np.abs(w)
    wfit = qcore.lq_fit(w, kw, w_code)
    wc = qcore.lq_encode(w, wfit.basis, w_code)
    x = rng.standard_normal((m, n)).astype(np.float32)
    if x_code == "unsigned":
        x = np.maximum(x, 0)
    xfit = qcore.lq_fit(x.reshape(1, -1), ka, x_code)
    return x, xfit.basis[0], qcore.lq_pack(wc, kw), wfit.basis, wc


@pytest.mark.parametrize("x_code,w_code", PAIRS)
@pytest.mark.parametrize("ka,kw", [(1, 1), (2, 2), (3, 3), (2, 1), (4, 2)])
def test_gemm_same_bits_on_every_kernel_set_and_matches_decoded_product(rng, x_code, w_code, ka, kw):
    n, m, o = 777, 21, 135
    x, x_basis, wp, w_basis, wc = layer(rng, o, n, kw, w_code, ka, x_code, m)
    bias = rng.standard_normal(o).astype(np.float32)
    results = {arch: qcore.bitserial_gemm(x, x_basis, x_code, wp, w_basis, w_code, bias, ctx=ctx)
               for arch, ctx in contexts().items()}
    for arch, y in results.items():
        np.testing.assert_array_equal(y.view(np.uint32), results["ref"].view(np.uint32), err_msg=arch)
    xq = oracle.decode(oracle.encode(x, x_basis[None], x_code), x_basis[None], x_code)
    wq = oracle.decode(wc, w_basis, w_code)
    expected = xq @ wq.T + bias
    scale = np.abs(xq).dot(np.abs(wq).T) + np.abs(bias)  # bound of the summands, for a relative tolerance
    assert np.all(np.abs(results["ref"] - expected) <= 1e-6 * scale + 1e-6)


def test_gemm_per_row_input_bases_and_gemv(rng):
    n, m, o = 300, 5, 9
    x, x_basis, wp, w_basis, wc = layer(rng, o, n, 2, "signed", 2, "signed", m)
    row_bases = (x_basis[None] * rng.uniform(0.5, 2.0, size=(m, 1))).astype(np.float32)
    y = qcore.bitserial_gemm(x, row_bases, "signed", wp, w_basis, "signed")
    xq = oracle.decode(oracle.encode(x, row_bases, "signed"), row_bases, "signed")
    np.testing.assert_allclose(y, xq @ oracle.decode(wc, w_basis, "signed").T, rtol=1e-5, atol=1e-4)
    for r in range(m):
        v = qcore.bitserial_gemm(x[r], row_bases[r], "signed", wp, w_basis, "signed")
        one = qcore.bitserial_gemm(x[r:r + 1], row_bases[r], "signed", wp, w_basis, "signed")
        np.testing.assert_array_equal(v, one[0])


def test_same_bits_on_1_2_3_threads(rng):
    n, m, o = 1500, 50, 300
    x, x_basis, wp, w_basis, _ = layer(rng, o, n, 1, "signed", 1, "unsigned", m)
    for arch in contexts():
        ys = [qcore.bitserial_gemm(x, x_basis, "unsigned", wp, w_basis, "signed", ctx=qcore.Context(arch=arch, threads=t))
              for t in (1, 2, 3)]
        for y in ys[1:]:
            np.testing.assert_array_equal(y.view(np.uint32), ys[0].view(np.uint32))


def test_bad_input(rng):
    n = 100
    x, x_basis, wp, w_basis, _ = layer(rng, 6, n, 2, "signed", 2, "unsigned", 3)
    with pytest.raises(qcore.NumericError, match=r"qc_bitserial_gemm: .*'x'"):
        bad = x.copy()
        bad[2, 3] = np.inf
        qcore.bitserial_gemm(bad, x_basis, "unsigned", wp, w_basis, "signed")
    with pytest.raises(qcore.ShapeError, match="'w_planes': expected"):
        qcore.bitserial_gemm(np.zeros((3, 600), np.float32), x_basis, "unsigned", wp, w_basis, "signed")
    with pytest.raises(qcore.ShapeError, match="'w_basis': 5 rows, expected 6"):
        qcore.bitserial_gemm(x, x_basis, "unsigned", wp, w_basis[:5].copy(), "signed")
    with pytest.raises(qcore.ShapeError, match="'w_basis': K = 1, but w_planes has 2 planes"):
        qcore.bitserial_gemm(x, x_basis, "unsigned", wp, w_basis[:, :1].copy(), "signed")
    with pytest.raises(qcore.InvalidArgumentError, match=r"'x_basis': K = dims\[1\] = 5"):
        qcore.bitserial_gemm(x, np.ones(5, np.float32), "unsigned", wp, w_basis, "signed")
    with pytest.raises(qcore.NumericError, match="'x_basis'"):
        qcore.bitserial_gemm(x, np.array([1, np.nan], np.float32), "unsigned", wp, w_basis, "signed")
    with pytest.raises(qcore.ShapeError, match="'bias': expected \\[6\\]"):
        qcore.bitserial_gemm(x, x_basis, "unsigned", wp, w_basis, "signed", np.zeros(5, np.float32))
    with pytest.raises(qcore.InvalidArgumentError, match="'x_code'"):
        qcore.bitserial_gemm(x, x_basis, "ternary", wp, w_basis, "signed")
    xp = qcore.lq_pack(np.zeros((3, n), np.uint8), 2)
    with pytest.raises(qcore.ShapeError, match="'x_planes': expected"):
        qcore.bitserial_dots(xp, "signed", wp, "signed", 600)
    with pytest.raises(qcore.ShapeError, match="rows are empty"):
        qcore.bitserial_dots(xp, "signed", wp, "signed", 0)
    with pytest.raises(qcore.IntegerOverflowError, match="2\\^31 - 1"):
        qcore.bitserial_dots(xp, "signed", wp, "signed", 2**31)


@pytest.mark.parametrize("x_code,w_code", PAIRS)
@pytest.mark.parametrize("ka,kw", [(1, 1), (3, 3), (2, 1), (1, 3), (4, 4)])
def test_interleaved_weights_give_the_same_bits(rng, x_code, w_code, ka, kw):
    """qc_bitserial_gemm_interleaved against qc_bitserial_gemm on every kernel set: O Kw not a multiple of 8
    (a partial last group), 135 outputs (across the 128-output items), 1..9 rows; the interleaved layout
    against numpy's own interleaving of the planes."""
    n, o = 777, 135
    x, x_basis, wp, w_basis, _ = layer(rng, o, n, kw, w_code, ka, x_code, 9)
    bias = rng.standard_normal(o).astype(np.float32)
    il = qcore.bitserial_interleave(wp)
    rows = wp.reshape(o * kw, -1)
    padded = np.zeros((-(-o * kw // 8) * 8, rows.shape[1]), np.uint64)
    padded[:o * kw] = rows
    np.testing.assert_array_equal(il, padded.reshape(-1, 8, rows.shape[1]).transpose(0, 2, 1))
    for arch, ctx in contexts().items():
        for m in (1, 2, 5, 9):
            plain = qcore.bitserial_gemm(x[:m], x_basis, x_code, wp, w_basis, w_code, bias, ctx=ctx)
            fast = qcore.bitserial_gemm(x[:m], x_basis, x_code, wp, w_basis, w_code, bias, ctx=ctx, w_interleaved=il)
            np.testing.assert_array_equal(fast.view(np.uint32), plain.view(np.uint32), err_msg="%s m=%d" % (arch, m))


def test_interleaved_bad_shape(rng):
    x, x_basis, wp, w_basis, _ = layer(rng, 20, 100, 2, "signed", 1, "unsigned", 2)
    il = qcore.bitserial_interleave(wp)
    with pytest.raises(qcore.ShapeError, match="w_interleaved"):
        qcore.bitserial_gemm(x, x_basis, "unsigned", wp, w_basis, "signed", w_interleaved=il[:-1])


@pytest.mark.parametrize("x_code,w_code", PAIRS)
@pytest.mark.parametrize("ka,kw", [(1, 1), (3, 3), (2, 4)])
def test_layer_gives_the_same_bits_and_matches_decoded_product(rng, x_code, w_code, ka, kw):
    """BitserialLayer (qc_bitserial_layer) against bitserial_gemm on every kernel set, with and without the
    interleaved weights, for 1, 2, 9 rows, a [2, 3, n] batch and a single [n] row; the reference's result
    against numpy's product of the decoded levels."""
    n, o = 777, 135
    x, x_basis, wp, w_basis, wc = layer(rng, o, n, kw, w_code, ka, x_code, 9)
    bias = rng.standard_normal(o).astype(np.float32)
    il = qcore.bitserial_interleave(wp)
    xq = oracle.decode(oracle.encode(x, x_basis[None], x_code), x_basis[None], x_code)
    wq = oracle.decode(wc, w_basis, w_code)
    expected, scale = xq @ wq.T + bias, np.abs(xq).dot(np.abs(wq).T) + np.abs(bias)
    for arch, ctx in contexts().items():
        want = qcore.bitserial_gemm(x, x_basis, x_code, wp, w_basis, w_code, bias, ctx=ctx)
        assert np.all(np.abs(want - expected) <= 1e-6 * scale + 1e-6)
        for interleaved in (None, il):
            lay = qcore.BitserialLayer(n, x_basis, x_code, wp, w_basis, w_code, bias, ctx=ctx, w_interleaved=interleaved)
            for m in (1, 2, 9):
                np.testing.assert_array_equal(lay.run(x[:m]).view(np.uint32), want[:m].view(np.uint32),
                                              err_msg="%s m=%d il=%s" % (arch, m, interleaved is not None))
            batch = lay.run(x[:6].reshape(2, 3, n))
            np.testing.assert_array_equal(batch.reshape(6, o).view(np.uint32), want[:6].view(np.uint32))
            np.testing.assert_array_equal(lay.run(x[4]).view(np.uint32), want[4].view(np.uint32))


def test_layer_bad_input(rng):
    n, o = 100, 12
    x, x_basis, wp, w_basis, _ = layer(rng, o, n, 2, "signed", 1, "unsigned", 3)
    with pytest.raises(qcore.ShapeError, match="x_basis"):
        qcore.BitserialLayer(n, np.ones((2, 1), np.float32), "unsigned", wp, w_basis, "signed")
    with pytest.raises(qcore.ShapeError, match="w_planes"):
        qcore.BitserialLayer(6 * n, x_basis, "unsigned", wp, w_basis, "signed")  # 16 words, not 8
    with pytest.raises(qcore.NumericError, match="w_basis"):
        bad = w_basis.copy()
        bad[3, 1] = np.inf
        qcore.BitserialLayer(n, x_basis, "unsigned", wp, bad, "signed")
    lay = qcore.BitserialLayer(n, x_basis, "unsigned", wp, w_basis, "signed")
    with pytest.raises(qcore.ShapeError, match="\\[\\.\\.\\., 100\\]"):
        lay.run(x[:, :-1].copy())
    x[1, 7] = np.nan
    with pytest.raises(qcore.NumericError, match="element 107"):
        lay.run(x)
