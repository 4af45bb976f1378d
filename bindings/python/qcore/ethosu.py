"""Ethos-U weight streams, weight order and bias entries, byte for byte as Arm's Vela packs them. See
include/qcore/qc_ethosu.h for the format and the exact rules.

    w = np.array([0, 2, 3, 0, -1, -2], np.int16)        # zero point already subtracted, -255..255
    stream = qcore.ethosu_encode(w)                      # bytes, a multiple of 16, == mlw_codec.encode
    assert (qcore.ethosu_decode(stream) == w).all()
    stream, n = qcore.ethosu_reorder_encode(ohwi, ofm_block_depth=16, part_kernel=True)
    entry = qcore.ethosu_pack_bias(bias, *qcore.ethosu_quantise_scale(s))
"""
from dataclasses import dataclass

import numpy as np

from ._errors import InvalidArgumentError, check
from ._ffi import ffi, lib, onnx_lib
from ._tensor import as_array

CONFIGS = {
    "ethos-u55-32": lib.QC_ETHOSU_U55_32,
    "ethos-u55-64": lib.QC_ETHOSU_U55_64,
    "ethos-u55-128": lib.QC_ETHOSU_U55_128,
    "ethos-u55-256": lib.QC_ETHOSU_U55_256,
    "ethos-u65-256": lib.QC_ETHOSU_U65_256,
    "ethos-u65-512": lib.QC_ETHOSU_U65_512,
    "ethos-u85-128": lib.QC_ETHOSU_U85_128,
    "ethos-u85-256": lib.QC_ETHOSU_U85_256,
    "ethos-u85-512": lib.QC_ETHOSU_U85_512,
    "ethos-u85-1024": lib.QC_ETHOSU_U85_1024,
    "ethos-u85-2048": lib.QC_ETHOSU_U85_2048,
}


def _config(name, function):
    if name not in CONFIGS:
        raise InvalidArgumentError("%s: argument 'config' is %r; expected one of %s"
                                   % (function, name, ", ".join(CONFIGS)))
    return CONFIGS[name]


@dataclass(frozen=True)
class EthosuConfig:
    """An NPU configuration's figures (Vela's architecture_features)."""
    name: str
    macs_per_cycle: int
    cores: int
    ofm_ublock_depth: int
    ifm_ublock_depth: int


def ethosu_config(name):
    """The figures of a configuration named as Vela's --accelerator-config ("ethos-u55-128", ...)."""
    info = ffi.new("qc_ethosu_config_info *")
    check(lib.qc_ethosu_config_get(info, _config(name, "qcore.ethosu_config")), "qcore.ethosu_config")
    return EthosuConfig(name, info.macs_per_cycle, info.cores, info.ofm_ublock_depth, info.ifm_ublock_depth)


def _take_bytes(pointer, size):
    try:
        return bytes(ffi.buffer(pointer[0], size[0]))
    finally:
        lib.qc_ethosu_free(pointer[0])


def _take_int16(pointer, count):
    try:
        return np.frombuffer(ffi.buffer(pointer[0], count[0] * 2), np.int16).copy() if count[0] else \
            np.zeros(0, np.int16)
    finally:
        lib.qc_ethosu_free(pointer[0])


def _weights(weights, function, name="weights"):
    w = as_array(weights, name, [np.int16], function)
    if name == "ohwi" and w.ndim != 4:
        raise InvalidArgumentError("%s: argument 'ohwi' must have 4 axes (OHWI), got shape %s" % (function, w.shape))
    return w


def ethosu_encode(weights):
    """The weight stream (bytes) of an int16 array of weights in -255..255, flattened in C order;
    identical to Vela's mlw_codec.encode(list(weights))."""
    function = "qcore.ethosu_encode"
    w = _weights(weights, function)
    out, size = ffi.new("uint8_t **"), ffi.new("size_t *")
    check(lib.qc_ethosu_encode(out, size, ffi.from_buffer("int16_t[]", w), w.size), function)
    return _take_bytes(out, size)


def ethosu_decode(stream):
    """The weights (int16 array) of a weight stream (bytes-like)."""
    function = "qcore.ethosu_decode"
    data = bytes(stream)
    out, count = ffi.new("int16_t **"), ffi.new("size_t *")
    check(lib.qc_ethosu_decode(out, count, ffi.from_buffer("uint8_t[]", data), len(data)), function)
    return _take_int16(out, count)


def _reorder_options(function, ofm_block_depth, depthwise, part_kernel, ifm_bits, decomp_h, decomp_w,
                     ifm_ublock_depth, ofm_ublock_depth):
    o = ffi.new("qc_ethosu_reorder_options *")
    check(lib.qc_ethosu_reorder_options_init(o, lib.QC_ETHOSU_REORDER_OPTIONS_VERSION), function)
    o.ifm_ublock_depth, o.ofm_ublock_depth = ifm_ublock_depth, ofm_ublock_depth
    o.ofm_block_depth, o.depthwise, o.part_kernel = ofm_block_depth, int(depthwise), int(part_kernel)
    o.ifm_bits, o.decomp_h, o.decomp_w = ifm_bits, decomp_h, decomp_w
    return o


def _reorder_call(function, ohwi, options, c_function, *outs):
    w = _weights(ohwi, function, "ohwi")
    o = _reorder_options(function, *options)
    check(c_function(*outs, ffi.from_buffer("int16_t[]", w), list(w.shape), o), function)


def ethosu_reorder(ohwi, ofm_block_depth=16, depthwise=False, part_kernel=False, ifm_bits=8, decomp_h=8,
                   decomp_w=8, ifm_ublock_depth=8, ofm_ublock_depth=8):
    """The int16 OHWI weights in the U55/U65 order, zero-padded as the NPU reads them (1-D int16)."""
    out, count = ffi.new("int16_t **"), ffi.new("size_t *")
    _reorder_call("qcore.ethosu_reorder", ohwi, (ofm_block_depth, depthwise, part_kernel, ifm_bits, decomp_h,
                  decomp_w, ifm_ublock_depth, ofm_ublock_depth), lib.qc_ethosu_reorder, out, count)
    return _take_int16(out, count)


def ethosu_reorder_encode(ohwi, ofm_block_depth=16, depthwise=False, part_kernel=False, ifm_bits=8, decomp_h=8,
                          decomp_w=8, ifm_ublock_depth=8, ofm_ublock_depth=8):
    """(stream, reordered count): Vela's mlw_codec.reorder_encode on int16 OHWI weights."""
    out, size, count = ffi.new("uint8_t **"), ffi.new("size_t *"), ffi.new("size_t *")
    _reorder_call("qcore.ethosu_reorder_encode", ohwi, (ofm_block_depth, depthwise, part_kernel, ifm_bits,
                  decomp_h, decomp_w, ifm_ublock_depth, ofm_ublock_depth), lib.qc_ethosu_reorder_encode, out,
                  size, count)
    return _take_bytes(out, size), count[0]


def ethosu_part_kernel_first(ifm_depth, kernel_h, kernel_w, ifm_bits=8):
    """True when Vela traverses a convolution part-kernel-first, False for depth-first."""
    out = ffi.new("int *")
    check(lib.qc_ethosu_part_kernel_first(out, ifm_depth, kernel_h, kernel_w, ifm_bits),
          "qcore.ethosu_part_kernel_first")
    return bool(out[0])


def _scale(c_function, s, function):
    scale, shift = ffi.new("int64_t *"), ffi.new("int32_t *")
    check(c_function(scale, shift, float(s)), function)
    return int(scale[0]), int(shift[0])


def ethosu_quantise_scale(s):
    """(scale, shift) of a float scale, as Vela's quantise_scale."""
    return _scale(lib.qc_ethosu_quantise_scale, s, "qcore.ethosu_quantise_scale")


def ethosu_reduced_quantise_scale(s):
    """(scale, shift) for 16-bit IFM with a 64-bit bias, as Vela's reduced_quantise_scale."""
    return _scale(lib.qc_ethosu_reduced_quantise_scale, s, "qcore.ethosu_reduced_quantise_scale")


def ethosu_pack_bias(bias, scale, shift):
    """The 10-byte U55/U65 entry of one output channel (Vela's encode_bias)."""
    out = ffi.new("uint8_t[10]")
    check(lib.qc_ethosu_pack_bias(out, int(bias), int(scale), int(shift)), "qcore.ethosu_pack_bias")
    return bytes(ffi.buffer(out, 10))


def ethosu85_pack_bias(bias, scale, shift, accumulator_bits=32):
    """The 10-byte U85 entry of one output channel for a 32- or 48-bit accumulator."""
    out = ffi.new("uint8_t[10]")
    check(lib.qc_ethosu85_pack_bias(out, int(bias), int(scale), int(shift), accumulator_bits),
          "qcore.ethosu85_pack_bias")
    return bytes(ffi.buffer(out, 10))


@dataclass(frozen=True)
class EthosuRange:
    """One core's sub-stream of one brick: [bias entries][zeros to 16][weights], offsets in bytes."""
    depth_offset: int
    core: int
    offset: int
    scale_bytes: int
    weight_offset: int
    weight_bytes: int


@dataclass(frozen=True)
class EthosuLayer:
    """A packed layer: the stream as Vela's weight_compressor writes it, and its range table."""
    stream: bytes
    ranges: list

    @property
    def weight_bytes(self):
        return sum(r.weight_bytes for r in self.ranges)

    @property
    def scale_bytes(self):
        return sum(r.scale_bytes for r in self.ranges)


TRAVERSALS = {"auto": 0, "depth_first": 1, "part_kernel_first": 2}


def _channel_array(value, name, dtype, count, function):
    a = np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype), (count,)))
    return as_array(a, name, [dtype], function)


WEIGHT_FORMATS = {"default": 0, "fwd": 1, "smaller": 2}


def _format(name, function):
    if name not in WEIGHT_FORMATS:
        raise InvalidArgumentError("%s: argument 'weight_format' is %r; expected one of %s"
                                   % (function, name, ", ".join(WEIGHT_FORMATS)))
    return WEIGHT_FORMATS[name]


def ethosu_pack_layer(ohwi, scale, shift, bias=None, config="ethos-u55-128", ofm_block_depth=16, depthwise=False,
                      traversal="auto", ifm_bits=8, dilation=(1, 1), ofm_depth_step=0, weight_format="default",
                      ofm_ublock_depth=0, stride=(1, 1)):
    """Packs one layer's int16 OHWI weights (zero point subtracted) with per-channel bias (int64, None for
    zeros), scale (0..2^32 - 1; U85: 0..2^31 - 1) and shift (0..63); scalars are repeated over the
    channels. `dilation` and `stride` are (x, y); `traversal` "auto" (Vela's choice), "depth_first" or
    "part_kernel_first". U85 configurations also read `weight_format` ("default": mlw per core, "fwd",
    "smaller": FWD when smaller), `ofm_ublock_depth` (0: the configuration's) and `stride`."""
    function = "qcore.ethosu_pack_layer"
    w = _weights(ohwi, function, "ohwi")
    if traversal not in TRAVERSALS:
        raise InvalidArgumentError("%s: argument 'traversal' is %r; expected one of %s"
                                   % (function, traversal, ", ".join(TRAVERSALS)))
    o = ffi.new("qc_ethosu_layer_options *")
    check(lib.qc_ethosu_layer_options_init(o, lib.QC_ETHOSU_LAYER_OPTIONS_VERSION), function)
    o.config, o.ofm_block_depth, o.depthwise = _config(config, function), ofm_block_depth, int(depthwise)
    o.traversal, o.ifm_bits, o.ofm_depth_step = TRAVERSALS[traversal], ifm_bits, ofm_depth_step
    o.dilation_x, o.dilation_y = dilation
    o.weight_format, o.ofm_ublock_depth = _format(weight_format, function), ofm_ublock_depth
    o.stride_x, o.stride_y = stride
    channels = w.shape[0]
    sc = _channel_array(scale, "scale", np.int64, channels, function)
    sh = _channel_array(shift, "shift", np.int32, channels, function)
    b = None if bias is None else _channel_array(bias, "bias", np.int64, channels, function)
    out = ffi.new("qc_ethosu_layer **")
    check(lib.qc_ethosu_pack_layer(out, ffi.from_buffer("int16_t[]", w), list(w.shape),
                                   ffi.NULL if b is None else ffi.from_buffer("int64_t[]", b),
                                   ffi.from_buffer("int64_t[]", sc), ffi.from_buffer("int32_t[]", sh), o), function)
    return _layer_from(ffi.gc(out[0], lib.qc_ethosu_layer_free), function)


def _layer_from(layer, function):
    """An EthosuLayer copied out of a qc_ethosu_layer handle."""
    data, size = ffi.new("uint8_t **"), ffi.new("size_t *")
    check(lib.qc_ethosu_layer_stream(ffi.cast("const uint8_t **", data), size, layer), function)
    ranges, count = ffi.new("qc_ethosu_range **"), ffi.new("size_t *")
    check(lib.qc_ethosu_layer_ranges(ffi.cast("const qc_ethosu_range **", ranges), count, layer), function)
    table = [EthosuRange(r.depth_offset, r.core, r.offset, r.scale_bytes, r.weight_offset, r.weight_bytes)
             for r in (ranges[0][i] for i in range(count[0]))]
    return EthosuLayer(bytes(ffi.buffer(data[0], size[0])), table)


@dataclass(frozen=True)
class EthosuModelLayer:
    """One packed layer of a model (see qc_model_pack_ethosu): sizes in bytes, `weights` the original
    size at one byte per weight, and the layer's stream and ranges."""
    node: str
    op_type: str
    weight: str
    shape: tuple
    depthwise: bool
    weights: int
    weight_bytes: int
    scale_bytes: int
    stream_bytes: int
    layer: EthosuLayer


def ethosu_pack_model(model, config="ethos-u55-128", ofm_block_depth=16, ifm_bits=8, ofm_depth_step=0,
                      weight_format="default"):
    """Packs every Conv/Gemm/MatMul of a quantized (QDQ) qcore.Model whose weight is an int8/uint8
    initializer read through DequantizeLinear; returns the layers in graph order. `weight_format` as in
    ethosu_pack_layer (U85 only)."""
    function = "qcore.ethosu_pack_model"
    o = ffi.new("qc_ethosu_layer_options *")
    check(lib.qc_ethosu_layer_options_init(o, lib.QC_ETHOSU_LAYER_OPTIONS_VERSION), function)
    o.config, o.ofm_block_depth, o.ifm_bits = _config(config, function), ofm_block_depth, ifm_bits
    o.ofm_depth_step, o.weight_format = ofm_depth_step, _format(weight_format, function)
    out = ffi.new("qc_ethosu_model **")
    check(onnx_lib.qc_model_pack_ethosu(out, model._m, o), function)
    packed = ffi.gc(out[0], onnx_lib.qc_ethosu_model_free)
    layers = []
    info, handle = ffi.new("qc_ethosu_model_layer *"), ffi.new("qc_ethosu_layer **")
    for i in range(onnx_lib.qc_ethosu_model_count(packed)):
        check(onnx_lib.qc_ethosu_model_layer_info(packed, i, info, ffi.cast("const qc_ethosu_layer **", handle)),
              function)
        layers.append(EthosuModelLayer(
            ffi.string(info.node).decode(), ffi.string(info.op_type).decode(), ffi.string(info.weight).decode(),
            tuple(info.shape), bool(info.depthwise), info.weights, info.weight_bytes, info.scale_bytes,
            info.stream_bytes, _layer_from(handle[0], function)))
    return layers


# ---------------------------------------------------------------------------------------------
# Ethos-U85 (Vela's Regor backend): weight order and the fast weight format (FWD).

U85_TRAVERSALS = {"depth_first": 0, "part_kernel": 1, "depthwise": 2}
ALL_CORES = -1


def ethosu85_reorder(ohwi, macs=256, cores=1, core=0, traversal="depth_first", ifm_bits=8, ofm_ublock_depth=8,
                     ofm_block_depth=16, ifm_block_depth=64, stride=(1, 1), dilation=(1, 1), sparse=False):
    """The int16 OHWI weights in the U85 order of one core's stream (`core`), or of all cores interleaved
    as FWD stores them (core=qcore.ethosu.ALL_CORES); `stride` and `dilation` are (x, y); `sparse` the
    2:4 sparse layout."""
    function = "qcore.ethosu85_reorder"
    w = _weights(ohwi, function, "ohwi")
    if traversal not in U85_TRAVERSALS:
        raise InvalidArgumentError("%s: argument 'traversal' is %r; expected one of %s"
                                   % (function, traversal, ", ".join(U85_TRAVERSALS)))
    o = ffi.new("qc_ethosu85_reorder_options *")
    check(lib.qc_ethosu85_reorder_options_init(o, lib.QC_ETHOSU85_REORDER_OPTIONS_VERSION), function)
    o.macs, o.cores, o.core, o.traversal, o.ifm_bits = macs, cores, core, U85_TRAVERSALS[traversal], ifm_bits
    o.ofm_ublock_depth, o.ofm_block_depth, o.ifm_block_depth = ofm_ublock_depth, ofm_block_depth, ifm_block_depth
    (o.stride_x, o.stride_y), (o.dilation_x, o.dilation_y) = stride, dilation
    o.sparse = int(sparse)
    out, count = ffi.new("int16_t **"), ffi.new("size_t *")
    check(lib.qc_ethosu85_reorder(out, count, ffi.from_buffer("int16_t[]", w), list(w.shape), o), function)
    return _take_int16(out, count)


def ethosu85_part_kernel_first(ifm_depth, kernel_h, kernel_w, sparse=False):
    """True when Regor traverses a U85 convolution part-kernel-first (ChooseKernelFirst)."""
    out = ffi.new("int *")
    check(lib.qc_ethosu85_part_kernel_first(out, ifm_depth, kernel_h, kernel_w, int(sparse)),
          "qcore.ethosu85_part_kernel_first")
    return bool(out[0])


def ethosu85_encode(weights):
    """The default-format (mlw) stream of int16 weights as Vela's Regor backend encodes U85 weights."""
    function = "qcore.ethosu85_encode"
    w = _weights(weights, function)
    out, size = ffi.new("uint8_t **"), ffi.new("size_t *")
    check(lib.qc_ethosu85_encode(out, size, ffi.from_buffer("int16_t[]", w), w.size), function)
    return _take_bytes(out, size)


def ethosu85_fwd_encode(weights):
    """The U85 fast-weight-format stream (bytes, a multiple of 32) of int16 weights, flattened in C order."""
    function = "qcore.ethosu85_fwd_encode"
    w = _weights(weights, function)
    out, size = ffi.new("uint8_t **"), ffi.new("size_t *")
    check(lib.qc_ethosu85_fwd_encode(out, size, ffi.from_buffer("int16_t[]", w), w.size), function)
    return _take_bytes(out, size)


def ethosu85_fwd_decode(stream, count):
    """The first `count` weights (int16 array) of an FWD stream (bytes-like)."""
    function = "qcore.ethosu85_fwd_decode"
    data = bytes(stream)
    out = ffi.new("int16_t **")
    check(lib.qc_ethosu85_fwd_decode(out, count, ffi.from_buffer("uint8_t[]", data), len(data)), function)
    n = ffi.new("size_t *", count)
    return _take_int16(out, n)
