"""Every kernel set gives the reference kernels' results bit for bit (qc_core.h: QC_ARCH_REF is "the
reference every other kernel is tested against"), on lengths that hit every vector tail and on a long
tensor split over threads."""
import numpy as np
import pytest

import qcore
from conftest import assert_same_floats, assert_same_ints

OPTIMIZED = ["avx2", "avx512"]

# name -> (QuantOptions fields, dtype argument of quantize)
GRIDS = {
    "s8-sym": (dict(bits=8), None),
    "s8-asym": (dict(bits=8, symmetric=False), None),
    "u8-asym": (dict(bits=8, signed=False, symmetric=False), None),
    "u8-sym-narrow": (dict(bits=8, signed=False, narrow_range=True), None),
    "s4-packed": (dict(bits=4, symmetric=False), "int4"),
    "u4-packed": (dict(bits=4, signed=False, symmetric=False), "uint4"),
    "s2-asym": (dict(bits=2, symmetric=False), None),
    "s16-asym": (dict(bits=16, symmetric=False), None),
}

# granularity variants for a 1-D x of length n: one stretch; stretches of 5; stretches of 1 (2-D, channel last)
VARIANTS = ["tensor", "group5", "channel-last"]


def arch_context(arch, **kw):
    if not qcore.arch_supported(arch):
        pytest.skip("kernel set %r cannot run here" % arch)
    ctx = qcore.Context(arch=arch, **kw)
    assert ctx.arch == arch
    return ctx


def adversarial_pool(n, seed=5):
    """Normal values with exact ties at scale 2^-5, values past the clip edges, signed zeros, tiny and
    huge magnitudes, in a shuffled order."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 2.0
    kinds = rng.integers(0, 8, n)
    x = np.where(kinds == 1, (rng.integers(-300, 300, n) + 0.5) * 2.0 ** -5, x)
    x = np.where(kinds == 2, rng.choice([-1e30, 1e30, -3e38, 3e38, 1e9, -1e9], n), x)
    x = np.where(kinds == 3, rng.choice([-0.0, 0.0, 1e-45, -1e-45, 1e-38], n), x)
    x = np.where(kinds == 4, (rng.integers(-40000, 40000, n) + 0.5) * 2.0 ** -10, x)
    return x.astype(np.float32)


def shaped(x, variant, fields):
    """(x, opts) for a granularity variant."""
    if variant == "tensor":
        return x, qcore.QuantOptions(**fields)
    if variant == "group5":
        return x, qcore.QuantOptions(granularity="group", axis=0, group_size=5, **fields)
    return x.reshape(1, -1), qcore.QuantOptions(granularity="channel", axis=-1, **fields)


def params(x, opts, ctx, rng):
    """Parameters scaled so that part of the data clips: min-max over a tamed copy of x."""
    tame = np.clip(x, -4, 4).astype(np.float32)
    scale, zero_point = qcore.choose_params(tame, opts, ctx=ctx)
    return scale, zero_point


def compare(ref_ctx, ctx, x, opts, dtype, scale, zero_point, what):
    q_ref = qcore.quantize(x, scale, zero_point, opts, dtype=dtype, ctx=ref_ctx)
    q = qcore.quantize(x, scale, zero_point, opts, dtype=dtype, ctx=ctx)
    if isinstance(q, qcore.PackedInt4):
        np.testing.assert_array_equal(q.data, q_ref.data, err_msg=what + " quantize (packed)")
    else:
        assert_same_ints(q, q_ref, what + " quantize")
    assert_same_floats(qcore.dequantize(q_ref, scale, zero_point, opts, ctx=ctx),
                       qcore.dequantize(q_ref, scale, zero_point, opts, ctx=ref_ctx), what + " dequantize")
    y_ref = qcore.fake_quantize(x, scale, zero_point, opts, ctx=ref_ctx)
    assert_same_floats(qcore.fake_quantize(x, scale, zero_point, opts, ctx=ctx), y_ref, what + " fake_quantize")
    y = x.copy()
    qcore.fake_quantize(y, scale, zero_point, opts, out=y, ctx=ctx)   # in place
    assert_same_floats(y, y_ref, what + " fake_quantize in place")


# Short inputs run on one thread: the kernels are under test here, and a team of threads per tiny call
# only adds synchronisation (the long-tensor tests below use several threads).


@pytest.mark.parametrize("arch", OPTIMIZED)
def test_short_lengths_match_ref(arch):
    ctx = arch_context(arch, threads=1)
    ref = arch_context("ref", threads=1)
    rng = np.random.default_rng(11)
    pool = adversarial_pool(4096)
    for n in range(1, 68):
        for start in (0, 1, 3):            # different alignments of x
            x_flat = pool[start * 97 + start: start * 97 + start + n]
            for grid, (fields, dtype) in GRIDS.items():
                for variant in VARIANTS:
                    x, opts = shaped(x_flat, variant, fields)
                    scale, zero_point = params(x, opts, ref, rng)
                    what = "%s n=%d start=%d %s %s" % (arch, n, start, grid, variant)
                    compare(ref, ctx, x, opts, dtype, scale, zero_point, what)


@pytest.mark.parametrize("arch", OPTIMIZED)
def test_short_lengths_dequantize_every_level(arch):
    """Dequantize of arbitrary stored levels (not only those quantize produced), random zero points."""
    ctx = arch_context(arch, threads=1)
    ref = arch_context("ref", threads=1)
    rng = np.random.default_rng(12)
    for grid, (fields, dtype) in GRIDS.items():
        opts = qcore.QuantOptions(**dict(fields, symmetric=False))
        qmin, qmax = opts.qrange()
        for n in range(1, 68):
            levels = rng.integers(qmin, qmax, n, endpoint=True)
            q = (qcore.PackedInt4(qcore.pack_int4(levels.astype(np.int8), dtype == "int4"), (n,), dtype == "int4")
                 if dtype else levels.astype(opts.storage_dtype()))
            scale = np.array(rng.uniform(1e-3, 10), np.float32)
            zero_point = np.array(rng.integers(qmin, qmax, endpoint=True), np.int32)
            assert_same_floats(qcore.dequantize(q, scale, zero_point, opts, ctx=ctx),
                               qcore.dequantize(q, scale, zero_point, opts, ctx=ref), "%s %s n=%d" % (arch, grid, n))


@pytest.mark.parametrize("arch", OPTIMIZED)
def test_short_lengths_mse_params_match_ref(arch):
    ctx = arch_context(arch, threads=1)
    ref = arch_context("ref", threads=1)
    pool = adversarial_pool(4096, seed=6)
    pool = np.clip(pool, -1e4, 1e4).astype(np.float32)   # a usable range; ties and zeros kept
    for n in range(1, 68):
        x_flat = pool[n * 13: n * 13 + n]
        for grid, (fields, _) in GRIDS.items():
            for variant in VARIANTS:
                x, opts = shaped(x_flat, variant, dict(fields, scale_method="mse", mse_steps=25))
                s_ref, z_ref = qcore.choose_params(x, opts, ctx=ref)
                s, z = qcore.choose_params(x, opts, ctx=ctx)
                what = "%s n=%d %s %s" % (arch, n, grid, variant)
                assert_same_floats(s, s_ref, what + " scale")
                assert_same_ints(z, z_ref, what + " zero point")


LONG = 1000003


@pytest.fixture(scope="module")
def long_x():
    return adversarial_pool(LONG, seed=7)


@pytest.mark.parametrize("arch", OPTIMIZED)
@pytest.mark.parametrize("grid", ["s8-asym", "u8-sym-narrow", "s4-packed", "u4-packed"])
def test_long_tensor_matches_ref(arch, grid, long_x):
    ctx = arch_context(arch, threads=2)
    ref = arch_context("ref", threads=1)
    fields, dtype = GRIDS[grid]
    rng = np.random.default_rng(13)
    for variant in ("tensor", "group5"):
        x, opts = shaped(long_x, variant, fields)
        scale, zero_point = params(x, opts, ref, rng)
        compare(ref, ctx, x, opts, dtype, scale, zero_point, "%s %s %s n=%d" % (arch, grid, variant, LONG))


@pytest.mark.parametrize("arch", OPTIMIZED)
def test_long_tensor_mse_params_match_ref(arch, long_x):
    ctx = arch_context(arch, threads=2)
    ref = arch_context("ref", threads=1)
    x = np.clip(long_x, -1e4, 1e4).astype(np.float32)
    for opts in (qcore.QuantOptions(symmetric=False, scale_method="mse"),
                 qcore.QuantOptions(bits=4, scale_method="mse", mse_steps=30, granularity="group", axis=0,
                                    group_size=1000)):
        s_ref, z_ref = qcore.choose_params(x, opts, ctx=ref)
        s, z = qcore.choose_params(x, opts, ctx=ctx)
        assert_same_floats(s, s_ref, "%s mse scale" % arch)
        assert_same_ints(z, z_ref, "%s mse zero point" % arch)


def test_ref_is_always_supported():
    assert qcore.arch_supported("ref")
    assert qcore.best_arch() in ("ref", "avx2", "avx512") and qcore.arch_supported(qcore.best_arch())
    assert qcore.Context(arch="auto").arch == qcore.best_arch()
    features = qcore.cpu_features()
    if "avx2" not in features:
        assert not qcore.arch_supported("avx2")
    if not {"avx512f", "avx512bw", "avx512vl"} <= features:
        assert not qcore.arch_supported("avx512")
