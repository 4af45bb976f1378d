"""Plots of quantization results as PNG files (matplotlib, imported when a plot is drawn, never by
`import qcore`).

    qcore.plots.accuracy_vs_bytes([("OPTQ", 538152, 0.893), ("OPTQ", 270000, 0.887), ("RTN", 270000, 0.851)],
                                  "size.png", reference=0.894)
    qcore.plots.accuracy_vs_accumulator_bits([("OPTQ+AXE", 16, 0.885), ("OPTQ+AXE", 20, 0.889)], "acc.png")
    qcore.plots.search_fronts({"evaluated": search.front(), "predicted": search.predicted_front()},
                              "front.png", reference=0.894)

Points are (label, x, accuracy); the points of one label form one series, drawn in increasing x. The PNG is
size[0] * dpi by size[1] * dpi pixels and is written atomically (a temporary file beside it, then renamed).
"""
import math
import os
import tempfile


def _series(points, function, positive_x):
    series = {}
    for k, point in enumerate(points):
        if len(point) != 3:
            raise ValueError("%s: point %d is %r; expected (label, x, accuracy)" % (function, k, point))
        label, x, accuracy = point
        if not (isinstance(x, (int, float)) and math.isfinite(x)) or (positive_x and x <= 0):
            raise ValueError("%s: point %d (%r) has x = %r; expected a finite%s number"
                             % (function, k, label, x, " positive" if positive_x else ""))
        if not (isinstance(accuracy, (int, float)) and math.isfinite(accuracy)):
            raise ValueError("%s: point %d (%r) has accuracy %r; expected a finite number" % (function, k, label, accuracy))
        series.setdefault(str(label), []).append((x, accuracy))
    if not series:
        raise ValueError("%s: no points to plot" % function)
    return {label: sorted(values) for label, values in series.items()}


def _draw(points, path, function, xlabel, title, reference, size, dpi, log_x, integer_x, step=False, ylabel="accuracy"):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    from matplotlib.ticker import MaxNLocator

    series = _series(points, function, positive_x=log_x)
    figure = Figure(figsize=size, dpi=dpi)
    axes = figure.add_subplot()
    for label, values in series.items():
        xs, ys = [v[0] for v in values], [v[1] for v in values]
        if step:  # a front: each point's metric holds until the next, costlier point
            axes.step(xs, ys, where="post", marker="o", label=label)
        else:
            axes.plot(xs, ys, marker="o", label=label)
    if reference is not None:
        axes.axhline(reference, color="gray", linestyle="--", label="float")
    if log_x:
        axes.set_xscale("log")
    if integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(suffix=".png.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            figure.savefig(out, format="png", dpi=dpi)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def accuracy_vs_bytes(points, path, title=None, reference=None, size=(6.4, 4.8), dpi=100):
    """Accuracy against model bytes (log scale) from (label, bytes, accuracy) points; `reference`, e.g. the
    float model's accuracy, is drawn as a dashed line. Returns `path`."""
    return _draw(points, path, "qcore.plots.accuracy_vs_bytes", "bytes", title, reference, size, dpi, True, False)


def accuracy_vs_accumulator_bits(points, path, title=None, reference=None, size=(6.4, 4.8), dpi=100):
    """Accuracy against accumulator width P from (label, bits, accuracy) points. Returns `path`."""
    return _draw(points, path, "qcore.plots.accuracy_vs_accumulator_bits", "accumulator bits (P)", title, reference,
                 size, dpi, False, True)


def search_fronts(fronts, path, title=None, reference=None, xlabel="bytes", ylabel="accuracy", size=(6.4, 4.8),
                  dpi=100):
    """Fronts of a mixed-precision search, by label ({label: front}), each a qcore.search.Front (or anything
    with `cost` and `metric` arrays, or a (cost, metric) pair), drawn as staircases against cost on a log
    scale: the evaluated front beside the surrogate's predicted one, or several methods' fronts. Returns
    `path`."""
    points = []
    for label, front in fronts.items():
        cost, metric = (front.cost, front.metric) if hasattr(front, "cost") else front
        if len(cost) != len(metric):
            raise ValueError("qcore.plots.search_fronts: front %r has %d costs and %d metrics"
                             % (label, len(cost), len(metric)))
        points += [(label, float(c), float(m)) for c, m in zip(cost, metric)]
    return _draw(points, path, "qcore.plots.search_fronts", xlabel, title, reference, size, dpi, True, False,
                 step=True, ylabel=ylabel)
