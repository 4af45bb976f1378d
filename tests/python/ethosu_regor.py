"""The Regor oracle of the Ethos-U85 tests: a one-operator int8 TFLite model (Conv2D or DepthwiseConv2D)
written with flatbuffers and the TFLite schema modules Vela ships, compiled by the `vela` CLI (Vela's
Regor backend) to its raw output, and the weight streams read back through the command stream's
weight base/length registers."""
import os
import struct
import subprocess
import sys
import tempfile

import flatbuffers
import numpy as np
from ethosu.vela.tflite import (Buffer, BuiltinOperator, BuiltinOptions, Conv2DOptions, DepthwiseConv2DOptions,
                                Model, Operator, OperatorCode, Padding, QuantizationParameters, SubGraph, Tensor,
                                TensorType)

# U85 register command opcodes (cmd1: 0x4000 | n, a 32-bit payload follows).
WEIGHT_BASE, WEIGHT_LENGTH = 0x4020, 0x4021
WEIGHT1_BASE, WEIGHT1_LENGTH = 0x4090, 0x4091
SCALE_BASE, SCALE_LENGTH = 0x4022, 0x4023
OFM_BLK_DEPTH_M1, WEIGHT_FORMAT = 0x117, 0x12E
FORMAT_FAST, FORMAT_SPARSE = 1, 16   # WEIGHT_FORMAT bits as Regor 5.2.0 writes them (observed)


def _vector(b, values, prepend, width):
    b.StartVector(width, len(values), width)
    for v in reversed(values):
        prepend(v)
    return b.EndVector()


def _offsets(b, offs):
    b.StartVector(4, len(offs), 4)
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _quant(b, scales, zero_points, dim=0):
    s = _vector(b, [float(x) for x in scales], b.PrependFloat32, 4)
    z = _vector(b, [int(x) for x in zero_points], b.PrependInt64, 8)
    QuantizationParameters.QuantizationParametersStart(b)
    QuantizationParameters.QuantizationParametersAddScale(b, s)
    QuantizationParameters.QuantizationParametersAddZeroPoint(b, z)
    QuantizationParameters.QuantizationParametersAddQuantizedDimension(b, dim)
    return QuantizationParameters.QuantizationParametersEnd(b)


def _options(b, depthwise, stride, dilation):
    mod = DepthwiseConv2DOptions if depthwise else Conv2DOptions
    name = "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions"
    getattr(mod, name + "Start")(b)
    getattr(mod, name + "AddPadding")(b, Padding.Padding.SAME)
    getattr(mod, name + "AddStrideW")(b, stride[0])
    getattr(mod, name + "AddStrideH")(b, stride[1])
    getattr(mod, name + "AddDilationWFactor")(b, dilation[0])
    getattr(mod, name + "AddDilationHFactor")(b, dilation[1])
    if depthwise:
        DepthwiseConv2DOptions.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
    return getattr(mod, name + "End")(b)


def conv_model(ohwi, depthwise=False, ifm_hw=(8, 8), stride=(1, 1), dilation=(1, 1), w_scales=None, bias=None,
               uint8_zero_point=None):
    """A TFLite flatbuffer of one int8 Conv2D (weights `ohwi`, [O, H, W, I]) or DepthwiseConv2D (weights
    [O, H, W, 1], channel multiplier 1), SAME padding; with `uint8_zero_point`, a uint8 model instead
    (`ohwi` the stored uint8 weights, one weight scale and that zero point, activations around 128)."""
    u8 = uint8_zero_point is not None
    O, KH, KW, I = ohwi.shape
    channels = O if depthwise else I
    weights = np.transpose(ohwi, (3, 1, 2, 0)) if depthwise else ohwi   # TFLite depthwise is [1, H, W, C]
    b = flatbuffers.Builder(1024)
    bias = np.zeros(O, np.int32) if bias is None else np.asarray(bias, np.int32)
    datas = [b"", b"", np.ascontiguousarray(weights, np.uint8 if u8 else np.int8).tobytes(), bias.tobytes(), b""]
    buffers = []
    for d in datas:
        dv = b.CreateByteVector(d) if d else None
        Buffer.BufferStart(b)
        if d:
            Buffer.BufferAddData(b, dv)
        buffers.append(Buffer.BufferEnd(b))
    oh, ow = (ifm_hw[0] + stride[1] - 1) // stride[1], (ifm_hw[1] + stride[0] - 1) // stride[0]
    w_scales = [0.01] * O if w_scales is None else list(w_scales)
    act, act_zero = (TensorType.TensorType.UINT8, 128) if u8 else (TensorType.TensorType.INT8, 0)
    w_quant = ([w_scales[0]], [uint8_zero_point], 0) if u8 else (w_scales, [0] * O, 3 if depthwise else 0)
    b_quant = ([IFM_SCALE * w_scales[0]], [0], 0) if u8 else ([IFM_SCALE * s for s in w_scales], [0] * O, 0)
    specs = [("ifm", [1, ifm_hw[0], ifm_hw[1], channels], act, 1, ([IFM_SCALE], [act_zero], 0)),
             ("w", list(weights.shape), act, 2, w_quant),
             ("b", [O], TensorType.TensorType.INT32, 3, b_quant),
             ("ofm", [1, oh, ow, O], act, 4, ([OFM_SCALE], [act_zero], 0))]
    tensors = []
    for name, shape, ty, buf, q in specs:
        n = b.CreateString(name)
        sh = _vector(b, shape, b.PrependInt32, 4)
        qo = _quant(b, *q)
        Tensor.TensorStart(b)
        Tensor.TensorAddShape(b, sh)
        Tensor.TensorAddType(b, ty)
        Tensor.TensorAddBuffer(b, buf)
        Tensor.TensorAddName(b, n)
        Tensor.TensorAddQuantization(b, qo)
        tensors.append(Tensor.TensorEnd(b))
    opts = _options(b, depthwise, stride, dilation)
    ins = _vector(b, [0, 1, 2], b.PrependInt32, 4)
    outs = _vector(b, [3], b.PrependInt32, 4)
    Operator.OperatorStart(b)
    Operator.OperatorAddOpcodeIndex(b, 0)
    Operator.OperatorAddInputs(b, ins)
    Operator.OperatorAddOutputs(b, outs)
    Operator.OperatorAddBuiltinOptionsType(b, BuiltinOptions.BuiltinOptions.DepthwiseConv2DOptions if depthwise
                                           else BuiltinOptions.BuiltinOptions.Conv2DOptions)
    Operator.OperatorAddBuiltinOptions(b, opts)
    op = Operator.OperatorEnd(b)
    tv = _offsets(b, tensors)
    si = _vector(b, [0], b.PrependInt32, 4)
    so = _vector(b, [3], b.PrependInt32, 4)
    ov = _offsets(b, [op])
    SubGraph.SubGraphStart(b)
    SubGraph.SubGraphAddTensors(b, tv)
    SubGraph.SubGraphAddInputs(b, si)
    SubGraph.SubGraphAddOutputs(b, so)
    SubGraph.SubGraphAddOperators(b, ov)
    sg = SubGraph.SubGraphEnd(b)
    code = BuiltinOperator.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else BuiltinOperator.BuiltinOperator.CONV_2D
    OperatorCode.OperatorCodeStart(b)
    OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, code)
    OperatorCode.OperatorCodeAddBuiltinCode(b, code)
    OperatorCode.OperatorCodeAddVersion(b, 1)
    oc = OperatorCode.OperatorCodeEnd(b)
    ocv, sgv, bv = _offsets(b, [oc]), _offsets(b, [sg]), _offsets(b, buffers)
    Model.ModelStart(b)
    Model.ModelAddVersion(b, 3)
    Model.ModelAddOperatorCodes(b, ocv)
    Model.ModelAddSubgraphs(b, sgv)
    Model.ModelAddBuffers(b, bv)
    b.Finish(Model.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def registers(cmd):
    """{opcode: [values in command order]} of a U85 command stream (cmd0 values are the 16-bit param)."""
    regs, i = {}, 0
    while i + 4 <= len(cmd):
        word = struct.unpack_from("<I", cmd, i)[0]
        op, param = word & 0xFFFF, word >> 16
        if op & 0x4000:
            regs.setdefault(op, []).append(struct.unpack_from("<I", cmd, i + 4)[0])
            i += 8
        else:
            regs.setdefault(op, []).append(param)
            i += 4
    return regs


IFM_SCALE, OFM_SCALE = 0.05, 0.1


def compile_layer(ohwi, config="ethos-u85-256", depthwise=False, ifm_hw=(8, 8), stride=(1, 1), dilation=(1, 1),
                  optimise="Performance", w_scales=None, bias=None, uint8_zero_point=None):
    """(read-only data, registers) of the model compiled by the vela CLI for `config`."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.tflite")
        with open(path, "wb") as f:
            f.write(conv_model(ohwi, depthwise, ifm_hw, stride, dilation, w_scales, bias, uint8_zero_point))
        subprocess.run([sys.executable, "-m", "ethosu.vela", path, "--accelerator-config", config, "--output-dir", d, "--output-format", "raw",
                        "--optimise", optimise], check=True, capture_output=True)
        z = np.load(os.path.join(d, "m_vela.npz"), allow_pickle=True)
        # The raw command stream starts with an 8-byte "COP1" header.
        return bytes(z["weight_data"].item()), registers(bytes(z["cmd_data"].item())[8:])


def _slice(data, base, length):
    """data[base:base + length]; the raw output omits trailing zero bytes of the read-only area (observed
    with Vela 5.2.0), which are restored."""
    return data[base:base + length].ljust(length, b"\0")


def weight_streams(data, regs):
    """The weight streams of each brick (OFM block) in command order: a list, per brick, of one stream per
    core (one for FWD). Registers are written again only when they change, so a brick is a new core-0
    base; its core-1 stream is the core-1 base written with it."""
    bricks = []
    for i, base in enumerate(regs[WEIGHT_BASE]):
        length = regs[WEIGHT_LENGTH][min(i, len(regs[WEIGHT_LENGTH]) - 1)]
        streams = [_slice(data, base, length)]
        if WEIGHT1_BASE in regs and regs[WEIGHT1_LENGTH][0]:
            b1 = regs[WEIGHT1_BASE][min(i, len(regs[WEIGHT1_BASE]) - 1)]
            streams.append(_slice(data, b1, regs[WEIGHT1_LENGTH][min(i, len(regs[WEIGHT1_LENGTH]) - 1)]))
        if streams not in bricks:
            bricks.append(streams)
    return bricks


def first(regs, op, default=None):
    return regs[op][0] if op in regs else default
