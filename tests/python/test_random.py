"""Counter-based random numbers against numpy's Philox4x64-10 and the documented draw formulas.

qc_tensor.h: word i of (seed, stream) is lane i mod 4 of Philox4x64-10 with key (seed, stream) and
counter (i / 4, 0, 0, 0). numpy.random.Philox(key=[k0, k1]) takes the two key words in that order; it
increments its 256-bit counter (word 0 lowest) before producing each 4-word block, so starting it at
counter b - 1 (2**256 - 1 for b = 0) makes its first block block b.
"""
import math

import numpy as np
import pytest

import qcore

U64 = (1 << 64) - 1


def philox_words(n, seed, stream, offset):
    """Words offset .. offset+n-1 from numpy's Philox."""
    block, lane = divmod(offset, 4)
    counter = (block - 1) % (1 << 256)
    generator = np.random.Philox(key=np.array([seed, stream], dtype=np.uint64), counter=counter)
    return generator.random_raw(lane + n)[lane:].astype(np.uint64)


def test_numpy_key_order():
    """The premise: numpy's 2-word key is [key0, key1] (the words differ, so the order matters)."""
    g = np.random.Philox(key=np.array([3, 5], dtype=np.uint64))
    assert list(g.state["state"]["key"]) == [3, 5]
    assert not np.array_equal(philox_words(8, 3, 5, 0), philox_words(8, 5, 3, 0))


@pytest.mark.parametrize("seed", [0, 1, 0x243F6A8885A308D3, U64])
@pytest.mark.parametrize("stream", [0, 7, 1 << 63, U64])
def test_random_bits_match_numpy_philox(seed, stream):
    for offset in (0, 1, 2, 3, 4, 5, 6, 7, 9, 1001, (1 << 40) + 3, U64 - 40):
        for n in (1, 3, 4, 5, 17, 33):
            got = qcore.random_bits(n, seed, stream, offset)
            assert got.dtype == np.uint64 and got.shape == (n,)
            np.testing.assert_array_equal(got, philox_words(n, seed, stream, offset),
                                          err_msg="seed=%d stream=%d offset=%d n=%d" % (seed, stream, offset, n))


def test_random_bits_long_run_and_consistency():
    """A long run equals numpy's, and every window of it is the same words asked for directly."""
    words = qcore.random_bits(10000, 12345, 3, 0)
    np.testing.assert_array_equal(words, philox_words(10000, 12345, 3, 0))
    for offset, n in [(1, 9998), (4093, 7), (2, 1), (9999, 1)]:
        np.testing.assert_array_equal(qcore.random_bits(n, 12345, 3, offset), words[offset:offset + n])
    assert qcore.random_bits(0, 1, 2, 3).shape == (0,)


def uniform_f64(words):
    return (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def uniform_f32(words):
    return ((words >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)).astype(np.float32)


def normal_f64(words):
    """sqrt(-2 ln u1) cos(2 pi u2), u1 = (w[2j] >> 11 + 1) 2^-53, u2 = (w[2j+1] >> 11) 2^-53, with the C
    library's log and cos (Python's math module calls them)."""
    out = np.empty(len(words) // 2)
    for j in range(out.size):
        u1 = float((int(words[2 * j]) >> 11) + 1) * 2.0 ** -53
        u2 = float(int(words[2 * j + 1]) >> 11) * 2.0 ** -53
        out[j] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return out


SEEDS = [0, 42, U64, 1 << 63]


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_formula(seed):
    ctx = qcore.Context(seed=seed)
    assert ctx.seed == seed
    for stream, shape in [(0, (3000,)), (9, (7, 11)), (1 << 63, (2, 3, 4))]:
        n = int(np.prod(shape))
        words = qcore.random_bits(n, seed, stream, 0)
        u64 = qcore.random_uniform(shape, np.float64, stream=stream, ctx=ctx)
        assert u64.dtype == np.float64 and u64.shape == shape
        np.testing.assert_array_equal(u64.ravel(), uniform_f64(words))
        u32 = qcore.random_uniform(shape, np.float32, stream=stream, ctx=ctx)
        assert u32.dtype == np.float32 and u32.shape == shape
        np.testing.assert_array_equal(u32.ravel(), uniform_f32(words))
        assert u64.min() >= 0.0 and u64.max() < 1.0 and u32.min() >= 0.0 and u32.max() < 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_formula(seed):
    ctx = qcore.Context(seed=seed)
    for stream, shape in [(0, (2500,)), (5, (13, 17))]:
        n = int(np.prod(shape))
        expected = normal_f64(qcore.random_bits(2 * n, seed, stream, 0))
        z64 = qcore.random_normal(shape, np.float64, stream=stream, ctx=ctx)
        assert z64.dtype == np.float64 and z64.shape == shape
        np.testing.assert_array_equal(z64.ravel(), expected)
        z32 = qcore.random_normal(shape, np.float32, stream=stream, ctx=ctx)
        assert z32.dtype == np.float32
        np.testing.assert_array_equal(z32.ravel(), expected.astype(np.float32))


def test_normal_formula_in_numpy():
    """The same formula vectorized in numpy: numpy's own log/cos may differ from the C library's by an
    ulp, hence the tolerance (the exact comparison is test_normal_formula's)."""
    n = 100000
    words = qcore.random_bits(2 * n, 77, 2, 0)
    u1 = ((words[0::2] >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = (words[1::2] >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    expected = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    got = qcore.random_normal(n, np.float64, stream=2, ctx=qcore.Context(seed=77))
    np.testing.assert_allclose(got, expected, rtol=4e-15, atol=1e-15)


def test_normal_is_standard_normal():
    z = qcore.random_normal(200000, np.float64, ctx=qcore.Context(seed=3))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert np.all(np.isfinite(z))


@pytest.mark.parametrize("fill", [qcore.random_normal, qcore.random_uniform])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_threads(fill, dtype):
    """Several chunks of work (n > a few thousand) over 1, 2 and 3 threads: the same numbers."""
    shape = (5, 2049)
    results = [fill(shape, dtype, stream=11, ctx=qcore.Context(threads=t, seed=987654321)) for t in (1, 2, 3)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    # and they are the documented ones
    if fill is qcore.random_uniform:
        words = qcore.random_bits(results[0].size, 987654321, 11, 0)
        expect = uniform_f64(words) if dtype == np.float64 else uniform_f32(words)
        np.testing.assert_array_equal(results[0].ravel(), expect)


def test_default_seed_is_zero():
    ctx = qcore.Context()
    assert ctx.seed == 0
    np.testing.assert_array_equal(qcore.random_uniform(64, np.float64, ctx=ctx),
                                  uniform_f64(qcore.random_bits(64, 0, 0, 0)))


def test_streams_and_seeds_differ():
    a = qcore.random_bits(64, 1, 0, 0)
    assert not np.array_equal(a, qcore.random_bits(64, 1, 1, 0))
    assert not np.array_equal(a, qcore.random_bits(64, 2, 0, 0))


def test_bad_dtype():
    with pytest.raises(TypeError, match="float32 or float64"):
        qcore.random_normal((3,), np.int32)
    with pytest.raises(TypeError, match="float32 or float64"):
        qcore.random_uniform((3,), np.float16)
