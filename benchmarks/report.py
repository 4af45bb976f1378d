"""Writing a benchmark's JSON result: atomically (temporary file, then rename) into benchmarks/results/."""
import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_json(result, filename):
    """Writes `result` to benchmarks/results/`filename` and returns the path."""
    out = os.path.join(RESULTS, filename)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    return out
