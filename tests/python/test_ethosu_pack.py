"""Layer streams against Vela: the oracle assembles each layer exactly as Vela's
weight_compressor.encode_weight_and_scale_tensor does (the loop over bricks and cores is rewritten here, but
every piece it calls is Vela's: encode_weights with its Accelerator, encode_bias, core_deinterleave, and
quantise_scale for the per-channel scales), over random layers on every U55/U65 configuration, including
U65-512's split of the OFM channels and block depth between its two cores, bricks (ofm_depth_step),
dilation 2, depthwise, both traversals and 16-bit IFM."""
import numpy as np
import pytest

import qcore

pytest.importorskip("ethosu.vela.weight_compressor")
from ethosu.vela.scaling import quantise_scale  # noqa: E402
from ethosu_oracle import vela_layer  # noqa: E402


def random_layer(rng):
    depthwise = bool(rng.random() < 0.2)
    o, kh, kw = int(rng.integers(1, 70)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    i = 1 if depthwise else int(rng.integers(1, 48))
    ohwi = np.clip(np.round(rng.normal(0, rng.uniform(2, 50), (o, kh, kw, i))), -255, 255).astype(np.int16)
    bias = rng.integers(-2**31, 2**31, o)
    float_scales = np.exp2(rng.uniform(-20, -2, o))
    return dict(
        ohwi=ohwi, bias=bias, scales=[quantise_scale(float(s)) for s in float_scales],
        config=str(rng.choice([n for n in qcore.ethosu.CONFIGS if "u85" not in n])),   # U85: test_ethosu_u85.py
        ofm_block_depth=int(rng.choice([8, 16, 32, 64, 3])),
        depthwise=depthwise, part_kernel=not depthwise and bool(rng.random() < 0.5),
        ifm_bits=int(rng.choice([8, 16])), dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
        step=int(rng.choice([0, 0, 16, 24])))


@pytest.mark.parametrize("seed", range(6))
def test_layers_match_vela(seed):
    rng = np.random.default_rng(900 + seed)
    for _ in range(25):
        p = random_layer(rng)
        stream, ranges = vela_layer(**p)
        layer = qcore.ethosu_pack_layer(
            p["ohwi"], [s for s, _ in p["scales"]], [sh for _, sh in p["scales"]], bias=p["bias"],
            config=p["config"], ofm_block_depth=p["ofm_block_depth"], depthwise=p["depthwise"],
            traversal="part_kernel_first" if p["part_kernel"] else "depth_first", ifm_bits=p["ifm_bits"],
            dilation=p["dilation"], ofm_depth_step=p["step"])
        assert layer.stream == stream, {k: v for k, v in p.items() if k not in ("ohwi", "bias", "scales")}
        assert [(r.depth_offset, r.core, r.offset, r.scale_bytes, r.weight_offset, r.weight_bytes)
                for r in layer.ranges] == ranges


def test_auto_traversal_is_vela_choice():
    rng = np.random.default_rng(4)
    for shape in [(16, 3, 3, 3), (16, 1, 1, 64), (8, 3, 3, 40), (8, 5, 5, 200)]:
        w = rng.integers(-100, 100, shape).astype(np.int16)
        pk = qcore.ethosu_part_kernel_first(shape[3], shape[1], shape[2])
        auto = qcore.ethosu_pack_layer(w, 1 << 30, 31)
        explicit = qcore.ethosu_pack_layer(w, 1 << 30, 31, traversal="part_kernel_first" if pk else "depth_first")
        assert auto.stream == explicit.stream


def test_u65_512_splits_channels_between_cores():
    w = np.arange(-60, 60, dtype=np.int16).reshape(12, 1, 1, 10)
    layer = qcore.ethosu_pack_layer(w, 1 << 30, 31, config="ethos-u65-512")
    assert [(r.core, r.scale_bytes) for r in layer.ranges] == [(0, 60), (1, 60)]
    for r in layer.ranges:
        weights = layer.stream[r.offset + r.weight_offset:r.offset + r.weight_offset + r.weight_bytes]
        alone = qcore.ethosu_reorder_encode(np.ascontiguousarray(w[r.core::2]), ofm_block_depth=8, part_kernel=False)
        assert weights == alone[0]


def test_bad_channels_are_named():
    w = np.zeros((4, 1, 1, 8), np.int16)
    with pytest.raises(qcore.InvalidArgumentError, match="'shift': channel 2 is 64"):
        qcore.ethosu_pack_layer(w, 1 << 30, [31, 31, 64, 31])
    with pytest.raises(qcore.InvalidArgumentError, match="'scale': channel 0 is -1"):
        qcore.ethosu_pack_layer(w, -1, 31)
    with pytest.raises(qcore.InvalidArgumentError, match="'bias': channel 3"):
        qcore.ethosu_pack_layer(w, 1, 31, bias=[0, 0, 0, 2**39])
    with pytest.raises(qcore.InvalidArgumentError, match="'dilation_x'"):
        qcore.ethosu_pack_layer(w, 1, 31, dilation=(3, 1))
    with pytest.raises(qcore.InvalidArgumentError, match="'config'"):
        qcore.ethosu_pack_layer(w, 1, 31, config="ethos-u99-256")
    w[3, 0, 0, 7] = 256
    with pytest.raises(qcore.InvalidArgumentError, match="'ohwi': element 31 is 256"):
        qcore.ethosu_pack_layer(w, 1, 31)
