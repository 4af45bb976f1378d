"""Mixed-precision search (include/qcore/qc_search.h): which candidate format each tensor gets, traded
between a cost (lower is better, e.g. bytes) and a metric (higher is better, e.g. accuracy).

    space = qcore.SearchSpace([3, 3], cost=[[32, 8, 4], [32, 8, 4]], proxy=[[0, .01, .2], [0, .02, .5]])
    search = qcore.Search(space, max_evaluations=16, seed=0)
    search.run(lambda choice, fidelity_index, fidelity: evaluate(choice))
    front = search.front()        # evaluated non-dominated (cost, metric) points
"""
import numpy as np

from ._errors import InvalidArgumentError, check
from ._ffi import ffi, lib

_ALGORITHMS = {"qcore": lib.QC_SEARCH_QCORE, "random": lib.QC_SEARCH_RANDOM, "greedy": lib.QC_SEARCH_GREEDY,
               "oneshot_dp": lib.QC_SEARCH_ONESHOT_DP}


class SearchSpace:
    """T tensors, tensor t with num_candidates[t] candidates. cost, proxy: optional per-tensor lists of
    per-candidate values (the tables of qc_search_space_set_cost / set_proxy); labels likewise."""

    def __init__(self, num_candidates, cost=None, proxy=None, labels=None):
        counts = [int(c) for c in num_candidates]
        handle = ffi.new("qc_search_space **")
        check(lib.qc_search_space_create(handle, len(counts), ffi.new("uint32_t[]", counts) if counts else ffi.NULL),
              "qcore.SearchSpace")
        self._space = ffi.gc(handle[0], lib.qc_search_space_free)
        self.num_candidates = counts
        self._check = None
        self._check_pending = None
        for table, setter in ((cost, self.set_cost), (proxy, self.set_proxy), (labels, self.set_label)):
            if table is not None:
                self._set_table(table, setter)

    @classmethod
    def _adopt(cls, handle):
        """A SearchSpace owning `handle` (a qc_search_space * made by the library, e.g. qc_model_search_space)."""
        space = cls.__new__(cls)
        space._space = ffi.gc(handle, lib.qc_search_space_free)
        space.num_candidates = [lib.qc_search_space_num_candidates(handle, t)
                                for t in range(lib.qc_search_space_num_tensors(handle))]
        space._check = None
        space._check_pending = None
        return space

    def _set_table(self, table, setter):
        if len(table) != len(self.num_candidates):
            raise InvalidArgumentError("qcore.SearchSpace: a table has %d rows for %d tensors"
                                       % (len(table), len(self.num_candidates)))
        for t, row in enumerate(table):
            for c, value in enumerate(row):
                setter(t, c, value)

    @property
    def num_tensors(self):
        return len(self.num_candidates)

    def set_cost(self, tensor, candidate, cost):
        check(lib.qc_search_space_set_cost(self._space, tensor, candidate, float(cost)))

    def set_proxy(self, tensor, candidate, loss):
        check(lib.qc_search_space_set_proxy(self._space, tensor, candidate, float(loss)))

    def set_label(self, tensor, candidate, label):
        check(lib.qc_search_space_set_label(self._space, tensor, candidate, str(label).encode()))

    def tie(self, tensors):
        """The tensors must take the same candidate index."""
        tensors = [int(t) for t in tensors]
        check(lib.qc_search_space_tie(self._space, len(tensors), ffi.new("size_t[]", tensors) if tensors else ffi.NULL))

    def forbid(self, tensors, candidates):
        """Configurations with tensors[i] at candidates[i] for every i are not allowed."""
        tensors, candidates = [int(t) for t in tensors], [int(c) for c in candidates]
        if len(tensors) != len(candidates):
            raise InvalidArgumentError("qcore.SearchSpace.forbid: %d tensors but %d candidates"
                                       % (len(tensors), len(candidates)))
        check(lib.qc_search_space_forbid(self._space, len(tensors), ffi.new("size_t[]", tensors) if tensors else ffi.NULL,
                                         ffi.new("uint32_t[]", candidates) if candidates else ffi.NULL))

    def set_check(self, fn):
        """fn(choice, cost) -> False (not allowed), True (allowed, additive cost) or a float (allowed, its true
        cost); None removes the check."""
        if fn is None:
            self._check = None
            check(lib.qc_search_space_set_check(self._space, ffi.NULL, ffi.NULL))
            return
        def call(choice, cost, user):
            verdict = fn(np.frombuffer(ffi.buffer(choice, 4 * self.num_tensors), np.uint32).copy(), cost[0])
            if verdict is False or verdict is None:
                return 0
            if verdict is not True:
                cost[0] = float(verdict)
            return 1
        def on_error(exc_type, exc_value, traceback):
            self._check_pending = exc_value
            return -1
        self._check = ffi.callback("qc_search_check_fn", call, onerror=on_error)
        check(lib.qc_search_space_set_check(self._space, self._check, ffi.NULL))

    def _choice(self, choice, function):
        array = np.ascontiguousarray(choice, dtype=np.int64)
        if array.shape != (self.num_tensors,) or (array < 0).any() or (array >= 1 << 32).any():
            raise InvalidArgumentError("%s: argument 'choice' must hold %d candidate indices, got %r"
                                       % (function, self.num_tensors, choice))
        return ffi.new("uint32_t[]", array.tolist())

    def _raise_check(self):
        if self._check_pending is not None:
            pending, self._check_pending = self._check_pending, None
            raise pending

    def evaluate(self, choice):
        """(additive cost, summed proxy loss) of a configuration."""
        cost, proxy = ffi.new("double *"), ffi.new("double *")
        check(lib.qc_search_space_evaluate(self._space, self._choice(choice, "qcore.SearchSpace.evaluate"), cost, proxy))
        return cost[0], proxy[0]

    def feasible(self, choice):
        """(allowed, cost) under ties, forbidden combinations and the check."""
        ok, cost = ffi.new("int *"), ffi.new("double *")
        status = lib.qc_search_space_feasible(self._space, self._choice(choice, "qcore.SearchSpace.feasible"), ok, cost)
        self._raise_check()
        check(status)
        return bool(ok[0]), cost[0]


class Front:
    """Points (choice, cost, metric, fidelity_index): choices uint32 [n, T], the rest [n] arrays."""

    def __init__(self, handle):
        front = ffi.gc(handle, lib.qc_search_front_free)
        n, t = lib.qc_search_front_size(front), lib.qc_search_front_num_tensors(front)
        self.choices = np.zeros((n, t), np.uint32)
        self.cost, self.metric = np.zeros(n), np.zeros(n)
        self.fidelity_index = np.zeros(n, np.int64)
        choice, cost, metric, fid = ffi.new("uint32_t **"), ffi.new("double *"), ffi.new("double *"), ffi.new("size_t *")
        for i in range(n):
            check(lib.qc_search_front_point(front, i, choice, cost, metric, fid))
            self.choices[i] = np.frombuffer(ffi.buffer(choice[0], 4 * t), np.uint32)
            self.cost[i], self.metric[i], self.fidelity_index[i] = cost[0], metric[0], fid[0]

    def __len__(self):
        return len(self.cost)

    def hypervolume(self, reference_cost, reference_metric):
        return hypervolume(self.cost, self.metric, reference_cost, reference_metric)


def dp_front(space, cost_buckets=1024):
    """The proxy front for every budget (multiple-choice knapsack DP): metric = -(summed proxy loss)."""
    out = ffi.new("qc_search_front **")
    check(lib.qc_search_dp_front(out, space._space, int(cost_buckets)))
    return Front(out[0])


def hypervolume(cost, metric, reference_cost, reference_metric):
    """Area dominated by the (cost, metric) points within the reference point (cost <=, metric >=)."""
    cost, metric = np.ascontiguousarray(cost, np.float64), np.ascontiguousarray(metric, np.float64)
    if cost.shape != metric.shape or cost.ndim != 1:
        raise InvalidArgumentError("qcore.hypervolume: cost and metric must be 1-D of one length")
    out = ffi.new("double *")
    check(lib.qc_search_hypervolume(out, ffi.cast("double *", cost.ctypes.data), ffi.cast("double *", metric.ctypes.data),
                                    len(cost), float(reference_cost), float(reference_metric)))
    return out[0]


def proxy_output_error(w, wq, h=None):
    """tr(E H E^T) / tr(W H W^T), E = W - Wq (float32 [rows, cols]); h float64 [cols, cols] or None."""
    w, wq = np.ascontiguousarray(w, np.float32), np.ascontiguousarray(wq, np.float32)
    if w.ndim != 2 or w.shape != wq.shape:
        raise InvalidArgumentError("qcore.proxy_output_error: w and wq must be 2-D of one shape")
    hp = ffi.NULL
    if h is not None:
        h = np.ascontiguousarray(h, np.float64)
        if h.shape != (w.shape[1], w.shape[1]):
            raise InvalidArgumentError("qcore.proxy_output_error: h must be [%d, %d]" % (w.shape[1], w.shape[1]))
        hp = ffi.cast("double *", h.ctypes.data)
    out = ffi.new("double *")
    check(lib.qc_search_proxy_output_error(out, ffi.NULL, ffi.cast("float *", w.ctypes.data),
                                           ffi.cast("float *", wq.ctypes.data), w.shape[0], w.shape[1], hp))
    return out[0]


class Search:
    """An ask/tell search over `space` (see qc_search.h for the algorithms). fidelities: ascending, the last
    the full one (None: one fidelity). The reference point defaults (None) to the library's rule.
    prior_width (qc_search_options.prior_width): how far qcore's surrogate lets each tensor stray from its
    proxy, a multiple of the default width (0: 1; smaller for a more accurate proxy)."""

    def __init__(self, space, algorithm="qcore", seed=0, max_evaluations=32, fidelities=None, reference_cost=None,
                 reference_metric=None, cost_buckets=1024, initial_points=0, noise=0.0, eta=3, ctx=None,
                 prior_width=0.0):
        if algorithm not in _ALGORITHMS:
            raise InvalidArgumentError("qcore.Search: algorithm must be one of %s, got %r" % (sorted(_ALGORITHMS), algorithm))
        opts = ffi.new("qc_search_options *")
        check(lib.qc_search_options_init(opts, lib.QC_SEARCH_OPTIONS_VERSION))
        opts.algorithm = _ALGORITHMS[algorithm]
        opts.seed = int(seed) % (1 << 64)
        opts.max_evaluations = int(max_evaluations)
        self._fidelities = ffi.new("double[]", [float(f) for f in fidelities]) if fidelities else ffi.NULL
        opts.num_fidelities = len(fidelities) if fidelities else 0
        opts.fidelities = self._fidelities
        opts.reference_cost = float("nan") if reference_cost is None else float(reference_cost)
        opts.reference_metric = float("nan") if reference_metric is None else float(reference_metric)
        opts.cost_buckets, opts.initial_points = int(cost_buckets), int(initial_points)
        opts.noise, opts.eta = float(noise), int(eta)
        opts.prior_width = float(prior_width)  # 0: the library's default width (1)
        handle = ffi.new("qc_search **")
        status = lib.qc_search_create(handle, space._space, opts, ctx._ctx if ctx is not None else ffi.NULL)
        space._raise_check()
        check(status)
        self._search = ffi.gc(handle[0], lib.qc_search_free)
        self.space = space  # keeps the check callback alive
        self.fidelities = list(fidelities) if fidelities else [1.0]
        self._pending = None

    def ask(self):
        """(choice uint32 [T], fidelity_index), or None when the search is done."""
        choice = ffi.new("uint32_t[]", self.space.num_tensors)
        fid, done = ffi.new("size_t *"), ffi.new("int *")
        status = lib.qc_search_ask(self._search, choice, fid, done)
        self.space._raise_check()
        check(status)
        if done[0]:
            return None
        return np.frombuffer(ffi.buffer(choice), np.uint32).copy(), int(fid[0])

    def tell(self, choice, fidelity_index, metric):
        status = lib.qc_search_tell(self._search, self.space._choice(choice, "qcore.Search.tell"), int(fidelity_index),
                                    float(metric))
        self.space._raise_check()
        check(status)

    def run(self, evaluate):
        """Calls evaluate(choice, fidelity_index, fidelity) -> metric until done; its exceptions propagate."""
        def call(choice, fidelity_index, fidelity, metric, user):
            metric[0] = float(evaluate(np.frombuffer(ffi.buffer(choice, 4 * self.space.num_tensors), np.uint32).copy(),
                                       int(fidelity_index), float(fidelity)))
            return 0
        def on_error(exc_type, exc_value, traceback):
            self._pending = exc_value
            return 1
        callback = ffi.callback("qc_search_eval_fn", call, onerror=on_error)
        self._pending = None
        status = lib.qc_search_run(self._search, callback, ffi.NULL)
        self.space._raise_check()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        check(status)

    def _front(self, getter):
        out = ffi.new("qc_search_front **")
        check(getter(out, self._search))
        return Front(out[0])

    def front(self):
        """The evaluated non-dominated set at full fidelity."""
        return self._front(lib.qc_search_evaluated_front)

    def predicted_front(self):
        """The front the calibrated surrogate predicts over the whole space."""
        return self._front(lib.qc_search_predicted_front)

    def evaluations(self):
        """Every evaluation told, in order."""
        return self._front(lib.qc_search_evaluations)

    @property
    def reference(self):
        rc, rm = ffi.new("double *"), ffi.new("double *")
        check(lib.qc_search_reference(self._search, rc, rm))
        return rc[0], rm[0]

    def to_json(self, path):
        check(lib.qc_search_write_json(self._search, str(path).encode()))


__all__ = ["Front", "Search", "SearchSpace", "dp_front", "hypervolume", "proxy_output_error"]
