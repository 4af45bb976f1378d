"""Every fully-connected layer of a model replaced by qcore's LQ layer (ai.qcore.LQGemm), fitted on
calibration data run through the net (qc_model_lq_replace in include/qcore/qc_model.h).

    lq, ort, result = qcore.lq_replace(qcore.Model("mlp.onnx"), weight_bits=2, input_bits=2,
                                       batches=[{"input": images[k:k + 512]} for k in range(0, 4096, 512)])
    lq.save("mlp_w2a2.onnx"); ort.save("mlp_w2a2_ort.onnx")
"""
from dataclasses import dataclass

from ._errors import InvalidArgumentError, check
from ._ffi import ffi, onnx_lib
from .lq import LqOptions
from .model import Model
from .pipeline import Pipeline


@dataclass
class LqReplaceResult:
    """Layers replaced and left alone; bytes of the replaced layers as LQ (as stored: ceil(n / 8) bytes per
    bit-plane row, float32 bases and biases) and as float32."""

    replaced: int
    kept: int
    lq_bytes: int
    float_bytes: int


def lq_replace(pipeline, weight_bits=2, input_bits=2, refit=True, refit_ridge=1e-4, fit=None, batches=None, ctx=None,
               code_rounds=None, assign_damping=0.01):
    """Replaces the fully-connected layers of `pipeline`'s model (a qcore.Pipeline holding calibration
    batches; or a qcore.Model, with `batches` a list of {graph input: array} and `ctx` for the pipeline),
    layer after layer on the inputs of the model as replaced so far. With `refit`, each layer's weight
    bases are refitted to its outputs, then `code_rounds` times (None: 2 at 1-2 weight bits, else 0) its
    codes re-chosen for the output error (qcore.lq_assign_codes) and the bases refitted again. Returns (the LQGemm Model, its onnxruntime export
    as a Model of standard ONNX ops, LqReplaceResult); both models own their data."""
    if isinstance(pipeline, Model):
        pipeline = _pipeline(pipeline, batches, ctx)
    elif batches is not None or ctx is not None:
        raise InvalidArgumentError("qcore.lq_replace: 'batches' and 'ctx' go with a Model; a Pipeline has its own")
    opts = ffi.new("qc_lq_replace_options *")
    check(onnx_lib.qc_lq_replace_options_init(opts, onnx_lib.QC_LQ_REPLACE_OPTIONS_VERSION))
    opts.weight_bits, opts.input_bits, opts.refit, opts.refit_ridge = weight_bits, input_bits, int(bool(refit)), refit_ridge
    opts.fit = (fit or LqOptions()).to_c()[0]
    opts.code_rounds, opts.assign_damping = -1 if code_rounds is None else code_rounds, assign_damping
    out, ort = ffi.new("qc_model **"), ffi.new("qc_model **")
    result = ffi.new("qc_lq_replace_result *", [onnx_lib.QC_LQ_REPLACE_RESULT_VERSION])
    pipeline.ctx.call(_replace, out, ort, result, pipeline._p, opts)
    return (Model(_handle=out[0]), Model(_handle=ort[0]),
            LqReplaceResult(result.replaced, result.kept, result.lq_bytes, result.float_bytes))


def _pipeline(model, batches, ctx):
    if not batches:
        raise InvalidArgumentError("qcore.lq_replace: give calibration 'batches' (a list of {input: array}) with a Model")
    pipeline = Pipeline(model, ctx)
    for batch in batches:
        pipeline.add_batch(batch)
    return pipeline


def _replace(ctx, out, ort, result, pipeline, opts):
    return onnx_lib.qc_model_lq_replace(out, ort, result, pipeline, opts)


__all__ = ["LqReplaceResult", "lq_replace"]
