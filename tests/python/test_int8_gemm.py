"""qc_int8_gemm: exact int32 products equal numpy's int64 product on every kernel set (VNNI, AVX2, reference)
for lengths that hit every 16-, 32- and 64-byte tail, with the extreme values 255 x -128 filling a
row up to the largest accepted length; the same on 1, 2 and 3 threads; bad input errors."""
import numpy as np
import pytest

import qcore

ARCHS = ["ref", "avx2", "avx512"]


def contexts(threads=0):
    return {a: qcore.Context(arch=a, threads=threads) for a in ARCHS if qcore.arch_supported(a)}


@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 64, 65, 200, 1000])
def test_equals_numpy_on_every_kernel_set(rng, n):
    m, o = 67, 131  # odd, past one item of 64 rows and 128 outputs
    x = rng.integers(0, 256, size=(m, n), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(o, n), dtype=np.int8)
    expected = x.astype(np.int64) @ w.T.astype(np.int64)
    for arch, ctx in contexts(threads=2).items():
        np.testing.assert_array_equal(qcore.int8_gemm(x, w, ctx=ctx), expected, err_msg=arch)


def test_extremes_at_the_length_limit():
    n = 65535
    x = np.full((3, n), 255, np.uint8)
    w = np.stack([np.full(n, -128, np.int8), np.full(n, 127, np.int8), np.tile(np.int8([-128, 127]), n)[:n]])
    expected = x.astype(np.int64) @ w.T.astype(np.int64)
    assert expected.min() == -255 * 128 * n
    for arch, ctx in contexts().items():
        np.testing.assert_array_equal(qcore.int8_gemm(x, w, ctx=ctx), expected, err_msg=arch)


def test_threads_and_errors(rng):
    x = rng.integers(0, 256, size=(150, 300), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(260, 300), dtype=np.int8)
    ys = [qcore.int8_gemm(x, w, ctx=qcore.Context(threads=t)) for t in (1, 2, 3)]
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])
    with pytest.raises(qcore.ShapeError, match="'w'"):
        qcore.int8_gemm(x, w[:, :299].copy())
    with pytest.raises(qcore.DTypeError, match="'w'"):
        qcore.int8_gemm(x, w.view(np.uint8))
    with pytest.raises(qcore.IntegerOverflowError, match="65535"):
        qcore.int8_gemm(np.zeros((1, 65536), np.uint8), np.zeros((1, 65536), np.int8))
    with pytest.raises(qcore.ShapeError, match="empty"):
        qcore.int8_gemm(np.zeros((1, 0), np.uint8), np.zeros((1, 0), np.int8))
