"""Mixed-precision search on synthetic problems with a known truth: the hypervolume of the evaluated
(cost, metric) front against the number of full evaluations, for qcore's search, random search, greedy
sensitivity (AIMET-AMP-like), the one-shot proxy DP (HAWQ-like) and Optuna's TPE sampler (multi-objective),
over several seeds. Writes benchmarks/results/search_synthetic.json and prints a table.

Problems (T tensors, candidates float/8/6/4/3/2 bits, cost = bytes):
  additive:     metric = 1 - sum_t s_t * e(bits_t) + noise
  interaction:  additive + pairwise terms between neighbouring tensors (gamma * l_t * l_{t+1} / mean l),
                which the additive surrogate cannot represent exactly.
  noisy:        additive, measured with noise 0.003 / sqrt(fidelity) (a metric over a sample of the
                evaluation set); here also "qcore_sh", qcore's search with fidelities 0.1 / 0.3 / 1 (successive
                halving), and every front is scored with the true metric of its configurations; "work" is the
                sum of the fidelities evaluated (full evaluations = 1 each).
Proxies are the true single-tensor losses times a log-normal distortion (sigma 0.7): ordered roughly right,
wrong by up to ~2x per entry. Hypervolumes use the reference (all-8-bit cost, float metric - 0.05) and are divided by the
hypervolume of the exact front (the DP on the additive truth, or a large DP+local search for interaction),
so 1.0 is the best possible.

    python benchmarks/bench_search_synthetic.py [--seeds 5] [--budgets 16,32,64,128] [--no-optuna]
"""
import argparse
import time

import numpy as np

import qcore
import report

BITS = np.array([32, 8, 6, 4, 3, 2])
REFERENCE_METRIC = 0.95  # float - 5 points
REFERENCE_COLUMN = 1  # all tensors at 8 bits: the reference cost


def make_problem(seed, kind, tensors=24):
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 64, tensors).astype(float) * 1000
    cost = size[:, None] * BITS[None, :] / 8
    sens = np.exp(rng.normal(0, 1.0, tensors))
    err = np.where(BITS >= 32, 0.0, 4.0 ** (-(BITS - 2.0)))
    truth = 0.02 * sens[:, None] * err[None, :]
    proxy = truth * np.exp(rng.normal(0, 0.7, truth.shape))
    gamma = 0.5 if kind == "interaction" else 0.0
    return {"cost": cost, "truth": truth, "proxy": proxy, "gamma": gamma, "seed": seed, "noisy": kind == "noisy"}


def true_metric(p, choice):
    t = np.arange(len(choice))
    loss = p["truth"][t, choice]
    value = 1 - loss.sum()
    if p["gamma"]:
        scale = p["truth"][:, 1:].mean()
        value -= p["gamma"] * (loss[:-1] * loss[1:]).sum() / scale
    return value


def space_of(p):
    tensors, candidates = p["cost"].shape
    return qcore.SearchSpace([candidates] * tensors, cost=p["cost"], proxy=p["proxy"])


def exact_hypervolume(p, rc):
    """The best front's hypervolume: the DP on the truth (exact for the additive problem; for the
    interaction problem, the DP on the additive part re-scored with the true metric, plus every
    evaluated front later, whichever is larger)."""
    tensors, candidates = p["cost"].shape
    space = qcore.SearchSpace([candidates] * tensors, cost=p["cost"], proxy=p["truth"])
    front = qcore.dp_front(space, cost_buckets=1 << 14)
    metric = [true_metric(p, c.astype(np.int64)) for c in front.choices]
    return qcore.hypervolume(front.cost, metric, rc, REFERENCE_METRIC)


def noise_std(p, fidelity):
    return (0.003 if p["noisy"] else 1e-4) / np.sqrt(fidelity)


def run_qcore(p, algorithm, budget, seed):
    space = space_of(p)
    fidelities = [0.1, 0.3, 1.0] if algorithm == "qcore_sh" else None
    search = qcore.Search(space, algorithm=algorithm.replace("_sh", ""), seed=seed, max_evaluations=budget,
                          fidelities=fidelities, reference_cost=p["cost"][:, REFERENCE_COLUMN].sum(),
                          reference_metric=REFERENCE_METRIC)
    noise = np.random.default_rng(seed + 1000)
    spent, work = [0.0], [0.0]

    def evaluate(choice, fidelity_index, fidelity):
        t = time.perf_counter()
        value = true_metric(p, choice.astype(np.int64)) + noise_std(p, fidelity) * noise.standard_normal()
        spent[0] += time.perf_counter() - t
        work[0] += fidelity
        return value

    start = time.perf_counter()
    search.run(evaluate)
    total = time.perf_counter() - start
    evals = search.evaluations()
    full = evals.fidelity_index == len(fidelities or [1]) - 1
    return evals.cost[full], scored(p, evals.choices[full], evals.metric[full]), total - spent[0], work[0]


def scored(p, choices, measured):
    """The metric a front is judged by: as measured, or the truth when measurements are noisy."""
    return np.array([true_metric(p, c.astype(np.int64)) for c in choices]) if p["noisy"] else np.asarray(measured)


def run_optuna(p, budget, seed):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tensors, candidates = p["cost"].shape
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    noise = np.random.default_rng(seed + 1000)
    costs, metrics, choices, spent = [], [], [], 0.0
    start = time.perf_counter()
    for _ in range(budget):
        trial = study.ask()
        choice = np.array([trial.suggest_int("t%d" % t, 0, candidates - 1) for t in range(tensors)])
        t0 = time.perf_counter()
        cost = p["cost"][np.arange(tensors), choice].sum()
        metric = true_metric(p, choice) + noise_std(p, 1.0) * noise.standard_normal()
        spent += time.perf_counter() - t0
        study.tell(trial, [cost, metric])
        costs.append(cost)
        metrics.append(metric)
        choices.append(choice)
    return np.array(costs), scored(p, choices, metrics), time.perf_counter() - start - spent, float(budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="16,32,64,128")
    parser.add_argument("--no-optuna", action="store_true")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    algorithms = ["qcore", "random", "greedy", "oneshot_dp"] + ([] if args.no_optuna else ["optuna_tpe"])
    rows = []
    kinds = ["additive", "interaction", "noisy"]
    for kind in kinds:
        for seed in range(args.seeds):
            p = make_problem(seed, kind)
            rc = p["cost"][:, REFERENCE_COLUMN].sum()
            best = exact_hypervolume(p, rc)
            for algorithm in algorithms + (["qcore_sh"] if kind == "noisy" else []):
                for budget in budgets:
                    if algorithm == "optuna_tpe":
                        cost, metric, search_time, work = run_optuna(p, budget, seed)
                    else:
                        cost, metric, search_time, work = run_qcore(p, algorithm, budget, seed)
                    hv = qcore.hypervolume(cost, metric, rc, REFERENCE_METRIC)
                    best = max(best, hv)
                    rows.append({"problem": kind, "seed": seed, "algorithm": algorithm, "budget": budget,
                                 "evaluations": len(cost), "work": work, "hypervolume": hv, "search_seconds": search_time,
                                 "exact_hypervolume": None})
            for row in rows:
                if row["problem"] == kind and row["seed"] == seed:
                    row["exact_hypervolume"] = best
                    row["normalised"] = row["hypervolume"] / best
    summary = []
    print("%-12s %-11s" % ("problem", "algorithm") + "".join("%17s" % ("n=%d" % b) for b in budgets) + "  search s/run")
    for kind in kinds:
        for algorithm in algorithms + (["qcore_sh"] if kind == "noisy" else []):
            line = "%-12s %-11s" % (kind, algorithm)
            seconds, works = [], []
            for budget in budgets:
                values = [r["normalised"] for r in rows
                          if r["problem"] == kind and r["algorithm"] == algorithm and r["budget"] == budget]
                seconds += [r["search_seconds"] for r in rows
                            if r["problem"] == kind and r["algorithm"] == algorithm and r["budget"] == budget]
                work = float(np.mean([r["work"] for r in rows if r["problem"] == kind and r["algorithm"] == algorithm
                                      and r["budget"] == budget]))
                works.append("%.0f" % work)
                summary.append({"problem": kind, "algorithm": algorithm, "budget": budget, "mean_work": work,
                                "mean": float(np.mean(values)), "std": float(np.std(values))})
                line += "   %.4f+-%.4f" % (np.mean(values), np.std(values))
            print(line + "  %.3f  work %s" % (np.mean(seconds), "/".join(works)))
    report.write_json("search_synthetic.json", {
        "benchmark": "search_synthetic", "machine": report.machine(qcore), "seeds": args.seeds, "budgets": budgets,
        "reference_metric": REFERENCE_METRIC, "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
