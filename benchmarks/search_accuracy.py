"""Evidence for the mixed-precision search (issue 8): the hypervolume of the evaluated (bytes, metric) front
against the number of full evaluations, for qcore's search and the baselines, on real models.

Models (qcore.ModelSearch: every layer's weight quantized once per width by one-pass OPTQ, configurations
evaluated by qcore's executor with the weights swapped in place):
  cnn     the project's Fashion-MNIST CNN; per-tensor 8-bit activations; top-1 accuracy on 2000 test images
          (4 batches); its 216 configurations are also enumerated, giving the true front.
  minilm  all-MiniLM-L6-v2 (36 linear layers); weights only (activations float); mean cosine of the
          sentence embeddings to the float model's over held-out sentences (4 batches).
Candidate widths: float, 8, 6, 4, 3, 2 bits (per-channel symmetric). Cost: stored weight bytes.
Proxies (what the proxy-driven methods start from): "layer", each layer's own squared relative output error at
a width (qc_layer_report.output_error, from the candidates' one pass); "model", each candidate alone in the model
on the first --proxy-batches calibration batches, the squared relative error of the evaluated output, each
sample's to the nearest non-negative multiple of the float output (qcore.ModelSearch(proxy="model")); "model_scaled" (the default), the same at each layer's lowest width only,
the other widths scaled by the layer's own error ratios. The model proxy's passes run on the first --proxy-batches
batches of --proxy-data: "evaluation" (the default; ModelSearch.measure_proxy on the evaluation batches) or
"calibration" (at creation, on the data OPTQ fitted the candidates on; results then go to
search_<model>_calibration_proxy.json). They are not full evaluations: their time and count are reported apart
("model_proxy" in the JSON), also as the number of full evaluations the same time would have paid for.
Reference point: the all-8-bit configuration's bytes and the float configuration's metric minus 0.05.

Methods (same evaluation cache, so a configuration is never evaluated twice across methods and seeds; every
qcore.Search but qcore-noref is told the reference point; qcore's search is deterministic, so its seeds agree):
  qcore       qcore.Search(algorithm="qcore"), one fidelity, on the --proxy space, with the prior width
              qc_model_search_run gives that proxy (0.5 for model and model_scaled, 1 for layer)
  qcore-noref the same, not told the reference point (it resolves its own from the space and the first
              evaluations; the hypervolume is still measured against the benchmark's)
  qcore-sh    the same as qcore with successive halving over two fidelities (a quarter of the evaluation batches,
              then all); its cheap evaluations are reported as full-evaluation equivalents
  random      qcore.Search(algorithm="random")
  greedy      qcore.Search(algorithm="greedy")  (AIMET-AMP-like), on the layer proxy
  oneshot-dp  qcore.Search(algorithm="oneshot_dp")  (HAWQ-like proxy DP, spread points), on the layer proxy
  greedy-model, oneshot-dp-model  the same on the --proxy space (model or model_scaled): the baselines given
              qcore's better proxy, so the gain of the search itself is measured apart from the proxy's
  tpe         Optuna's multi-objective TPE sampler (benchmark only: pip install optuna)
Searches whose plan depends on the budget run once per budget; random search and TPE are anytime and run
once at the largest budget, read at each prefix.

Writes benchmarks/results/search_<model>.json and search_<model>.png.
Usage: python benchmarks/search_accuracy.py [--models cnn,minilm] [--seeds 5] [--budgets 16,32,64,128]
                                          [--cache PATH] (evaluations kept in PATH.<model>.pkl across runs)
                                          [--proxy layer|model|model_scaled] [--proxy-batches N]
                                          [--proxy-data evaluation|calibration]
"""
import argparse
import os
import pickle
import sys
import time

import numpy as np

import qcore
from report import machine, write_json
from timing import openblas_kernel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
RESULTS = os.path.join(ROOT, "benchmarks", "results")
FASHION = "/usr/share/datasets/fashion-mnist/"
WIDTHS = (0, 8, 6, 4, 3, 2)
ANYTIME = ("random", "tpe")
MODEL_PROXY_PRIOR_WIDTH = 0.5  # qc_model_search_run's prior_width for a model-level proxy (model_search_run.c)


def fashion_cnn():
    """(pipeline, recipe, evaluation batches with labels, output name, calibration batch sizes)."""
    def images(name, count):
        x = qcore.load_array(FASHION + name).astype(np.float32) / 255
        return np.ascontiguousarray(x[:count].reshape(-1, 1, 28, 28))

    train, test = images("train-images-idx3-ubyte.gz", 512), images("t10k-images-idx3-ubyte.gz", 2000)
    labels = qcore.load_array(FASHION + "t10k-labels-idx1-ubyte.gz")[:2000].astype(np.int64)
    pipe = qcore.Pipeline(qcore.Model(os.path.join(ROOT, "tests", "data", "models", "fashion_cnn.onnx")))
    for k in range(0, 512, 256):
        pipe.add_batch({"input": train[k:k + 256]})
    evaluation = [({"input": test[k:k + 500]}, labels[k:k + 500]) for k in range(0, 2000, 500)]
    return pipe, qcore.Recipe(method="optq", activation_bits=8), evaluation, None, [256, 256]


def minilm(sentences):
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    from minilm_tokenizer import encode

    def lines(name, count):
        with open(os.path.join(ROOT, "tests", "data", "text", name), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()][:count]

    calibration, heldout = lines("calibration.txt", 64), lines("heldout.txt", sentences)
    pipe = qcore.Pipeline(qcore.Model(os.path.join(ROOT, "build", "models", "minilm.onnx")))
    for k in range(0, len(calibration), 16):
        pipe.add_batch(encode(calibration[k:k + 16]))
    step = max(1, sentences // 4)
    evaluation = [(encode(heldout[k:k + step]), None) for k in range(0, sentences, step)]
    return pipe, qcore.Recipe(method="optq", activation_bits=0), evaluation, "sentence_embedding", \
        [len(calibration[k:k + 16]) for k in range(0, len(calibration), 16)]


class Evaluator:
    """Cached evaluations of one model search: (choice, fraction) -> metric, with the time each took. With a
    cache file, evaluations (and their times) persist across runs of the same model and widths, so a rerun
    after a change to the search evaluates only the configurations it has not met before."""

    def __init__(self, search, path=None):
        self.search, self.cache, self.seconds, self.path = search, {}, [], path
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                self.cache, self.seconds = pickle.load(f)

    def __call__(self, choice, fraction=1.0):
        key = (tuple(int(c) for c in choice), fraction)
        if key not in self.cache:
            start = time.perf_counter()
            self.cache[key] = self.search.evaluate(key[0], fraction)
            self.seconds.append(time.perf_counter() - start)
            if self.path and len(self.seconds) % 50 == 0:
                self.save()
        return self.cache[key]

    def save(self):
        if self.path:
            with open(self.path + ".tmp", "wb") as f:
                pickle.dump((self.cache, self.seconds), f)
            os.replace(self.path + ".tmp", self.path)


def front_of(points):
    """The non-dominated (cost, metric) points."""
    points = sorted(set(points), key=lambda p: (p[0], -p[1]))
    front, best = [], -np.inf
    for cost, metric in points:
        if metric > best:
            front.append((cost, metric))
            best = metric
    return front


def hypervolume(points, ref):
    if not points:
        return 0.0
    cost, metric = np.array(points, dtype=np.float64).T
    return qcore.hypervolume(np.ascontiguousarray(cost), np.ascontiguousarray(metric), *ref)


def run_library(space, algorithm, seed, budget, evaluate, fidelities, ref, told=True, prior_width=0.0):
    """A qcore.Search run by ask/tell, told the benchmark's reference point (as every library method is)
    unless told=False; returns (full-fidelity points in order, full-evaluation equivalents, seconds in the
    search itself)."""
    search = qcore.Search(space, algorithm=algorithm, seed=seed, max_evaluations=budget, fidelities=fidelities,
                          reference_cost=ref[0] if told else None, reference_metric=ref[1] if told else None,
                          prior_width=prior_width)
    points, equivalents, own = [], 0.0, 0.0
    fractions = fidelities or [1.0]
    while True:
        start = time.perf_counter()
        asked = search.ask()
        own += time.perf_counter() - start
        if asked is None:
            break
        choice, level = asked
        metric = evaluate(choice, fractions[level])
        equivalents += fractions[level]
        start = time.perf_counter()
        search.tell(choice, level, metric)
        own += time.perf_counter() - start
        if level == len(fractions) - 1:
            points.append((space.evaluate(choice)[0], metric))
    return points, equivalents, own


def run_tpe(space, candidates, seed, budget, evaluate):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"],
                                sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True))
    points, own = [], 0.0
    for _ in range(budget):
        start = time.perf_counter()
        trial = study.ask()
        choice = [trial.suggest_categorical("t%d" % t, list(range(len(row)))) for t, row in enumerate(candidates)]
        own += time.perf_counter() - start
        cost, metric = space.evaluate(choice)[0], evaluate(choice)
        start = time.perf_counter()
        study.tell(trial, [cost, metric])
        own += time.perf_counter() - start
        points.append((cost, metric))
    return points, float(budget), own


def space_of(search, proxy="layer"):
    """The space over the search's candidates with the layer proxy, or the search's own (proxy="model")."""
    costs = [[c.bytes for c in row] for row in search.candidates]
    proxies = [[c.output_error ** 2 if proxy == "layer" else c.proxy for c in row] for row in search.candidates]
    labels = [["%s:%s" % (c.weight, "float" if c.bits == 0 else "w%d" % c.bits) for c in row] for row in search.candidates]
    return qcore.SearchSpace([len(row) for row in search.candidates], cost=costs, proxy=proxies, labels=labels)


METHODS = {
    "qcore": lambda s, c, seed, b, ev, ref, w: run_library(s, "qcore", seed, b, ev, None, ref, prior_width=w),
    "qcore-noref": lambda s, c, seed, b, ev, ref, w: run_library(s, "qcore", seed, b, ev, None, ref, False, w),
    "qcore-sh": lambda s, c, seed, b, ev, ref, w: run_library(s, "qcore", seed, b, ev, [0.25, 1.0], ref,
                                                              prior_width=w),
    "random": lambda s, c, seed, b, ev, ref: run_library(s, "random", seed, b, ev, None, ref),
    "greedy": lambda s, c, seed, b, ev, ref: run_library(s, "greedy", seed, b, ev, None, ref),
    "oneshot-dp": lambda s, c, seed, b, ev, ref: run_library(s, "oneshot_dp", seed, b, ev, None, ref),
    "greedy-model": lambda s, c, seed, b, ev, ref: run_library(s, "greedy", seed, b, ev, None, ref),
    "oneshot-dp-model": lambda s, c, seed, b, ev, ref: run_library(s, "oneshot_dp", seed, b, ev, None, ref),
    "tpe": lambda s, c, seed, b, ev, ref: run_tpe(s, c, seed, b, ev),
}


def true_front(search, evaluate):
    """Every configuration (small spaces only)."""
    import itertools
    points = [(search.cost(c), evaluate(c)) for c in itertools.product(*[range(len(r)) for r in search.candidates])]
    return front_of(points)


def measure_model_proxy(pipe, recipe, output, search, calibration, evaluation, args):
    """The model proxy's figures: on the calibration data, a second ModelSearch (the same candidates again, then the
    passes; returned as "search"); on the evaluation data, measured on `search` itself (measure_proxy)."""
    marks = {}  # on calibration data, the passes are what follows the candidates' last progress report

    def progress(stage, done, total):
        marks[stage] = time.perf_counter()

    pipe.ctx.progress = progress
    start = time.perf_counter()
    if args.proxy_data == "evaluation":
        search.measure_proxy(args.proxy, args.proxy_batches)
        with_model, sizes = search, [len(inputs[next(iter(inputs))]) for inputs, _ in evaluation]
    else:
        with_model = qcore.ModelSearch(pipe, recipe, widths=WIDTHS, output=output, proxy=args.proxy,
                                       proxy_batches=args.proxy_batches)
        sizes = calibration
    end = time.perf_counter()
    pipe.ctx.progress = None
    proxy_s = end - (start if args.proxy_data == "evaluation" else marks["quantizing candidates"])
    batches = sizes[:args.proxy_batches or len(sizes)]
    measured = sum(1 for w in WIDTHS if w) if args.proxy == "model" else 1  # widths run per layer
    passes = len(batches) * (1 + len(search.candidates) * measured)  # + the float reference
    return {"data": args.proxy_data, "batches": len(batches), "samples": sum(batches), "executor_passes": passes,
            "samples_run": passes // len(batches) * sum(batches), "measure_s": end - start, "proxy_s": proxy_s,
            "search": with_model}


def run_model(name, args):
    setup = fashion_cnn if name == "cnn" else lambda: minilm(args.sentences)
    start = time.perf_counter()
    pipe, recipe, evaluation, output, calibration = setup()
    created = time.perf_counter()
    search = qcore.ModelSearch(pipe, recipe, widths=WIDTHS, output=output, proxy="layer")
    created = time.perf_counter() - created
    for inputs, labels in evaluation:
        search.add_batch(inputs, labels=labels)
    prepare = time.perf_counter() - start
    evaluate = Evaluator(search, args.cache and "%s.%s.pkl" % (args.cache, name))
    spaces = {"layer": space_of(search)}
    model_proxy = None
    if args.proxy != "layer":
        model_proxy = measure_model_proxy(pipe, recipe, output, search, calibration, evaluation, args)
        spaces["model"] = space_of(model_proxy.pop("search"), "model")
        model_proxy["create_with_layer_proxy_s"] = created
    layers = len(search.candidates)
    eight = search.cost([WIDTHS.index(8)] * layers)
    ref = (float(eight), evaluate([0] * layers) - 0.05)
    out = {"model": name, "layers": layers, "widths": WIDTHS, "configurations": len(WIDTHS) ** layers,
           "reference_point": ref, "float_metric": ref[1] + 0.05, "prepare_s": prepare, "seeds": args.seeds,
           "budgets": args.budgets, "methods": {}, "machine": machine(qcore), "openblas": openblas_kernel(),
           "proxy": args.proxy, "proxy_data": args.proxy_data, "model_proxy": model_proxy}
    if name == "cnn":
        best = true_front(search, evaluate)
        out["true_front"] = best
        out["true_hypervolume"] = hypervolume(best, ref)
    for method in args.methods:
        if method.endswith("-model") and "model" not in spaces:
            continue
        model_space = method.endswith("-model") or (method.startswith("qcore") and args.proxy != "layer")
        space = spaces["model" if model_space else "layer"]
        width = MODEL_PROXY_PRIOR_WIDTH if model_space else 0.0  # what qc_model_search_run resolves 0 to
        call = METHODS[method] if method.startswith("qcore") else lambda *a: METHODS[method](*a[:-1])
        rows = []
        for seed in range(args.seeds):
            if method in ANYTIME:
                points, equivalents, own = call(space, search.candidates, seed, max(args.budgets), evaluate, ref,
                                                width)
                runs = {b: (points[:b], float(min(b, len(points))), own * b / max(args.budgets)) for b in args.budgets}
            else:
                runs = {b: call(space, search.candidates, seed, b, evaluate, ref, width) for b in args.budgets}
            for budget, (points, equivalents, own) in runs.items():
                rows.append({"seed": seed, "budget": budget, "full_evaluations": equivalents, "search_s": own,
                             "hypervolume": hypervolume(front_of(points), ref), "front": front_of(points)})
            print("%-7s %-10s seed %d: %s" % (name, method, seed, "  ".join(
                "%d: %.4g" % (r["budget"], r["hypervolume"]) for r in rows[-len(args.budgets):])), flush=True)
        out["methods"][method] = rows
        evaluate.save()
    out["evaluation_s_mean"] = float(np.mean(evaluate.seconds)) if evaluate.seconds else 0.0
    out["distinct_evaluations"] = len(evaluate.cache)
    if model_proxy:  # what the proxy passes cost, counted in full evaluations of the same time
        model_proxy["full_evaluation_equivalents"] = model_proxy["proxy_s"] / out["evaluation_s_mean"]
    if args.no_json:
        return
    summarize(out)
    qcore_16, dp_best = out["summary"]["qcore"][str(args.budgets[0])][0], max(
        v[0] for v in out["summary"].get("oneshot-dp", {"": (0,)}).values())
    out["qcore_at_first_budget_vs_best_oneshot_dp"] = qcore_16 / dp_best if dp_best else None
    if "oneshot-dp-model" in out["summary"]:
        dp_model = max(v[0] for v in out["summary"]["oneshot-dp-model"].values())
        out["qcore_at_first_budget_vs_best_oneshot_dp_model"] = qcore_16 / dp_model if dp_model else None
    print("qcore at %d evaluations / best one-shot DP: %s%s" % (args.budgets[0], out["qcore_at_first_budget_vs_best_oneshot_dp"],
          "; / best one-shot DP on the model proxy: %s" % out.get("qcore_at_first_budget_vs_best_oneshot_dp_model")
          if "oneshot-dp-model" in out["summary"] else ""))
    if model_proxy:
        print("model proxy: %(executor_passes)d executor passes over %(batches)d %(data)s batches, "
              "%(proxy_s).1f s = %(full_evaluation_equivalents).1f full evaluations' time" % model_proxy)
    stem = "search_%s%s" % (name, "" if args.proxy_data == "evaluation" else "_calibration_proxy")
    write_json(os.path.join(RESULTS, stem + ".json"), out)
    plot(out, os.path.join(RESULTS, stem + ".png"))


def summary(out, method, budget):
    rows = [r for r in out["methods"][method] if r["budget"] == budget]
    hv = [r["hypervolume"] for r in rows]
    return (float(np.mean(hv)), float(np.std(hv)), float(np.mean([r["full_evaluations"] for r in rows])),
            float(np.mean([r["search_s"] for r in rows])))


def best_subset_hypervolume(points, ref, k):
    """The largest hypervolume any k of `points` give (exact: a DP over the front sorted by cost, where each
    point adds the rectangle between its metric and the previous chosen point's, up to the reference cost)."""
    front = [(c, m) for c, m in front_of([tuple(p) for p in points]) if c < ref[0] and m > ref[1]]
    if not front:
        return 0.0
    width = np.array([ref[0] - c for c, _ in front])
    metric = np.array([m for _, m in front])
    best = width * (metric - ref[1])  # best[i]: one point, the last chosen i
    top = best.max()
    for _ in range(1, k):
        gain = best[None, :] + width[:, None] * (metric[:, None] - metric[None, :])  # [i, previous j]
        gain[np.triu_indices(len(front))] = -np.inf  # j before i only
        best = np.maximum(best, gain.max(axis=1))
        top = max(top, best.max())
    return float(top)


def subset_bounds(out):
    """What 16 (the first budget's) points could hold: the best subset of the one-shot DP on the model proxy's
    own largest front, and of every method's evaluated fronts together (seed 0): the first is what any
    16-evaluation method choosing among the DP's configurations could reach of the DP's hypervolume."""
    k, ref, last = out["budgets"][0], out["reference_point"], out["budgets"][-1]
    fronts = {m: [r["front"] for r in rows if r["seed"] == 0] for m, rows in out["methods"].items()}
    bounds = {"points": k, "all_fronts": best_subset_hypervolume([p for f in fronts.values() for r in f for p in r], ref, k)}
    dp = [r["front"] for r in out["methods"].get("oneshot-dp-model", []) if r["seed"] == 0 and r["budget"] == last]
    if dp:
        bounds["oneshot_dp_model_own"] = best_subset_hypervolume(dp[0], ref, k)
        bounds["oneshot_dp_model_own_ratio"] = bounds["oneshot_dp_model_own"] / hypervolume(front_of([tuple(p) for p in dp[0]]), ref)
    return bounds


def summarize(out):
    out["summary"] = {m: {str(b): summary(out, m, b) for b in out["budgets"]} for m in out["methods"]}
    print("\n%s: mean hypervolume (std) over %d seeds; reference %s" % (out["model"], out["seeds"], out["reference_point"]))
    print("(full-evaluation equivalents in brackets where cheap evaluations add to the budget)")
    print("%-11s" % "method" + "".join("%24d" % b for b in out["budgets"]))
    for m, by in out["summary"].items():
        cells = ["%11.5g (%.2g)" % by[str(b)][:2] + (" [%.0f]" % by[str(b)][2] if by[str(b)][2] != b else "      ")
                 for b in out["budgets"]]
        print("%-11s" % m + "".join("%24s" % c for c in cells))
    print("evaluation %.3f s on average; search time per run (s): %s" % (out["evaluation_s_mean"], ", ".join(
        "%s %.2f" % (m, by[str(out["budgets"][-1])][3]) for m, by in out["summary"].items())))
    if "true_hypervolume" in out:
        print("true front (all %d configurations): %.5g" % (out["configurations"], out["true_hypervolume"]))
    out["subset_bound"] = subset_bounds(out)
    print("best %(points)d points of every method's fronts: %(all_fronts).5g" % out["subset_bound"] + (
        "; of the one-shot DP's (model proxy) own: %.5g, %.4f of its hypervolume" % (
            out["subset_bound"]["oneshot_dp_model_own"], out["subset_bound"]["oneshot_dp_model_own_ratio"])
        if "oneshot_dp_model_own" in out["subset_bound"] else ""))


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m, by in out["summary"].items():
        mean = [by[str(b)][0] for b in out["budgets"]]
        std = [by[str(b)][1] for b in out["budgets"]]
        spent = [by[str(b)][2] for b in out["budgets"]]  # cheap evaluations counted as fractions
        ax.errorbar(spent, mean, yerr=std, label=m, marker="o", capsize=3)
    if "true_hypervolume" in out:
        ax.axhline(out["true_hypervolume"], color="k", linestyle=":", label="true front")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("full evaluations")
    ax.set_ylabel("hypervolume (bytes x metric)")
    ax.set_title("%s: mixed-precision search, %d seeds" % (out["model"], out["seeds"]))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cnn,minilm")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budgets", default="16,32,64,128")
    ap.add_argument("--sentences", type=int, default=32, help="MiniLM held-out sentences per evaluation")
    ap.add_argument("--cache", help="keep evaluations in CACHE.<model>.pkl across runs (same widths and data)")
    ap.add_argument("--no-json", action="store_true", help="fill the cache only; write no results")
    ap.add_argument("--proxy", choices=("layer", "model", "model_scaled"), default="model_scaled",
                    help="the space qcore's search starts from")
    ap.add_argument("--proxy-batches", type=int, default=0, help="batches the model proxy runs (0: all)")
    ap.add_argument("--proxy-data", choices=("evaluation", "calibration"), default="evaluation",
                    help="the data the model proxy runs on (ModelSearch.measure_proxy, or at creation)")
    args = ap.parse_args()
    args.methods = args.methods.split(",")
    args.budgets = [int(b) for b in args.budgets.split(",")]
    for name in args.models.split(","):
        run_model(name, args)


if __name__ == "__main__":
    main()
