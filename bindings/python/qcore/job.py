"""The main job in one call: a model quantized from calibration data by one recipe, on top of Pipeline.

    quantized, reports = qcore.quantize("model.onnx", {"input": x_calib}, method="gpfq", weight_bits=4,
                                        accumulator_bits=16, tile_size=64)
    quantized.save("model.q.onnx")

qcore.quantize keeps its array form too (qcore.quantize(x, scale, zero_point, opts)): a model (qcore.Model
or a path) as first argument selects this one.
"""
import dataclasses
import os

import numpy as np

from .model import Model
from .pipeline import Pipeline, Recipe
from .quant import quantize as _quantize_array

# Shortcuts for the nested fields a recipe is most often written with.
_WEIGHT_FIELDS = {"weight_bits": "bits", "weight_granularity": "granularity", "weight_group_size": "group_size"}
_GPXQ_FIELDS = {"accumulator_bits", "tile_size", "act_order", "damp_ratio"}


def _recipe(recipe, fields, function):
    recipe = recipe if recipe is not None else Recipe()
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(fields) - known - set(_WEIGHT_FIELDS) - _GPXQ_FIELDS)
    if unknown:
        raise TypeError("%s: unknown recipe field(s) %s; Recipe has %s, and the shortcuts %s"
                        % (function, ", ".join(unknown), ", ".join(sorted(known)),
                           ", ".join(sorted(set(_WEIGHT_FIELDS) | _GPXQ_FIELDS))))
    weights = {_WEIGHT_FIELDS[k]: v for k, v in fields.items() if k in _WEIGHT_FIELDS}
    if weights.get("granularity") == "group":
        weights.setdefault("axis", 1)
    gpxq = {k: v for k, v in fields.items() if k in _GPXQ_FIELDS}
    plain = {k: v for k, v in fields.items() if k in known}
    recipe = dataclasses.replace(recipe, **plain)
    if weights:
        recipe = dataclasses.replace(recipe, weights=dataclasses.replace(recipe.weights, **weights))
    if gpxq:
        recipe = dataclasses.replace(recipe, gpxq=dataclasses.replace(recipe.gpxq, **gpxq))
    return recipe


def _batches(model, calibration, batch_size, function):
    """Calibration as batches {input name: array}: an iterable of such dicts is taken as it is; one dict (or,
    for a one-input model, one array) holding every sample along axis 0 is cut into `batch_size` rows."""
    if isinstance(calibration, np.ndarray):
        names = [v.name for v in model.inputs]
        if len(names) != 1:
            raise TypeError("%s: the model has inputs %s; give calibration as {name: array}" % (function, names))
        calibration = {names[0]: calibration}
    if not isinstance(calibration, dict):
        return list(calibration)
    lengths = {name: len(a) for name, a in calibration.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError("%s: the calibration arrays hold different numbers of samples: %s" % (function, lengths))
    total = next(iter(lengths.values()), 0)
    return [{name: np.ascontiguousarray(a[k:k + batch_size]) for name, a in calibration.items()}
            for k in range(0, total, batch_size)]


def quantize_model(model, calibration, recipe=None, *, batch_size=64, ctx=None, **recipe_fields):
    """Quantizes every linear layer of `model` (a qcore.Model or an ONNX path) from `calibration` and
    returns (quantized qcore.Model, [LayerReport per layer]).

    calibration: {input name: array} with samples along axis 0 (cut into batches of `batch_size`), an array
    for a one-input model, or an iterable of such dicts taken as the batches. recipe: a qcore.Recipe
    (default Recipe(): W8A8 OPTQ per channel); recipe_fields override its fields (method, activation_bits,
    sequential, keep_float, rotation, rotation_seed, ethosu, ...) and the shortcuts weight_bits, weight_granularity, weight_group_size
    (the weight grid) and accumulator_bits, tile_size, act_order, damp_ratio (its GpxqOptions)."""
    function = "qcore.quantize"
    recipe = _recipe(recipe, recipe_fields, function)
    if isinstance(model, (str, os.PathLike)):
        model = Model(os.fspath(model))
    pipeline = Pipeline(model, ctx)
    for batch in _batches(model, calibration, batch_size, function):
        pipeline.add_batch(batch)
    return pipeline.run(recipe)


def quantize(*args, **kwargs):
    """qcore.quantize(model, calibration, recipe=None, **recipe_fields) -> (Model, [LayerReport]) when the
    first argument is a qcore.Model or a path (see quantize_model); otherwise the array form
    qcore.quantize(x, scale, zero_point, opts, dtype=None, ctx=None) of qcore.quant."""
    first = args[0] if args else kwargs.get("model")
    if isinstance(first, (Model, str, os.PathLike)):
        return quantize_model(*args, **kwargs)
    return _quantize_array(*args, **kwargs)
