"""Rotations against numpy oracles: Haar matrices equal numpy's sign-corrected QR of the same Gaussian matrix
(drawn by qcore's Philox and handed to numpy), Hadamard matrices are +-1 with H H^T = n I and the Kronecker
structure H_{2^k} (x) H_K, the FWHT equals the dense product x @ H / sqrt(n) for every supported n up to
4096, the randomized Hadamard equals x @ H diag(d) / sqrt(n) with d read from qcore.random_bits, and results
are bit-identical on 1, 2 and 3 threads."""
import numpy as np
import pytest

import qcore

TRANSFORMER_K = [1, 2, 4, 12, 20, 28, 36, 40, 52, 60]


def supported(n):
    try:
        return qcore.hadamard_factor(n)
    except qcore.UnsupportedError:
        return 0


SUPPORTED_N = [n for n in range(1, 4097) if supported(n)]


def sylvester(m):
    h = np.ones((1, 1))
    while h.shape[0] < m:
        h = np.block([[h, h], [h, -h]])
    return h


def orthogonality_error(q):
    q = q.astype(np.float64)
    return np.abs(q.T @ q - np.eye(q.shape[0])).max()


# ---- Haar-random orthogonal matrices --------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 17, 64, 384, 1024])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_orthogonal_is_orthogonal(n, dtype):
    q = qcore.random_orthogonal(n, dtype, stream=n)
    assert q.dtype == dtype
    assert orthogonality_error(q) < (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("n", [1, 5, 64, 300])
def test_random_orthogonal_is_numpys_sign_corrected_qr(n):
    ctx = qcore.Context(seed=1234)
    g = qcore.random_normal((n, n), np.float64, stream=9, ctx=ctx)
    q, r = np.linalg.qr(g)
    want = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    got = qcore.random_orthogonal(n, np.float64, stream=9, ctx=ctx)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_haar_first_entry_has_mean_square_one_over_n():
    # Q[0,0]^2 of a Haar matrix is Beta(1/2, (n-1)/2): mean 1/n, variance 2(n-1)/(n^2 (n+2)).
    n, draws = 8, 2000
    values = np.array([qcore.random_orthogonal(n, np.float64, ctx=qcore.Context(seed=s))[0, 0] ** 2
                       for s in range(draws)])
    sd_of_mean = np.sqrt(2 * (n - 1) / (n * n * (n + 2)) / draws)
    assert abs(values.mean() - 1 / n) < 4 * sd_of_mean
    # Haar matrices have determinant +1 or -1 with equal probability (sign correction keeps both).
    dets = [np.linalg.det(qcore.random_orthogonal(4, np.float64, ctx=qcore.Context(seed=s))) for s in range(200)]
    assert 60 < sum(d > 0 for d in dets) < 140


def test_random_orthogonal_depends_on_seed_and_stream_only():
    a = qcore.random_orthogonal(32, ctx=qcore.Context(seed=5), stream=1)
    assert np.array_equal(a, qcore.random_orthogonal(32, ctx=qcore.Context(seed=5), stream=1))
    assert not np.array_equal(a, qcore.random_orthogonal(32, ctx=qcore.Context(seed=6), stream=1))
    assert not np.array_equal(a, qcore.random_orthogonal(32, ctx=qcore.Context(seed=5), stream=2))


# ---- Hadamard matrices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", TRANSFORMER_K + [24, 44, 68, 76, 100, 108, 124, 144, 244, 256])
def test_constructed_matrix_is_hadamard(k):
    h = qcore.hadamard_matrix(k, np.float64)
    assert set(np.unique(h)) <= {-1.0, 1.0}
    assert np.array_equal(h @ h.T, k * np.eye(k))


def test_supported_orders_up_to_128():
    orders = [n for n in range(1, 129) if supported(n)]
    assert orders == [1, 2] + [n for n in range(4, 129, 4) if n not in (92, 116)]


@pytest.mark.parametrize("n, k", [(384, 12), (1536, 12), (768, 12), (640, 20), (2560, 20), (4096, 1), (40, 20),
                                  (112, 28), (3072, 12), (1152, 36), (208, 52), (960, 60)])
def test_order_is_sylvester_kronecker_factor(n, k):
    assert qcore.hadamard_factor(n) == k
    want = np.kron(sylvester(n // k), qcore.hadamard_matrix(k, np.float64))
    assert np.array_equal(qcore.hadamard_matrix(n, np.float64), want)


# ---- the fast Walsh-Hadamard transform ------------------------------------------------------------------

def dense_hadamard(n):
    """H_n from the K x K factor and numpy's Kronecker product, the factor itself checked above."""
    k = qcore.hadamard_factor(n)
    return np.kron(sylvester(n // k), qcore.hadamard_matrix(k, np.float64))


def test_every_supported_n_up_to_4096_matches_the_dense_product():
    rng = np.random.default_rng(1)
    for n in SUPPORTED_N:
        rows = 1 + n % 4
        x = rng.standard_normal((rows, n)).astype(np.float32)
        h = dense_hadamard(n)
        want = x.astype(np.float64) @ h / np.sqrt(n)
        np.testing.assert_allclose(qcore.fwht(x), want, rtol=0, atol=2e-5, err_msg="n = %d" % n)
        np.testing.assert_allclose(qcore.fwht(x, transpose=True), x.astype(np.float64) @ h.T / np.sqrt(n),
                                   rtol=0, atol=2e-5, err_msg="n = %d, transposed" % n)
    assert len(SUPPORTED_N) == 162  # 13 powers of 2 and 149 multiples K * 2^k of a Paley or Kronecker K
    assert {384, 768, 1536, 3072, 640, 2560, 4096} <= set(SUPPORTED_N)


@pytest.mark.parametrize("shape", [(0, 384), (1, 384), (7, 384), (64, 1536), (2, 3, 60), (5, 4096), (384,)])
def test_fwht_row_counts_and_ranks(shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    n = shape[-1]
    want = (x.reshape(-1, n).astype(np.float64) @ dense_hadamard(n) / np.sqrt(n)).reshape(shape)
    got = qcore.fwht(x)
    assert got.shape == shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_fwht_in_place_and_inverse():
    x = np.random.default_rng(3).standard_normal((9, 1536)).astype(np.float32)
    y = x.copy()
    assert qcore.fwht(y, inplace=True) is y
    assert not np.array_equal(y, x)
    np.testing.assert_allclose(qcore.fwht(y, transpose=True), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", [384, 1536, 4096, 640])
def test_results_are_identical_on_1_2_and_3_threads(n):
    x = np.random.default_rng(n).standard_normal((67, n)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        ctx = qcore.Context(threads=threads, seed=3)
        results.append((qcore.fwht(x, ctx=ctx), qcore.random_hadamard(x, stream=4, ctx=ctx),
                        qcore.random_orthogonal(min(n // 2, 768), ctx=ctx)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


# ---- the randomized Hadamard rotation -------------------------------------------------------------------

def signs(n, seed, stream):
    return np.where(qcore.random_bits(n, seed, stream) >> np.uint64(63), -1.0, 1.0)


@pytest.mark.parametrize("n", [12, 64, 384, 1536, 2560])
def test_random_hadamard_matrix_is_h_d_over_sqrt_n(n):
    ctx = qcore.Context(seed=77)
    r = qcore.random_hadamard_matrix(n, np.float64, stream=3, ctx=ctx)
    np.testing.assert_allclose(r, dense_hadamard(n) * signs(n, 77, 3) / np.sqrt(n), rtol=0, atol=1e-15)
    assert orthogonality_error(qcore.random_hadamard_matrix(n, np.float32, stream=3, ctx=ctx)) < 1e-5


@pytest.mark.parametrize("n", [20, 256, 384, 4096])
def test_random_hadamard_transform_is_the_matrix_product(n):
    ctx = qcore.Context(seed=8)
    x = np.random.default_rng(n).standard_normal((11, n)).astype(np.float32)
    r = qcore.random_hadamard_matrix(n, np.float64, stream=5, ctx=ctx)
    np.testing.assert_allclose(qcore.random_hadamard(x, stream=5, ctx=ctx), x @ r, rtol=0, atol=2e-5)
    np.testing.assert_allclose(qcore.random_hadamard(x, stream=5, transpose=True, ctx=ctx), x @ r.T, rtol=0,
                               atol=2e-5)
