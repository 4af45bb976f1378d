"""Mixed precision over a model (qc_model_search_* in include/qcore/qc_model.h): every layer's weight
quantized once at each candidate width, then configurations (one candidate per layer) evaluated on
evaluation batches by qcore's executor with the weights swapped in place.

    pipe = qcore.Pipeline(model); pipe.add_batch({"input": calib})
    search = qcore.ModelSearch(pipe, qcore.Recipe(method="optq"), widths=(0, 8, 4, 3), lq_bits=(2,), proxy="layer")
    search.add_batch({"input": x_eval}, labels=y_eval)         # top-1 accuracy; without labels: cosine
    search.measure_proxy("model_scaled", batches=1)            # each layer's loss in the model, on evaluation data
    print(search.evaluate([1, 2, 3]), search.recipe([1, 2, 3]).layer_bits)
"""
from dataclasses import dataclass, replace

import numpy as np

from ._errors import check
from ._ffi import ffi, onnx_lib
from ._tensor import as_array, named_views, view
from .ethosu import _config
from .pipeline import Recipe
from .search import Search, SearchSpace

MODEL_PROXY_PRIOR_WIDTH = 0.5  # qc_model_search_run's prior_width for a model-level proxy
_COSTS = {"bytes": 0, "bit_operations": 1, "ethosu_bytes": 2}
_PROXIES = {"layer": 0, "model": 1, "model_scaled": 2}


@dataclass(frozen=True)
class Candidate:
    """One width of one searched layer: `bits` 0 is the float weight; `bytes` its stored size;
    `output_error` the layer's relative output error alone at this width (qc_layer_report's);
    `ethosu_bytes` its Ethos-U stream (0 when not measured); `bit_operations` per sample; `proxy` what the
    search's space gets (the search's proxy: the layer's or the model's squared relative output error, the
    model's per sample to the nearest non-negative multiple of the float output);
    `lq_bits` K for an LQ candidate (then `bits` is K too), 0 for a uniform width or float;
    `rotated` whether the layer's input is rotated in this candidate (a rotated recipe's layers; False for
    the unrotated twins of rotation_choice)."""

    weight: str
    pipeline_layer: int
    bits: int
    bytes: int
    output_error: float
    ethosu_bytes: int
    bit_operations: float
    proxy: float = 0.0
    lq_bits: int = 0
    rotated: bool = False


class ModelSearch:
    """ModelSearch(pipeline, recipe=None, widths=(0, 8, 6, 4, 3, 2), output=None, ethosu=None,
    proxy="model_scaled", proxy_batches=0): the candidates (`candidates[t][c]`), evaluation batches
    (`add_batch`), `evaluate(choice, fraction)` and `recipe(choice)`; `output` names the graph output the
    metric reads (default: the first); `ethosu` ("ethos-u55-128", ...) measures each candidate's Ethos-U
    stream; `proxy` (qc_model_proxy) "model" runs each candidate alone in the model on the first
    `proxy_batches` calibration batches (0: all) at creation, "model_scaled" only each layer's lowest width
    and LQ candidates (the other widths scaled by the layer's own errors), "layer" takes the layer's own output error (no run);
    `measure_proxy` measures a model proxy on the evaluation batches instead, which predicts the metric
    better (create with proxy="layer", add the batches, then call it). A
    recipe rotation ('haar', 'hadamard') is applied once before the candidates are built, and
    `recipe(choice)` keeps it. `lq_bits` (each K in 1..4) adds one LQ candidate per K after the widths:
    weight-only learned K-bit levels per output channel (Recipe.lq_layers). With rotation_choice=True (a
    rotated recipe), each layer rotated online also gets unrotated twins of its
    integer and LQ candidates, after them in its row of `candidates` (rows may then differ in length);
    `recipe(choice)` names the layers whose twin it chose in `unrotated` ("Rotation per layer" in
    qc_model.h)."""

    def __init__(self, pipeline, recipe=None, widths=(0, 8, 6, 4, 3, 2), output=None, ethosu=None,
                 proxy="model_scaled", proxy_batches=0, lq_bits=(), rotation_choice=False):
        if proxy not in _PROXIES:
            raise ValueError("qcore.ModelSearch: proxy must be one of %s, got %r" % (", ".join(_PROXIES), proxy))
        if not isinstance(proxy_batches, int) or proxy_batches < 0:
            raise ValueError("qcore.ModelSearch: proxy_batches must be a count of calibration batches >= 0 (0: all), got %r"
                             % (proxy_batches,))
        self.pipeline = pipeline  # the C search borrows it
        self.base = recipe if recipe is not None else Recipe()
        c_recipe, alive = self.base.to_c()
        opts = ffi.new("qc_model_search_options *")
        check(onnx_lib.qc_model_search_options_init(opts, onnx_lib.QC_MODEL_SEARCH_OPTIONS_VERSION))
        c_widths = ffi.new("int32_t[]", list(widths))
        opts.recipe, opts.num_widths, opts.widths = c_recipe, len(widths), c_widths
        c_output = ffi.new("char[]", output.encode()) if output is not None else ffi.NULL
        opts.output = c_output
        opts.proxy, opts.proxy_batches = _PROXIES[proxy], proxy_batches
        c_lq = ffi.new("int32_t[]", list(lq_bits)) if lq_bits else ffi.NULL
        opts.num_lq_bits, opts.lq_bits = len(lq_bits), c_lq
        opts.rotation_choice = int(bool(rotation_choice))
        if ethosu is not None:
            opts.ethosu_config = _config(ethosu, "qcore.ModelSearch")
        out = ffi.new("qc_model_search **")
        pipeline.ctx.call(_create, out, pipeline._p, opts)
        del alive
        self._s = ffi.gc(out[0], onnx_lib.qc_model_search_free)
        self.widths, self.lq_bits, self.proxy = tuple(widths), tuple(lq_bits), proxy
        self.rotation_choice = bool(rotation_choice)
        self.candidates = self._candidates()

    def measure_proxy(self, proxy="model_scaled", batches=0):
        """Measures the proxy again on the first `batches` (0: all) evaluation batches (add_batch) rather than
        the calibration data the candidates were fitted on (qc_model_search_measure_proxy): what a layer
        loses on data it was not fitted on is what the metric sees. Create the search with proxy="layer"
        (no pass at creation), add the evaluation batches, then call this; `candidates`, `space()` and
        `run()` then use the new proxy. proxy="layer" (batches=0) drops a model proxy."""
        if proxy not in _PROXIES:
            raise ValueError("qcore.ModelSearch.measure_proxy: proxy must be one of %s, got %r" % (", ".join(_PROXIES), proxy))
        if not isinstance(batches, int) or batches < 0:
            raise ValueError("qcore.ModelSearch.measure_proxy: batches must be a count of evaluation batches >= 0 (0: all), "
                             "got %r" % (batches,))
        self.pipeline.ctx.call(_measure_proxy, self._s, _PROXIES[proxy], batches)
        self.proxy = proxy
        self.candidates = self._candidates()

    def _candidates(self):
        return [[self._candidate(t, c) for c in range(onnx_lib.qc_model_search_candidate_count(self._s, t))]
                for t in range(onnx_lib.qc_model_search_layer_count(self._s))]

    def _candidate(self, t, c):
        info = ffi.new("qc_model_candidate *")
        check(onnx_lib.qc_model_search_candidate(self._s, t, c, info))
        proxy, lq = ffi.new("double *"), ffi.new("int32_t *")
        check(onnx_lib.qc_model_search_proxy(self._s, t, c, proxy))
        check(onnx_lib.qc_model_search_candidate_lq_bits(self._s, t, c, lq))
        rotated = ffi.new("int32_t *")
        check(onnx_lib.qc_model_search_candidate_rotated(self._s, t, c, rotated))
        return Candidate(ffi.string(info.weight).decode(), info.pipeline_layer, info.weight_bits, info.bytes,
                         info.output_error, info.ethosu_bytes, info.bit_operations, proxy[0], lq[0], bool(rotated[0]))

    def add_batch(self, inputs, labels=None):
        """Adds an evaluation batch: {graph input name: numpy array} and int64 labels [samples] or None."""
        names, values, keep = named_views(inputs, "qcore.ModelSearch.add_batch")
        c_labels = ffi.NULL
        if labels is not None:
            labels = as_array(np.asarray(labels), "labels", [np.int64], "qcore.ModelSearch.add_batch")
            c_labels, buffer = view(labels)
            keep.append((labels, buffer))
        check(onnx_lib.qc_model_search_add_batch(self._s, len(inputs), names, values, c_labels))

    def _choice(self, choice):
        choice = list(choice)
        if len(choice) != len(self.candidates):
            raise ValueError("qcore.ModelSearch: a configuration has one candidate per searched layer (%d), got %d"
                             % (len(self.candidates), len(choice)))
        return ffi.new("uint32_t[]", choice)

    def evaluate(self, choice, fraction=1.0):
        """The metric (top-1 accuracy, or mean cosine to the float model) of configuration `choice` on the
        first ceil(fraction * batches) evaluation batches."""
        metric = ffi.new("double *")
        check(onnx_lib.qc_model_search_evaluate(self._s, self._choice(choice), fraction, metric))
        return metric[0]

    def cost(self, choice):
        """Stored bytes of the searched layers' weights in configuration `choice`."""
        return sum(self.candidates[t][c].bytes for t, c in enumerate(choice))

    def space(self, cost="bytes"):
        """A qcore.SearchSpace over the searched layers: cost 'bytes', 'bit_operations' or 'ethosu_bytes'
        (needs ethosu=...), proxies the candidates' `proxy`; add ties or forbidden combinations to it."""
        if cost not in _COSTS:
            raise ValueError("qcore.ModelSearch.space: cost must be one of %s, got %r" % (", ".join(_COSTS), cost))
        out = ffi.new("qc_search_space **")
        check(onnx_lib.qc_model_search_space(self._s, _COSTS[cost], out))
        return SearchSpace._adopt(out[0])

    def run(self, space=None, **options):
        """A finished qcore.Search over `space` (default: self.space()) whose configurations this model
        search evaluates (fidelity = fraction of the evaluation batches); `options` go to qcore.Search.
        prior_width defaults as in qc_model_search_run: 0.5 for a model-level proxy, else the library's."""
        options.setdefault("prior_width", MODEL_PROXY_PRIOR_WIDTH if self.proxy != "layer" else 0.0)
        search = Search(space if space is not None else self.space(), **options)
        search.run(lambda choice, fidelity_index, fidelity: self.evaluate(choice, fidelity))
        return search

    def recipe(self, choice):
        """The base Recipe with layer_bits (and lq_layers for LQ candidates) for `choice` (for Pipeline.run
        or `qcore quantize --recipe`)."""
        self._choice(choice)
        chosen = [self.candidates[t][c] for t, c in enumerate(choice)]
        twins = len(self.widths) + len(self.lq_bits)  # candidates from here on are unrotated twins
        left = tuple(self.candidates[t][c].weight for t, c in enumerate(choice) if c >= twins)
        return replace(self.base, layer_bits={c.weight: c.bits for c in chosen if not c.lq_bits},
                       lq_layers={c.weight: c.lq_bits for c in chosen if c.lq_bits},
                       **({"unrotated": left} if self.rotation_choice else {}))


def _create(ctx, out, pipeline, opts):
    return onnx_lib.qc_model_search_create(out, pipeline, opts)


def _measure_proxy(ctx, search, proxy, batches):
    return onnx_lib.qc_model_search_measure_proxy(search, proxy, batches)
