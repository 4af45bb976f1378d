"""Ethos-U85 weight order, encoders and layer packing against Vela's Regor backend (the `vela` CLI of
ethos-u-vela 5.2.0): one-layer int8 models are compiled for U85-128/256/512 and the streams Regor writes are
read back through the command stream (tests/python/ethosu_regor.py). Default-format streams (Regor's own mlw
encoder, whose choices differ from the legacy encoder's) must decode with qcore's decoder to exactly
qcore.ethosu85_reorder's values for every core, with Regor's block depths and qcore's traversal choice, and
qcore.ethosu85_encode of those values must give Regor's bytes. Layers Regor splits into several operations
are skipped (at least 8 of 16 per part must be checked). Regor picks the 2:4 sparse layout for convolutions
whose weights happen to be 2:4 sparse (1 or 2 input channels here); the register that says so selects
qcore's sparse layout. FWD streams must be byte-identical to qcore.ethosu85_fwd_encode of the interleaved
order; whole layers (scale entries, streams, offsets) byte-identical to qcore.ethosu_pack_layer. The 4-bit
FWD form, which Regor's cost model did not pick for any layer tried, is checked against a numpy packing of
the documented format."""
import numpy as np
import pytest

import qcore

pytest.importorskip("ethosu.regor")
R = pytest.importorskip("ethosu_regor")

CONFIGS = {"ethos-u85-128": (128, 1), "ethos-u85-256": (256, 1), "ethos-u85-512": (512, 2)}


def order(w, config, regs, depthwise=False, stride=(1, 1), dilation=(1, 1), core=0):
    """qcore's order of `w` for Regor's block configuration: traversal and IFM block depth by Regor's
    rules (ethos_u85.cpp), OFM block depth from the command stream."""
    macs, cores = CONFIGS[config]
    sparse = bool(regs[R.WEIGHT_FORMAT][-1] & R.FORMAT_SPARSE)
    if depthwise:
        traversal, ublock = "depthwise", 16
    else:
        pk = qcore.ethosu85_part_kernel_first(w.shape[3], w.shape[1], w.shape[2], sparse)
        traversal, ublock = ("part_kernel" if pk else "depth_first"), 16 if macs == 512 else 8
    ifm_block = 16 if traversal == "part_kernel" else 128 if sparse else 64
    return qcore.ethosu85_reorder(w.astype(np.int16), macs=macs, cores=cores, core=core, traversal=traversal,
                                  ofm_ublock_depth=ublock, ofm_block_depth=regs[R.OFM_BLK_DEPTH_M1][-1] + 1,
                                  ifm_block_depth=ifm_block, stride=stride, dilation=dilation, sparse=sparse)


def cases(count, seed):
    rng = np.random.default_rng(seed)
    for i in range(count):
        config = list(CONFIGS)[i % 3]
        depthwise = bool(rng.random() < 0.3)
        k = (int(rng.integers(1, 10)), int(rng.integers(1, 10)))
        shape = (int(rng.integers(1, 70)), k[0], k[1], 1 if depthwise else int(rng.integers(1, 90)))
        w = np.clip(np.round(rng.normal(0, rng.uniform(2, 60), shape)), -127, 127).astype(np.int8)
        w[rng.random(shape) < rng.uniform(0, 0.6)] = 0
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dilation = (1, 1) if max(stride) > 1 or rng.random() < 0.6 else (int(rng.integers(1, 3)),
                                                                          int(rng.integers(1, 3)))
        yield w, config, depthwise, stride, dilation


def fwd(regs):
    return regs[R.WEIGHT_FORMAT][-1] & R.FORMAT_FAST


@pytest.mark.parametrize("part", range(3))
def test_reorder_matches_regor_streams(part):
    checked = 0
    for w, config, depthwise, stride, dilation in cases(16, 850 + part):
        data, regs = R.compile_layer(w, config, depthwise, ifm_hw=(9, 10), stride=stride, dilation=dilation)
        bricks = R.weight_streams(data, regs)
        if len(bricks) != 1 or len(regs[R.OFM_BLK_DEPTH_M1]) > 2:
            continue   # Regor split the layer into several operations (kernel decomposition, depth slices)
        assert not fwd(regs), "Regor chose FWD here"
        checked += 1
        streams = bricks[0]
        assert len(streams) == CONFIGS[config][1]
        for core, stream in enumerate(streams):
            ours = order(w, config, regs, depthwise, stride, dilation, core)
            theirs = qcore.ethosu_decode(stream)
            assert theirs.shape == ours.shape and (theirs == ours).all(), (w.shape, config, depthwise, stride,
                                                                         dilation, core)
            assert qcore.ethosu85_encode(ours) == stream
    assert checked >= 8


@pytest.mark.parametrize("config", ["ethos-u85-256", "ethos-u85-512"])
@pytest.mark.parametrize("values,optimise", [([-1, 0, 1, 2], "Performance"), ([-3, 0, 5], "Performance"),
                                             (list(range(-128, 128)), "Size")])
def test_fwd_matches_regor(config, values, optimise):
    rng = np.random.default_rng(len(values))
    w = rng.choice(values, (128, 1, 1, 192)).astype(np.int8)   # a fully connected layer: one IFM position
    data, regs = R.compile_layer(w, config, ifm_hw=(1, 1), optimise=optimise)
    assert fwd(regs), "Regor did not choose FWD"
    bricks = R.weight_streams(data, regs)
    assert len(bricks) == 1 and len(bricks[0]) == 1
    streams = bricks[0]
    ours = order(w, config, regs, core=qcore.ethosu.ALL_CORES)
    assert qcore.ethosu85_fwd_encode(ours) == streams[0]
    assert (qcore.ethosu85_fwd_decode(streams[0], ours.size) == ours).all()


def numpy_fwd(w):
    """The documented FWD layout, written independently: header bits, LUT of first-seen palvals."""
    _, first = np.unique(w, return_index=True)
    distinct = w[np.sort(first)]
    bits = 2 if len(distinct) <= 4 else 4 if len(distinct) <= 16 else 8
    header = np.zeros(256, np.uint8)
    header[0], header[1] = bits == 8, bits == 2
    for i, v in enumerate(distinct[:16]):
        palval = (abs(int(v)) << 1) | int(v < 0)
        header[112 + 9 * i:121 + 9 * i] = [(palval >> j) & 1 for j in range(9)]
    if bits == 8:
        adjust = 0 if w.min() >= -128 and w.max() <= 127 else max(-128 - int(w.min()), -128)  # an int8
        header[104:112] = [(adjust >> j) & 1 for j in range(8)]
        payload = ((w.astype(np.int64) + adjust) & 0xFF).astype(np.uint8)
    else:
        index = np.searchsorted(distinct, w, sorter=np.argsort(distinct))
        index = np.argsort(distinct)[index]
        per = 8 // bits
        padded = np.zeros(-(-len(w) // per) * per, np.int64)
        padded[:len(w)] = index
        payload = (padded.reshape(-1, per) << (bits * np.arange(per))).sum(axis=1).astype(np.uint8)
    out = np.packbits(header, bitorder="little").tobytes() + payload.tobytes()
    return out + bytes(-len(out) % 32)


@pytest.mark.parametrize("distinct", [1, 2, 4, 5, 9, 16, 17, 200])
@pytest.mark.parametrize("n", [1, 7, 100, 1000])
def test_fwd_matches_numpy_layout(distinct, n):
    rng = np.random.default_rng(distinct * 1000 + n)
    values = rng.choice(np.arange(-128, 128), distinct, replace=False)
    w = rng.choice(values, n).astype(np.int16)
    stream = qcore.ethosu85_fwd_encode(w)
    assert stream == numpy_fwd(w)
    assert (qcore.ethosu85_fwd_decode(stream, n) == w).all()


@pytest.mark.parametrize("values", [[-255, 255, 0, -1], list(range(-255, -240)), [-255] * 3])
def test_fwd_lut_holds_the_extremes(values):
    """LUT entries are 9-bit palvals: -255 is 511, the largest, and decodes back."""
    w = np.array(values * 5, np.int16)
    stream = qcore.ethosu85_fwd_encode(w)
    assert stream == numpy_fwd(w)
    assert (qcore.ethosu85_fwd_decode(stream, w.size) == w).all()


@pytest.mark.parametrize("lo, hi, adjust", [(-200, 55, 72), (29, 172, -128), (0, 255, -128), (-255, 0, 127),
                                             (100, 255, -128)])
def test_fwd_raw_with_zero_adjust_round_trips(lo, hi, adjust):
    """Raw FWD over ranges past int8: the zero adjust (an int8 itself) brings every weight into int8."""
    w = np.random.default_rng(hi - lo).permutation(np.arange(lo, hi + 1)).astype(np.int16)
    stream = qcore.ethosu85_fwd_encode(w)
    assert stream[0] == 1 and (stream[13] ^ 0x80) - 0x80 == adjust     # the byte read as an int8
    assert stream == numpy_fwd(w)
    assert (qcore.ethosu85_fwd_decode(stream, w.size) == w).all()


def regor_choose_kernel_first(c, kh, kw, sparse):
    """ethos_u85.cpp ChooseKernelFirst, written out in Python."""
    k = kh * kw
    s, r, d = (10, 4, 128) if sparse else (5, 2, 64)
    k_rnd = (k // s) * s + max(k % s, r)
    return (c / (-(-c // 16) * 16)) * (k / k_rnd) >= c / (-(-c // d) * d)


@pytest.mark.parametrize("sparse", [False, True])
def test_traversal_choice_matches_regor_formula(sparse):
    for c in list(range(1, 140)) + [255, 256, 1000]:
        for kh, kw in [(1, 1), (1, 2), (2, 2), (3, 3), (1, 5), (5, 5), (7, 7), (3, 1), (2, 5), (4, 4), (3, 5)]:
            assert qcore.ethosu85_part_kernel_first(c, kh, kw, sparse) == regor_choose_kernel_first(c, kh, kw, sparse)


def test_bad_input():
    w = np.zeros((4, 3, 3, 8), np.int16)
    with pytest.raises(qcore.InvalidArgumentError, match="'ofm_ublock_depth' is 12, not a multiple of 4 x 2"):
        qcore.ethosu85_reorder(w, cores=2, ofm_ublock_depth=12)
    with pytest.raises(qcore.InvalidArgumentError, match="'macs' is 300"):
        qcore.ethosu85_reorder(w, macs=300)
    with pytest.raises(qcore.InvalidArgumentError, match="reads IFM groups of 16"):
        qcore.ethosu85_reorder(w, sparse=True, ifm_block_depth=24)
    with pytest.raises(qcore.ShapeError, match="depthwise weights are"):
        qcore.ethosu85_reorder(w, traversal="depthwise")
    with pytest.raises(qcore.InvalidArgumentError, match="no interleaved"):
        qcore.ethosu85_reorder(np.zeros((4, 3, 3, 1), np.int16), traversal="depthwise", cores=2,
                               core=qcore.ethosu.ALL_CORES)
    with pytest.raises(qcore.InvalidArgumentError, match="at most 256 consecutive"):
        qcore.ethosu85_fwd_encode(np.arange(-255, 255, 2, dtype=np.int16))
    with pytest.raises(qcore.InvalidArgumentError, match="element 3 is 300"):
        qcore.ethosu85_fwd_encode(np.array([0, 1, 2, 300], np.int16))
    good = qcore.ethosu85_fwd_encode(np.arange(10, dtype=np.int16))
    with pytest.raises(qcore.FormatError, match="shorter than the 32-byte"):
        qcore.ethosu85_fwd_decode(good[:31], 10)
    with pytest.raises(qcore.FormatError, match="need 37"):
        qcore.ethosu85_fwd_decode(good[:36], 10)
    bad = bytearray(good)
    bad[5] = 1
    with pytest.raises(qcore.FormatError, match="reserved header bit 40"):
        qcore.ethosu85_fwd_decode(bytes(bad), 10)
    bad = bytearray(good)
    bad[0] = 3
    with pytest.raises(qcore.FormatError, match="both set"):
        qcore.ethosu85_fwd_decode(bytes(bad), 10)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_sparse_layout_matches_regor(config):
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (40, 3, 3, 24)).astype(np.int8)
    w.reshape(-1, 4)[:, rng.permutation(4)[:2]] = 0      # every aligned group of 4 IFM channels 2:4 sparse
    data, regs = R.compile_layer(w, config, ifm_hw=(9, 10))
    assert regs[R.WEIGHT_FORMAT][-1] & R.FORMAT_SPARSE, "Regor did not choose the sparse layout"
    bricks = R.weight_streams(data, regs)
    assert len(bricks) == 1
    for core, stream in enumerate(bricks[0]):
        ours = order(w, config, regs, core=core)
        theirs = qcore.ethosu_decode(stream)
        assert theirs.shape == ours.shape and (theirs == ours).all()


def regor_entries(w_scales, bias):
    """Per-channel (bias, scale, shift): ifm_scale * w_scale / ofm_scale in double from the model's float32
    scales, then Vela's quantise_scale."""
    f32 = np.float32
    scales = [qcore.ethosu_quantise_scale(float(f32(R.IFM_SCALE)) * float(s) / float(f32(R.OFM_SCALE)))
              for s in w_scales]
    return np.asarray(bias, np.int64), [s for s, _ in scales], [sh for _, sh in scales]


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", ["conv", "depthwise", "fc2bit", "fcraw"])
def test_pack_layer_matches_regor(config, kind):
    """A whole U85 layer: scale stream and weight streams byte-identical, the weights where Regor put them."""
    rng = np.random.default_rng(hash((config, kind)) % 2**32)
    if kind == "conv":
        w, hw, depthwise = rng.integers(-127, 128, (40, 3, 3, 24)).astype(np.int8), (9, 10), False
    elif kind == "depthwise":
        w, hw, depthwise = rng.integers(-127, 128, (40, 3, 3, 1)).astype(np.int8), (9, 10), True
    else:
        values = [-1, 0, 1, 2] if kind == "fc2bit" else list(range(-128, 128))
        w, hw, depthwise = rng.choice(values, (96, 1, 1, 160)).astype(np.int8), (1, 1), False
    o = w.shape[0]
    w_scales = rng.uniform(0.001, 0.05, o).astype(np.float32)
    bias = rng.integers(-20000, 20000, o)
    data, regs = R.compile_layer(w, config, depthwise, ifm_hw=hw, w_scales=w_scales, bias=bias,
                                 optimise="Size" if kind == "fcraw" else "Performance")
    bricks = R.weight_streams(data, regs)
    assert len(bricks) == 1
    b, scale, shift = regor_entries(w_scales, bias)
    layer = qcore.ethosu_pack_layer(w.astype(np.int16), scale, shift, b, config=config,
                                    ofm_block_depth=regs[R.OFM_BLK_DEPTH_M1][-1] + 1, depthwise=depthwise,
                                    weight_format="fwd" if fwd(regs) else "default")
    scale_at, scale_len = regs[R.SCALE_BASE][-1], regs[R.SCALE_LENGTH][-1]
    assert layer.ranges[0].scale_bytes == scale_len
    assert layer.stream[:scale_len] == data[scale_at:scale_at + scale_len]
    assert len(layer.ranges) == len(bricks[0])
    for r, theirs in zip(layer.ranges, bricks[0]):
        ours = layer.stream[r.offset + r.weight_offset:r.offset + r.weight_offset + r.weight_bytes]
        assert ours == theirs
    bases = [regs[R.WEIGHT_BASE][-1]] + ([regs[R.WEIGHT1_BASE][-1]] if len(layer.ranges) > 1 else [])
    assert [r.offset + r.weight_offset for r in layer.ranges] == [b - scale_at for b in bases]
    if kind == "fcraw":
        assert fwd(regs), "Regor did not choose the raw FWD form"


def test_pack_layer_u85_errors():
    w = np.zeros((4, 3, 3, 8), np.int16)
    with pytest.raises(qcore.InvalidArgumentError, match="outside 0..2147483647"):
        qcore.ethosu_pack_layer(w, 2**31, 10, config="ethos-u85-256")
    with pytest.raises(qcore.InvalidArgumentError, match="signed 32-bit range"):
        qcore.ethosu_pack_layer(w, 1, 10, bias=2**31, config="ethos-u85-256")
    with pytest.raises(qcore.InvalidArgumentError, match="depthwise layers do not have"):
        qcore.ethosu_pack_layer(np.zeros((4, 3, 3, 1), np.int16), 1, 10, config="ethos-u85-256", depthwise=True,
                                weight_format="fwd")
    with pytest.raises(qcore.InvalidArgumentError, match="'weight_format' is 'fast'"):
        qcore.ethosu_pack_layer(w, 1, 10, config="ethos-u85-256", weight_format="fast")
    with pytest.raises(qcore.InvalidArgumentError, match="'stride_x', 'stride_y' are 4, 1"):
        qcore.ethosu_pack_layer(w, 1, 10, config="ethos-u85-256", stride=(4, 1))


def test_pack_layer_smaller_format_picks_the_smaller_stream():
    rng = np.random.default_rng(11)
    w = rng.choice([-1, 0, 1, 2], (64, 1, 1, 128)).astype(np.int16)
    sizes = {f: qcore.ethosu_pack_layer(w, 1, 10, config="ethos-u85-256", weight_format=f).weight_bytes
             for f in ("default", "fwd", "smaller")}
    assert sizes["smaller"] == min(sizes["default"], sizes["fwd"])


@pytest.mark.parametrize("name,shape,zero_fraction,sigma", [
    ("zero_runs", (64, 3, 3, 64), 0.9, 60), ("some_zeros", (64, 3, 3, 64), 0.6, 5),
    ("palette_restarts", (256, 1, 1, 768), 0.3, 40), ("wide", (192, 3, 3, 96), 0.1, 100),
    ("all_zero", (32, 3, 3, 32), 1.0, 1), ("few_values", (128, 1, 1, 1100), 0.0, 3),
    ("one_value", (16, 3, 3, 16), 0.0, 0)])
@pytest.mark.parametrize("config", ["ethos-u85-256", "ethos-u85-512"])
def test_regor_encoder_matches_regor(name, shape, zero_fraction, sigma, config):
    """qcore.ethosu85_encode of the order gives Regor's default-format bytes on data that exercises its
    choices: zero runs, palettes restarting every 131072 weights (layers above that per core), all-zero
    and single-valued weights."""
    rng = np.random.default_rng(sum(shape) + int(100 * zero_fraction))
    w = np.clip(np.round(rng.normal(0, sigma, shape)), -127, 127).astype(np.int8)
    if name == "one_value":
        w[:] = 7
    w[rng.random(shape) < zero_fraction] = 0
    data, regs = R.compile_layer(w, config, ifm_hw=(1, 1) if shape[1] == 1 else (9, 10))
    bricks = R.weight_streams(data, regs)
    if len(bricks) != 1:
        pytest.skip("Regor split the layer into %d operations" % len(bricks))
    assert not fwd(regs)
    for core, stream in enumerate(bricks[0]):
        ours = order(w, config, regs, core=core)
        assert qcore.ethosu85_encode(ours) == stream
        assert (qcore.ethosu_decode(stream) == ours).all()


def random_arrays(count, seed):
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.integers(1, 300000 if i % 10 == 0 else 5000))
        kind = i % 6
        if kind == 0:
            w = rng.integers(-255, 256, n)
        elif kind == 1:
            w = np.round(rng.normal(0, rng.uniform(0.5, 40), n))
        elif kind == 2:    # sparse, with long zero runs
            w = rng.integers(-20, 21, n) * (rng.random(n) < rng.uniform(0.001, 0.3))
        elif kind == 3:
            w = np.zeros(n)
        elif kind == 4:
            w = np.full(n, int(rng.integers(-255, 256)))
        else:              # 2- and 4-bit values
            w = rng.integers(-2, 2, n) if i % 2 else rng.integers(-8, 8, n)
        yield np.clip(w, -255, 255).astype(np.int16)


def test_regor_encoder_round_trips():
    """qcore's decoder reads qcore.ethosu85_encode's streams (Regor's choices, checked byte for byte against
    Regor above) back for random arrays: lengths to 300000 (palettes restarting every 131072), zero runs
    longer than 32767, uniform, Gaussian, sparse, all-zero, single-valued, 2- and
    4-bit-valued weights."""
    for w in random_arrays(300, 77):
        assert (qcore.ethosu_decode(qcore.ethosu85_encode(w)) == w).all(), (w.size, w[:8])
    w = np.zeros(100000, np.int16)
    w[[0, 50000, 99999]] = [3, -4, 5]
    assert (qcore.ethosu_decode(qcore.ethosu85_encode(w)) == w).all()


@pytest.mark.parametrize("seed", range(2))
def test_regor_encoder_long_zero_runs_match_regor(seed):
    """A fully connected layer of almost only zeros: one core stream with zero runs longer than 32767."""
    rng = np.random.default_rng(seed)
    w = np.zeros((256, 1, 1, 256), np.int8)
    w.reshape(-1)[rng.choice(w.size, 3 + seed, replace=False)] = rng.integers(1, 9, 3 + seed)
    data, regs = R.compile_layer(w, "ethos-u85-256", ifm_hw=(1, 1))
    (stream,), = R.weight_streams(data, regs)
    ours = order(w, "ethos-u85-256", regs)
    assert qcore.ethosu85_encode(ours) == stream
    assert (qcore.ethosu_decode(stream) == ours).all()


@pytest.mark.parametrize("zero_point", [0, 60, 200])
def test_fwd_raw_uint8_matches_regor(zero_point):
    """uint8 weights (stored 0..255, one zero point): Regor's raw FWD stream, zero_adjust included."""
    rng = np.random.default_rng(zero_point)
    q = rng.integers(0, 256, (128, 1, 1, 192)).astype(np.uint8)
    data, regs = R.compile_layer(q, "ethos-u85-256", ifm_hw=(1, 1), optimise="Size", uint8_zero_point=zero_point)
    assert fwd(regs)
    (stream,), = R.weight_streams(data, regs)
    ours = order(q.astype(np.int16) - zero_point, "ethos-u85-256", regs, core=qcore.ethosu.ALL_CORES)
    assert qcore.ethosu85_fwd_encode(ours) == stream
    assert (qcore.ethosu85_fwd_decode(stream, ours.size) == ours).all()
