"""U55/U65 weight order against Vela: qcore.ethosu_reorder_encode must give the bytes and the reordered
count of Vela's mlw_codec.reorder_encode for random OHWI shapes (kernels up to 11x11 so that sub-kernels
split at 8 or at 4 with dilation 2, IFM/OFM depths that leave partial micro-blocks and blocks), every
micro-block depth Vela's configurations use, block depths 1..64, depthwise, part-kernel-first and
depth-first, 8- and 16-bit IFM. qcore.ethosu_reorder itself is checked against Vela's decode of Vela's
stream, i.e. the order Vela wrote. The traversal choice is checked against the formula of Vela's
weight_compressor, written out here in Python."""
import math

import numpy as np
import pytest

import qcore

mlw_codec = pytest.importorskip("ethosu.mlw_codec")

UBLOCKS = [(8, 8), (8, 4)]   # (ifm, ofm) micro-block depths: every config, and U55-32's 4-deep OFM
DECOMP = [(8, 8), (4, 4), (8, 4), (4, 8)]   # 8 // dilation, for dilations 1 and 2 in y and x


def cases(count, seed):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        depthwise = bool(rng.random() < 0.25)
        part_kernel = not depthwise and bool(rng.random() < 0.5)
        o = int(rng.integers(1, 41))
        shape = (o, int(rng.integers(1, 12)), int(rng.integers(1, 12)), 1 if depthwise else int(rng.integers(1, 71)))
        w = np.clip(np.round(rng.normal(0, rng.uniform(1, 60), shape)), -255, 255).astype(np.int16)
        w[rng.random(shape) < rng.uniform(0, 0.7)] = 0
        ifm_ub, ofm_ub = UBLOCKS[int(rng.integers(len(UBLOCKS)))]
        dh, dw = DECOMP[int(rng.integers(len(DECOMP)))]
        yield w, dict(ifm_ublock_depth=ifm_ub, ofm_ublock_depth=ofm_ub, ofm_block_depth=int(rng.integers(1, 65)),
                      depthwise=depthwise, part_kernel=part_kernel, ifm_bits=int(rng.choice([8, 16])),
                      decomp_h=dh, decomp_w=dw)


def vela(w, p):
    return mlw_codec.reorder_encode(p["ifm_ublock_depth"], p["ofm_ublock_depth"], w,
                                    p["ofm_block_depth"], p["depthwise"], p["part_kernel"], p["ifm_bits"],
                                    p["decomp_h"], p["decomp_w"])


@pytest.mark.parametrize("part", range(4))
def test_reorder_encode_matches_vela(part):
    for w, p in cases(150, 300 + part):
        stream, count = vela(w, p)
        ours, our_count = qcore.ethosu_reorder_encode(w, **p)
        assert our_count == count, (w.shape, p)
        assert ours == bytes(stream), (w.shape, p)
        order = qcore.ethosu_reorder(w, **p)
        assert order.tolist() == mlw_codec.decode(bytearray(stream)), (w.shape, p)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (64, 3, 3, 64), (17, 9, 9, 33), (8, 1, 1, 300)])
@pytest.mark.parametrize("part_kernel", [False, True])
@pytest.mark.parametrize("ifm_bits", [8, 16])
def test_named_shapes_match_vela(shape, part_kernel, ifm_bits):
    w = np.random.default_rng(sum(shape)).integers(-127, 128, shape).astype(np.int16)
    p = dict(ifm_ublock_depth=8, ofm_ublock_depth=8, ofm_block_depth=16, depthwise=False, part_kernel=part_kernel,
             ifm_bits=ifm_bits, decomp_h=8, decomp_w=8)
    stream, count = vela(w, p)
    assert qcore.ethosu_reorder_encode(w, **p) == (bytes(stream), count)


def vela_choice(ifm_depth, kh, kw, ifm_bits):
    """weight_compressor.encode_weight_and_scale_tensor's choice for ConvolutionMxN."""
    kernel_size = kh * kw
    depth_utilization = ifm_depth / (math.ceil(ifm_depth / (32 if ifm_bits == 8 else 16)) * (32 if ifm_bits == 8 else 16))
    part_kernel_utilization = (ifm_depth / (math.ceil(ifm_depth / 8) * 8)) * (
        kernel_size / (math.ceil(kernel_size / (4 if ifm_bits == 8 else 2)) * (4 if ifm_bits == 8 else 2)))
    return part_kernel_utilization >= depth_utilization or ifm_depth <= 8


def test_traversal_choice_matches_vela():
    for c in list(range(1, 130)) + [255, 256, 257, 1000]:
        for kh, kw in [(1, 1), (1, 2), (2, 2), (3, 3), (1, 7), (5, 5), (7, 7), (3, 1)]:
            for bits in (8, 16):
                assert qcore.ethosu_part_kernel_first(c, kh, kw, bits) == vela_choice(c, kh, kw, bits), (c, kh, kw, bits)


def test_configurations_match_vela():
    from ethosu.vela.architecture_features import Accelerator, ArchitectureFeatures
    for name in [n for n in qcore.ethosu.CONFIGS if "u85" not in n]:   # U85: Regor, not architecture_features
        ours = qcore.ethosu_config(name)
        theirs = ArchitectureFeatures.accelerator_configs[Accelerator(name)]
        assert (ours.macs_per_cycle, ours.cores) == (theirs.macs * theirs.cores, theirs.cores)
        assert (ours.ofm_ublock_depth, ours.ifm_ublock_depth) == (theirs.ofm_ublock.depth, theirs.ifm_ublock.depth)


def test_bad_shapes_and_options():
    w = np.zeros((2, 3, 3, 4), np.int16)
    with pytest.raises(qcore.InvalidArgumentError, match="OHWI"):
        qcore.ethosu_reorder(w[0])
    with pytest.raises(qcore.InvalidArgumentError, match="'depthwise' and 'part_kernel'"):
        qcore.ethosu_reorder(w, depthwise=True, part_kernel=True)
    with pytest.raises(qcore.InvalidArgumentError, match="'decomp_h' is 0"):
        qcore.ethosu_reorder(w, decomp_h=0)
    w[1, 2, 0, 3] = -300
    flat = np.ravel_multi_index((1, 2, 0, 3), w.shape)
    with pytest.raises(qcore.InvalidArgumentError, match="'ohwi': element %d is -300" % flat):
        qcore.ethosu_reorder_encode(w)
