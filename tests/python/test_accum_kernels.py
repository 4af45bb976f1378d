"""The accumulator simulator's lane kernels (kernels/dispatch.h accum_tile): every kernel set gives the
reference kernel's counts and register values exactly, on shapes that hit every edge - rows that fill no,
one or several blocks of 16 lanes with a partial last block, rows shorter than a tile and tiles that do
not divide K, one-input tiles, registers of 2 bits that wrap on almost every term, the largest inputs and
weights the simulator accepts, a narrow and the widest outer register - and for any thread count. The reference
kernel itself is checked against the numpy oracle in test_accum.py."""
import numpy as np
import pytest

import qcore
from test_arch_consistency import OPTIMIZED, arch_context

FIELDS = ["dot_products", "max_abs_partial_sum", "max_abs_outer_sum", "wrap_events", "wrap_outer_events",
          "wrap_overflowing_products", "saturate_events", "saturate_outer_events", "saturate_overflowing_products"]

# (samples, rows, K, tile, bits, outer bits, input range, weight bound)
CASES = [
    (5, 1, 7, 0, 8, 0, (0, 255), 7),
    (4, 15, 33, 8, 12, 0, (0, 255), 7),
    (3, 16, 64, 16, 10, 12, (-128, 127), 7),
    (6, 17, 100, 32, 14, 0, (-8, 7), 127),
    (2, 33, 12, 1, 2, 2, (0, 1), 1),
    (3, 40, 129, 64, 3, 4, (-128, 127), 8),
    (2, 18, 4, 0, 32, 0, (-(2 ** 31), 2 ** 31 - 1), 2 ** 27),
    (2, 19, 4, 2, 20, 33, (-(2 ** 31), 2 ** 31 - 1), 2 ** 27),
    (3, 20, 10, 4, 8, 63, (0, 255), 7),  # the widest outer register: its span 2^63 is beyond int64
]


def extreme_inputs(rng, n, k, lo, hi):
    """Uniform inputs with a third of them at the range's ends (the largest terms)."""
    x = rng.integers(lo, hi, (n, k), endpoint=True)
    ends = rng.integers(0, 3, (n, k))
    return np.where(ends == 1, lo, np.where(ends == 2, hi, x)).astype(np.int32)


@pytest.mark.parametrize("arch", OPTIMIZED)
@pytest.mark.parametrize("samples, rows, k, tile, bits, outer_bits, x_range, q_bound", CASES)
def test_kernels_equal_the_reference_kernel(arch, samples, rows, k, tile, bits, outer_bits, x_range, q_bound):
    ctx = arch_context(arch)
    rng = np.random.default_rng(rows * 1000 + k)
    x = extreme_inputs(rng, samples, k, *x_range)
    q = rng.integers(-q_bound, q_bound, (rows, k), endpoint=True).astype(np.int32)
    reference = qcore.simulate_accumulator(x, q, bits, x_range, tile, outer_bits, ctx=qcore.Context(arch="ref"))
    got = qcore.simulate_accumulator(x, q, bits, x_range, tile, outer_bits, ctx=ctx)
    for field in FIELDS:
        assert getattr(got, field) == getattr(reference, field), field
    np.testing.assert_array_equal(got.y_wrap, reference.y_wrap)
    np.testing.assert_array_equal(got.y_saturate, reference.y_saturate)
    if bits <= 3:  # the comparison has teeth: the overflow paths of the registers ran
        assert reference.wrap_events + reference.wrap_outer_events > 0
        assert reference.saturate_events + reference.saturate_outer_events > 0


def test_exact_sums_match_numpy_on_a_minilm_sized_layer(rng):
    """At P = 32 nothing overflows, so the wrapped value is the exact dot product (numpy, int64); the largest
    partial sum is numpy's largest |cumulative sum| along each row."""
    x = rng.integers(0, 256, (8, 384)).astype(np.int32)
    q = rng.integers(-8, 8, (1536, 384)).astype(np.int32)
    sim = qcore.simulate_accumulator(x, q, 32, (0, 255))
    np.testing.assert_array_equal(sim.y_wrap, x.astype(np.int64) @ q.T.astype(np.int64))
    partial = np.cumsum(x[:, None, :].astype(np.int64) * q[None, :, :], axis=2)
    assert sim.max_abs_partial_sum == np.abs(partial).max() and sim.wrap_events == 0


@pytest.mark.parametrize("arch", ["ref"] + OPTIMIZED)
def test_counts_do_not_depend_on_the_thread_count(arch):
    rng = np.random.default_rng(7)
    x = extreme_inputs(rng, 37, 200, 0, 255)
    q = rng.integers(-8, 8, (50, 200)).astype(np.int32)
    one, two = (qcore.simulate_accumulator(x, q, 13, (0, 255), tile=64, ctx=arch_context(arch, threads=t))
                for t in (1, 2))
    assert one.wrap_events > 0
    for field in FIELDS:
        assert getattr(one, field) == getattr(two, field), field
    np.testing.assert_array_equal(one.y_wrap, two.y_wrap)
    np.testing.assert_array_equal(one.y_saturate, two.y_saturate)
