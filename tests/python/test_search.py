"""Mixed-precision search (qc_search.h) from Python: the DP front against itertools enumeration with ties,
forbidden combinations; the hypervolume against a numpy grid count; the output-error proxy against numpy;
ask/tell and run() with a Python callable (constraints, the check callback, no repeated asks, same seed
same run); the JSON file against the fronts; qcore's search above random search on a synthetic problem, and
told a reference point, above the one-shot DP and greedy baselines at 16 evaluations on saturating spaces;
bad input errors and exceptions raised by Python callbacks."""
import itertools
import json

import numpy as np
import pytest

import qcore


def random_space(rng, tensors=5, most=4):
    counts = [int(c) for c in rng.integers(1, most + 1, tensors)]
    cost = [rng.integers(0, 15, c).astype(float) for c in counts]
    proxy = [rng.integers(0, 100, c) / 10.0 for c in counts]
    space = qcore.SearchSpace(counts, cost=cost, proxy=proxy)
    rules = {"tie": None, "forbid": None}
    same = [(a, b) for a, b in itertools.combinations(range(tensors), 2) if counts[a] == counts[b] > 1]
    if same:
        rules["tie"] = same[0]
        space.tie(same[0])
    if counts[0] > 1:
        rules["forbid"] = ((0, tensors - 1), (counts[0] - 1, 0))
        space.forbid(*rules["forbid"])
    return space, counts, cost, proxy, rules


def allowed(choice, rules):
    if rules["tie"] and choice[rules["tie"][0]] != choice[rules["tie"][1]]:
        return False
    if rules["forbid"]:
        (a, b), (ca, cb) = rules["forbid"]
        if choice[a] == ca and choice[b] == cb:
            return False
    return True


def enumerated_front(counts, cost, proxy, rules):
    points = []
    for choice in itertools.product(*[range(c) for c in counts]):
        if allowed(choice, rules):
            points.append((sum(cost[t][c] for t, c in enumerate(choice)), -sum(proxy[t][c] for t, c in enumerate(choice))))
    points.sort(key=lambda p: (p[0], -p[1]))
    front = []
    for c, m in points:
        if not front or m > front[-1][1]:
            front.append((c, m))
    return np.array(front)


@pytest.mark.parametrize("seed", range(15))
def test_dp_front_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    space, counts, cost, proxy, rules = random_space(rng)
    span = sum(float(c.max() - c.min()) for c in cost)
    front = qcore.dp_front(space, cost_buckets=max(1, int(span)))
    want = enumerated_front(counts, cost, proxy, rules)
    np.testing.assert_allclose(np.c_[front.cost, front.metric], want, atol=1e-9)
    assert all(allowed(tuple(c), rules) for c in front.choices)


def grid_hypervolume(cost, metric, rc, rm, top):
    cells = 0
    for c in range(-3, rc):
        for m in range(rm, top):
            cells += bool(np.any((cost <= c) & (metric >= m + 1)))
    return cells


def test_hypervolume_equals_grid_count():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(0, 10))
        cost, metric = rng.integers(-3, 25, n).astype(float), rng.integers(0, 25, n).astype(float)
        assert qcore.hypervolume(cost, metric, 20, 2) == grid_hypervolume(cost, metric, 20, 2, 25)


def test_output_error_proxy_against_numpy():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 9)).astype(np.float32)
    wq = (np.round(w * 3) / 3).astype(np.float32)
    x = rng.standard_normal((40, 9))
    h = x.T @ x / len(x)
    e = w.astype(np.float64) - wq
    want = np.sum((x @ e.T) ** 2) / np.sum((x @ w.astype(np.float64).T) ** 2)
    assert qcore.proxy_output_error(w, wq, h) == pytest.approx(want, rel=1e-12)
    assert qcore.proxy_output_error(w, wq) == pytest.approx(np.sum(e ** 2) / np.sum(w.astype(np.float64) ** 2), rel=1e-12)


def synthetic(seed, tensors=16):
    rng = np.random.default_rng(seed)
    bits = np.array([32, 8, 6, 4, 3, 2])
    cost = rng.integers(1, 64, tensors)[:, None] * 1000.0 * bits[None, :] / 8
    truth = 0.02 * np.exp(rng.normal(0, 1, tensors))[:, None] * np.where(bits >= 32, 0, 4.0 ** (-(bits - 2.0)))
    proxy = truth * np.exp(rng.normal(0, 0.7, truth.shape))
    return cost, truth, proxy


def run_synthetic(algorithm, seed, budget=32):
    cost, truth, proxy = synthetic(seed)
    t = np.arange(len(cost))
    space = qcore.SearchSpace([cost.shape[1]] * len(cost), cost=cost, proxy=proxy)
    search = qcore.Search(space, algorithm=algorithm, seed=seed, max_evaluations=budget)
    noise = np.random.default_rng(seed + 7)
    search.run(lambda choice, fi, f: 1 - truth[t, choice.astype(np.int64)].sum() + 1e-4 * noise.standard_normal())
    return search, cost[:, 0].sum()


def test_qcore_beats_random_search():
    for seed in range(3):
        scores = {}
        for algorithm in ["qcore", "random"]:
            search, rc = run_synthetic(algorithm, seed)
            scores[algorithm] = search.front().hypervolume(rc, 0.9)
        assert scores["qcore"] > scores["random"], (seed, scores)


def saturating(seed, tensors=6):
    """A space like a transformer's weight-only search: the metric exp(-4 sum_t s_t e_t(b_t)) saturates, and
    each tensor's hidden sensitivity s_t (log-normal) is not in the proxy e_t, so most of the proxy front
    is far below a reference metric of 0.95 and the proxy misranks tensors."""
    rng = np.random.default_rng(seed)
    bits = np.array([32, 8, 6, 4, 3, 2])
    cost = rng.integers(1, 64, tensors)[:, None] * 1000.0 * bits[None, :] / 8
    proxy = 0.2 * np.exp(rng.normal(0, 0.5, tensors))[:, None] * np.where(bits >= 32, 0, 4.0 ** (-(bits - 2.0)))
    sensitivity = np.exp(rng.normal(0, 1, tensors))
    return cost, proxy, lambda choice: np.exp(-4 * (sensitivity * proxy[np.arange(tensors), choice]).sum(-1))


def swept_hypervolume(points, rc, rm):
    """Area dominated by the points within (rc, rm), by a sweep over cost (independent of qcore's)."""
    inside = sorted((c, m) for c, m in points if c <= rc and m >= rm)
    area, best = 0.0, rm
    for i, (c, m) in enumerate(inside):
        best = max(best, m)
        area += ((inside[i + 1][0] if i + 1 < len(inside) else rc) - c) * (best - rm)
    return area


def saturating_run(seed, algorithm, budget=16):
    cost, proxy, metric = saturating(seed)
    rows = np.arange(len(cost))
    rc, rm = cost[:, 1].sum(), 0.95
    space = qcore.SearchSpace([cost.shape[1]] * len(cost), cost=cost, proxy=proxy)
    search = qcore.Search(space, algorithm=algorithm, max_evaluations=budget, reference_cost=rc, reference_metric=rm)
    points = []
    def evaluate(choice, fidelity_index, fidelity):
        choice = choice.astype(np.int64)
        points.append((cost[rows, choice].sum(), float(metric(choice))))
        return points[-1][1]
    search.run(evaluate)
    everything = np.array(list(itertools.product(range(cost.shape[1]), repeat=len(cost))))
    truth = swept_hypervolume(zip(cost[rows, everything].sum(1), metric(everything)), rc, rm)
    return swept_hypervolume(points, rc, rm), truth, points


def test_qcore_with_a_reference_beats_the_baselines_at_16_evaluations():
    """Against the one-shot proxy DP and greedy sensitivity told the same reference point, on saturating spaces
    with a hidden per-tensor sensitivity (the MiniLM failure): qcore's hypervolume after 16 evaluations, by
    an independent sweep, is at least the better baseline's on 8 of 10 spaces and 5 % above it in total, and
    never above the true front's (every configuration enumerated)."""
    wins, totals = 0, {"qcore": 0.0, "oneshot_dp": 0.0, "greedy": 0.0}
    for seed in range(10):
        hv = {}
        for algorithm in totals:
            hv[algorithm], truth, _ = saturating_run(seed, algorithm)
            totals[algorithm] += hv[algorithm]
            assert hv[algorithm] <= truth * (1 + 1e-12), (seed, algorithm, hv[algorithm], truth)
        wins += hv["qcore"] >= max(hv["oneshot_dp"], hv["greedy"])
    assert wins >= 8, (wins, totals)
    assert totals["qcore"] > 1.05 * max(totals["oneshot_dp"], totals["greedy"]), totals


def test_reference_start_spends_the_first_points_where_they_can_dominate():
    """With a reference metric, qcore's first evaluation is the costliest proxy-front point cheaper than the
    reference cost (a point at the reference cost bounds no hypervolume), no initial point is at or above
    it, and no initial point is cheaper than a proxy-front point already below the reference
    metric (along the proxy front the metric only falls as cost falls in this space)."""
    cost, proxy, metric = saturating(3)
    rc = cost[:, 1].sum()
    space = qcore.SearchSpace([cost.shape[1]] * len(cost), cost=cost, proxy=proxy)
    front = qcore.dp_front(space, cost_buckets=1024)
    on_front = {tuple(int(c) for c in choice): float(k) for choice, k in zip(front.choices, front.cost)}
    search = qcore.Search(space, max_evaluations=16, reference_cost=rc, reference_metric=0.95, initial_points=6)
    floor = -np.inf
    for step in range(6):  # six initial points (the default with a reference metric is two)
        choice, fidelity = search.ask()
        key = tuple(int(c) for c in choice)
        assert key in on_front and on_front[key] < rc and on_front[key] > floor, (step, key, floor)
        if step == 0:
            assert on_front[key] == max(k for k in on_front.values() if k < rc)
        value = float(metric(np.array(key)))
        if value < 0.95:
            floor = max(floor, on_front[key])
        search.tell(choice, fidelity, value)


def test_ask_tell_respects_constraints_check_and_cache():
    rng = np.random.default_rng(11)
    for algorithm in ["qcore", "random", "greedy", "oneshot_dp"]:
        space, counts, cost, proxy, rules = random_space(rng, tensors=6)
        space.set_check(lambda choice, c: bool(choice[1] != 1))
        search = qcore.Search(space, algorithm=algorithm, seed=3, max_evaluations=20, fidelities=[0.5, 1.0])
        seen = set()
        while (asked := search.ask()) is not None:
            choice, fidelity = asked
            key = (tuple(int(c) for c in choice), fidelity)
            assert key not in seen, (algorithm, key)
            seen.add(key)
            assert allowed(choice, rules) and choice[1] != 1, (algorithm, choice)
            search.tell(choice, fidelity, -sum(proxy[t][c] for t, c in enumerate(choice)))
        assert len(seen) > 0
        assert sum(1 for _, f in seen if f == 1) <= 20


def test_same_seed_same_run_and_json(tmp_path):
    a, _ = run_synthetic("qcore", 4, budget=16)
    b, _ = run_synthetic("qcore", 4, budget=16)
    ea, eb = a.evaluations(), b.evaluations()
    np.testing.assert_array_equal(ea.choices, eb.choices)
    np.testing.assert_array_equal(a.front().metric, b.front().metric)
    path = tmp_path / "search.json"
    a.to_json(path)
    doc = json.loads(path.read_text())
    front, predicted = a.front(), a.predicted_front()
    assert doc["algorithm"] == "qcore" and len(doc["evaluations"]) == len(ea) == 16
    assert doc["prior_width"] == 1.0  # the default (0) resolved
    np.testing.assert_array_equal([p["choice"] for p in doc["front"]], front.choices)
    np.testing.assert_allclose([p["metric"] for p in doc["front"]], front.metric)
    np.testing.assert_allclose([p["cost"] for p in doc["predicted_front"]], predicted.cost)
    assert len(predicted) > len(front)
    assert [p.name for p in tmp_path.iterdir()] == ["search.json"]  # no temporary file left


def test_bad_input_and_callback_errors():
    with pytest.raises(qcore.InvalidArgumentError, match="num_tensors"):
        qcore.SearchSpace([])
    with pytest.raises(qcore.InvalidArgumentError, match="tensor 1 has 0 candidates"):
        qcore.SearchSpace([2, 0])
    space = qcore.SearchSpace([2, 3])
    with pytest.raises(qcore.NumericError, match="cost"):
        space.set_cost(0, 0, float("nan"))
    with pytest.raises(qcore.InvalidArgumentError, match="candidate"):
        space.set_proxy(0, 2, 1.0)
    with pytest.raises(qcore.InvalidArgumentError, match="candidates"):
        space.tie([0, 1])
    search = qcore.Search(space, max_evaluations=4)
    with pytest.raises(qcore.NumericError, match="metric"):
        search.tell([0, 0], 0, float("nan"))
    with pytest.raises(qcore.InvalidArgumentError, match="choice"):
        search.tell([0, 3], 0, 1.0)

    def failing(choice, fidelity_index, fidelity):
        raise RuntimeError("evaluation failed")

    with pytest.raises(RuntimeError, match="evaluation failed"):
        search.run(failing)
    space.forbid([0], [0])
    space.forbid([0], [1])
    with pytest.raises(qcore.InvalidArgumentError, match="forbidden"):
        qcore.Search(space)
    checked = qcore.SearchSpace([2, 2])
    checked.set_check(lambda choice, cost: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        qcore.Search(checked).ask()


def test_parallel_asks_are_distinct_and_check_cost_is_used():
    cost, truth, proxy = synthetic(2, tensors=8)
    space = qcore.SearchSpace([6] * 8, cost=cost, proxy=proxy)
    space.set_check(lambda choice, additive: 2 * additive + 1)  # a non-additive true cost
    search = qcore.Search(space, max_evaluations=12, seed=1)
    asked = [search.ask() for _ in range(6)]  # six workers, nothing told yet
    assert len({tuple(int(c) for c in choice) for choice, _ in asked}) == 6
    t = np.arange(8)
    while asked:
        for choice, fidelity in asked:
            search.tell(choice, fidelity, 1 - truth[t, choice.astype(np.int64)].sum())
        asked = [a for a in [search.ask()] if a is not None]
    evals = search.evaluations()
    assert len(evals) == 12
    np.testing.assert_allclose(evals.cost, 2 * cost[t, evals.choices.astype(np.int64)].sum(axis=1) + 1)


def direct_posterior(counts, proxy, choices, metric, noise, width):
    """The surrogate's posterior mean (surrogate.c's documented model and prior) by numpy: features
    [1, -summed proxy, -proxy_t per tensor, -1 per chosen entry]; m0, alpha from the least-squares line of
    metric on summed proxy; prior std 10 (|m0| + 1), 10 alpha, width alpha per tensor scale and
    alpha (width 0.5 proxy + 0.01 mean non-zero proxy) per entry."""
    offset = np.concatenate([[0], np.cumsum(counts)])
    flat = np.concatenate(proxy)
    tensors, params = len(counts), 2 + len(counts) + int(offset[-1])

    def features(choice):
        x = np.zeros(params)
        x[0], x[1] = 1, -sum(flat[offset[t] + c] for t, c in enumerate(choice))
        for t, c in enumerate(choice):
            x[2 + t], x[2 + tensors + offset[t] + c] = -flat[offset[t] + c], -1
        return x

    x = np.array([features(c) for c in choices])
    slope = np.polyfit(-x[:, 1], metric, 1)[0]
    alpha = -slope if slope < 0 else 1e-6
    m0 = np.mean(metric) + alpha * np.mean(-x[:, 1])
    sd = np.concatenate([[10 * (abs(m0) + 1), 10 * alpha], np.full(tensors, width * alpha + 1e-12),
                         alpha * (width * 0.5 * flat + 0.01 * flat[flat > 0].mean()) + 1e-12])
    prior_mean = np.zeros(params)
    prior_mean[:2] = m0, alpha
    a = np.diag(sd ** -2.0) + x.T @ x / noise ** 2
    beta = np.linalg.solve(a, prior_mean * sd ** -2.0 + x.T @ metric / noise ** 2)
    return lambda choice: features(choice) @ beta


def test_a_proposal_expected_to_gain_comes_before_a_long_shot():
    """After the two initial points, whenever some single-tensor move from the evaluated front has a
    predicted mean (numpy's posterior, held under the documented monotone cap) that itself adds hypervolume
    (by an independent sweep), the configuration qcore asks has one too: expected gains come before the
    long shots that expected improvement alone may rank higher."""
    cost, proxy, metric = saturating(5, tensors=4)
    rows, counts, noise = np.arange(len(cost)), [cost.shape[1]] * len(cost), 1e-3
    rc, rm = cost[:, 1].sum(), 0.95
    space = qcore.SearchSpace(counts, cost=cost, proxy=proxy)
    search = qcore.Search(space, max_evaluations=14, reference_cost=rc, reference_metric=rm, noise=noise)
    told, checked = [], 0

    def gain(mean_of, front, choice):
        if any(tuple(choice) == tuple(c) for c, _ in told):
            return None
        cap = min([m + 3 * noise for c, m in told if np.all(proxy[rows, choice] >= proxy[rows, c])] + [np.inf])
        if cap < rm:
            return None
        point = (cost[rows, choice].sum(), min(mean_of(choice), cap))
        return swept_hypervolume(front + [point], rc, rm) - swept_hypervolume(front, rc, rm)

    while (asked := search.ask()) is not None:
        choice = asked[0].astype(np.int64)
        if len(told) >= 2:
            mean_of = direct_posterior(counts, list(proxy), [c for c, _ in told], np.array([m for _, m in told]),
                                       noise, 1.0)
            points = [(cost[rows, c].sum(), m) for c, m in told]
            front = [p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)]
            moves = [np.where(rows == t, b, c) for c, m in told if (cost[rows, c].sum(), m) in front
                     for t in rows for b in range(cost.shape[1]) if b != c[t]]
            best = max([g for g in (gain(mean_of, front, mv) for mv in moves) if g is not None] + [0.0])
            if best > 1e-6 * rc:
                checked += 1
                assert gain(mean_of, front, choice) > 1e-9 * rc, (len(told), choice, best)
        told.append((choice, float(metric(choice))))
        search.tell(asked[0], asked[1], told[-1][1])
    assert checked >= 3


def test_prior_width_scales_the_documented_prior():
    """The predicted front's metrics after the same evaluations are the numpy posterior's means at
    prior_width 1 (and 0, its default) and 0.5, and the two widths predict differently."""
    rng = np.random.default_rng(4)
    counts = [4] * 5
    proxy = [np.concatenate([[0.0], np.sort(rng.uniform(0.01, 0.2, 3))]) for _ in counts]
    cost = [np.array([32.0, 8, 4, 2]) * rng.integers(1, 9) for _ in counts]
    space = qcore.SearchSpace(counts, cost=cost, proxy=proxy)
    choices = rng.integers(0, 4, (9, len(counts)))
    truth = [p * np.exp(rng.normal(0, 0.5, 4)) for p in proxy]
    metric = np.array([1 - sum(truth[t][c] for t, c in enumerate(choice)) for choice in choices])
    predicted = {}
    for width in (0.0, 1.0, 0.5):
        search = qcore.Search(space, max_evaluations=20, noise=1e-3, prior_width=width)
        for choice, m in zip(choices, metric):
            search.tell(choice, 0, m)
        front = search.predicted_front()
        direct = direct_posterior(counts, proxy, choices, metric, 1e-3, width or 1.0)
        for choice, m in zip(front.choices, front.metric):
            assert m == pytest.approx(direct(choice), abs=1e-7), (width, choice)
        predicted[width] = front
    assert np.array_equal(predicted[0.0].metric, predicted[1.0].metric)
    assert np.max(np.abs(predicted[1.0].metric[-3:] - predicted[0.5].metric[-3:])) > 1e-4


def test_prior_width_is_validated():
    space = qcore.SearchSpace([2, 3])
    for bad in (float("nan"), -1.0, 100.5):
        with pytest.raises(qcore.InvalidArgumentError, match="prior_width = .* is outside \\[0, 100\\]"):
            qcore.Search(space, prior_width=bad)
