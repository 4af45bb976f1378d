"""The whole-model pipeline (qc_pipeline_* in include/qcore/qc_model.h): every linear layer of an ONNX
model quantized by one recipe from calibration batches, giving a QDQ model onnxruntime runs and a
report per layer.

    model = qcore.Model("model.onnx")
    pipe = qcore.Pipeline(model)
    for batch in calibration:                        # {graph input name: numpy array}
        pipe.add_batch(batch)
    recipe = qcore.Recipe(method="optq", weights=qcore.QuantOptions(bits=4, granularity="channel", axis=0),
                          activation_bits=8, gpxq=qcore.GpxqOptions(accumulator_bits=16))
    quantized, report = pipe.run(recipe)
    quantized.save("model.q.onnx")
"""
from dataclasses import dataclass, field

from ._errors import check
from ._ffi import ffi, lib, onnx_lib
from ._tensor import named_views
from .core import default_context
from .ethosu import CONFIGS
from .gpxq import AxeStats, GpxqOptions
from .model import Model
from .quant import _SCALE_METHOD, QuantOptions

_METHODS = {"rtn": 1, "optq": 2, "gpfq": 3}
_ROTATIONS = {"none": 0, "haar": 1, "hadamard": 2}
_HEADS = {0: None, 1: "value", 2: "output"}  # qc_layer_report.heads_rotated


@dataclass
class Recipe:
    """method: 'rtn', 'optq' or 'gpfq'; weights: the grid on W [out, in] (axis 0 per output channel, axis
    1 for groups along the inputs); gpxq: damping, act-order and AXE (its input_bits and input_signed are
    set per layer from the activation quantization); activation_bits: N of every layer input (0: float);
    sequential: statistics from the model as quantized so far; keep_float: weight names kept in float
    (partial quantization); report_bits: P the report simulates (0: AXE's P, or 32); report_rows:
    calibration rows per layer in the report; layer_bits: {weight name: bits} overriding weights.bits per
    layer (a mixed-precision configuration; 0 keeps that weight float while its input is quantized);
    activation_scale: how each layer input's per-tensor scale is chosen from the float model's values over
    the calibration batches, 'minmax' (max |x|), 'percentile' (activation_percentile of |x|) or 'mse' (the
    clip ratio in activation_mse_min_ratio..1, activation_mse_steps candidates, with the least squared
    error), the last two on a histogram of QC_PIPELINE_HISTOGRAM_BINS bins (see qc_model.h);
    rotation: 'none', 'haar' or 'hadamard', rotations fused into the model before calibration (norms folded,
    every MatMul/Gemm layer's input rotated; drawn from rotation_seed; see "Rotations in a recipe" in
    qc_model.h); rotate_heads: also rotate every attention block's heads (V and O projections, found from the
    graph) with the same kind and seed (needs a rotation; "Per-head rotations in a recipe" in qc_model.h);
    unrotated: weight names whose layers' inputs the rotation leaves as they are (the other layers reading
    the same value are rotated by the same R; needs a rotation);
    ethosu: an Ethos-U configuration name ("ethos-u55-128", ... as qcore.ethosu_config takes)
    for which each quantized layer is packed and its stream bytes reported, or None;
    lq_layers: {weight name: K in 1..4}, weights made LQ levels (one learned K-bit basis per output channel,
    weight-only; "LQ weights in a recipe" in qc_model.h), written as UINT4 codes + GatherElements; a weight
    is named in at most one of keep_float, layer_bits and lq_layers."""

    method: str = "optq"
    weights: QuantOptions = field(default_factory=lambda: QuantOptions(bits=8, granularity="channel", axis=0))
    gpxq: GpxqOptions = field(default_factory=GpxqOptions)
    activation_bits: int = 8
    sequential: bool = True
    keep_float: tuple = ()
    report_bits: int = 0
    report_rows: int = 1024
    layer_bits: dict = field(default_factory=dict)
    activation_scale: str = "minmax"
    activation_percentile: float = 99.99
    activation_mse_steps: int = 200
    activation_mse_min_ratio: float = 0.01
    rotation: str = "none"
    rotation_seed: int = 0
    ethosu: str = None
    rotate_heads: bool = False
    lq_layers: dict = field(default_factory=dict)
    unrotated: tuple = ()

    def to_c(self):
        """(qc_recipe *, what must stay alive while the C recipe is used)."""
        if self.method not in _METHODS:
            raise ValueError("qcore.Recipe: method must be one of %s, got %r" % (", ".join(_METHODS), self.method))
        r = ffi.new("qc_recipe *")
        check(onnx_lib.qc_recipe_init(r, onnx_lib.QC_RECIPE_VERSION))
        r.method = _METHODS[self.method]
        r.weights = self.weights.to_c("qcore.Recipe")[0]
        r.gpxq = self.gpxq.to_c()[0]
        r.activation_bits, r.sequential = self.activation_bits, int(bool(self.sequential))
        names = [ffi.new("char[]", n.encode()) for n in self.keep_float]
        keep = ffi.new("char *[]", names) if names else ffi.NULL
        r.num_keep_float, r.keep_float = len(self.keep_float), keep
        r.report_bits, r.report_rows = self.report_bits, self.report_rows
        weights, formats = _formats(self.layer_bits)
        r.num_layer_formats, r.layer_formats = len(weights), formats
        if self.activation_scale not in _SCALE_METHOD:
            raise ValueError("qcore.Recipe: activation_scale must be one of %s, got %r"
                             % (", ".join(_SCALE_METHOD), self.activation_scale))
        r.activation_scale, r.activation_percentile = _SCALE_METHOD[self.activation_scale], self.activation_percentile
        r.activation_mse_steps, r.activation_mse_min_ratio = self.activation_mse_steps, self.activation_mse_min_ratio
        if self.rotation not in _ROTATIONS:
            raise ValueError("qcore.Recipe: rotation must be one of %s, got %r" % (", ".join(_ROTATIONS), self.rotation))
        r.rotation, r.rotation_seed = _ROTATIONS[self.rotation], self.rotation_seed
        r.rotate_heads = int(bool(self.rotate_heads))
        left = [ffi.new("char[]", n.encode()) for n in self.unrotated]
        unrotated = ffi.new("char *[]", left) if left else ffi.NULL
        r.num_unrotated, r.unrotated = len(left), unrotated
        if self.ethosu is not None and self.ethosu not in CONFIGS:
            raise ValueError("qcore.Recipe: ethosu must be None or one of %s, got %r" % (", ".join(CONFIGS), self.ethosu))
        r.ethosu_config = CONFIGS[self.ethosu] if self.ethosu is not None else 0
        lq_names, lq = _formats(self.lq_layers)
        r.num_lq_layers, r.lq_layers = len(lq_names), lq
        return r, (names, keep, weights, formats, lq_names, lq, left, unrotated)


def _formats(bits):
    """{weight name: bits} as (the names' C strings, a qc_layer_format array or NULL)."""
    names = [ffi.new("char[]", n.encode()) for n in bits]
    formats = ffi.new("qc_layer_format[]", len(names)) if names else ffi.NULL
    for k, (name, b) in enumerate(zip(names, bits.values())):
        formats[k].weight, formats[k].weight_bits = name, b
    return names, formats


@dataclass
class LayerReport:
    """What a run did to one layer (see qc_layer_report in qc_model.h); `axe` says how hard AXE worked."""

    weight: str
    quantized: bool
    weight_bits: int
    input_bits: int
    input_signed: bool
    input_scale: float
    weight_bytes: int
    output_error: float
    accumulator_bits: int
    report_bits: int
    dot_products: int
    max_abs_partial_sum: int
    overflow_events: int
    overflowing_products: int
    saturate_events: int
    damp_ratio: float
    retries: int
    dead_inputs: int
    axe: AxeStats
    norm_folded: bool = False       # a normalization's scale was folded into the weight (recipe rotation)
    rotated: bool = False           # the input was rotated (recipe rotation)
    rotation_online: bool = False   # by a float MatMul in front (else folded into the producing layer)
    ethosu_packed: bool = False     # packed for the recipe's ethosu configuration (the bytes below)
    ethosu_reason: str = None       # with recipe.ethosu, why the layer was not packed
    ethosu_weight_bytes: int = 0
    ethosu_scale_bytes: int = 0
    ethosu_stream_bytes: int = 0
    heads_rotated: str = None       # recipe rotate_heads: 'value' (W_v B) or 'output' (B^T W_o) projection
    lq: bool = False                # the weight is LQ levels (recipe lq_layers; weight_bits is K)


def _report(c):
    s = c.simulation
    return LayerReport(ffi.string(c.weight).decode(), bool(c.quantized), c.weight_bits, c.input_bits,
                       bool(c.input_signed), c.input_scale, c.weight_bytes, c.output_error, c.accumulator_bits,
                       c.report_bits, s.dot_products, s.max_abs_partial_sum, s.wrap_events + s.wrap_outer_events,
                       s.wrap_overflowing_products, s.saturate_events + s.saturate_outer_events, c.gpxq.damp_ratio,
                       c.gpxq.retries, c.gpxq.dead_inputs, AxeStats.from_c(c.gpxq), bool(c.norm_folded),
                       bool(c.rotated), bool(c.rotation_online), bool(c.ethosu_packed),
                       ffi.string(c.ethosu_reason).decode() if c.ethosu_reason != ffi.NULL else None,
                       c.ethosu_weight_bytes, c.ethosu_scale_bytes, c.ethosu_stream_bytes,
                       _HEADS[c.heads_rotated], bool(c.lq))


class Pipeline:
    """Pipeline(model, ctx=None): the model's linear layers (`layers`), calibration batches (`add_batch`)
    and `run(recipe)` -> (quantized Model, [LayerReport per layer])."""

    def __init__(self, model, ctx=None):
        self.model = model  # the C pipeline borrows it
        self.ctx = ctx if ctx is not None else default_context()
        out = ffi.new("qc_pipeline **")
        check(onnx_lib.qc_pipeline_create(out, model._m, self.ctx._ctx))
        self._p = ffi.gc(out[0], onnx_lib.qc_pipeline_free)

    @property
    def layers(self):
        """[{weight, node, op_type, input, in_features, out_features}] in graph order."""
        info = ffi.new("qc_layer_info *")
        result = []
        for i in range(onnx_lib.qc_pipeline_layer_count(self._p)):
            check(onnx_lib.qc_pipeline_layer(self._p, i, info))
            result.append({k: ffi.string(getattr(info, k)).decode() for k in ("weight", "node", "op_type", "input")})
            result[-1].update(in_features=info.in_features, out_features=info.out_features)
        return result

    def add_batch(self, inputs):
        """Adds a calibration batch: {graph input name: numpy array} (copied)."""
        names, values, keep = named_views(inputs, "qcore.Pipeline.add_batch")
        check(onnx_lib.qc_pipeline_add_batch(self._p, len(inputs), names, values))

    def run(self, recipe=None):
        """Quantizes with `recipe` (default Recipe()); returns (Model, [LayerReport])."""
        recipe = recipe if recipe is not None else Recipe()
        c_recipe, alive = recipe.to_c()
        out = ffi.new("qc_model **")
        self.ctx.call(_run_pipeline, self._p, c_recipe, out)
        del alive
        model = Model(_handle=out[0])
        report = ffi.new("qc_layer_report *")
        reports = []
        for i in range(onnx_lib.qc_pipeline_layer_count(self._p)):
            report.version = onnx_lib.QC_LAYER_REPORT_VERSION
            check(onnx_lib.qc_pipeline_report(self._p, i, report))
            reports.append(_report(report))
        return model, reports


def _run_pipeline(ctx, pipeline, recipe, out):
    return onnx_lib.qc_pipeline_run(pipeline, recipe, out)
