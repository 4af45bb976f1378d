"""ONNX conformance of qcore's executor on Debian's libonnx-testdata: every model whose ops the executor
covers runs on each of its test data sets and must match the stored outputs (rtol 1e-4, atol 1e-5).

Run as a script for the full report: python tests/python/conformance.py"""
import glob
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

import qcore

ROOT = "/usr/share/libonnx-testdata/data"
FOLDERS = ("node", "pytorch-converted", "pytorch-operator", "simple")
RTOL, ATOL = 1e-4, 1e-5


def model_dirs():
    return sorted(d for f in FOLDERS for d in glob.glob(os.path.join(ROOT, f, "*")) if os.path.isfile(os.path.join(d, "model.onnx")))


def load_tensor(path):
    t = onnx.load_tensor(path)
    return t.name, numpy_helper.to_array(t)


def as_qcore_input(array):
    """qcore takes BOOL as uint8 and needs C-contiguous arrays."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def check_model(directory):
    """('not covered', reason) when the executor lacks an op; ('pass', '') or ('fail', reason) otherwise."""
    try:
        model = qcore.Model(os.path.join(directory, "model.onnx"))
        session = qcore.Session(model, qcore.Context(threads=1))
    except qcore.UnsupportedError as e:
        return "not covered", str(e)
    except qcore.QcoreError as e:
        return "fail", "%s: %s" % (type(e).__name__, e)
    input_names = [i.name for i in model.inputs]
    sets = sorted(glob.glob(os.path.join(directory, "test_data_set_*")))
    if not sets:
        return "not covered", "no test data"
    for data_set in sets:
        try:
            inputs = [load_tensor(p) for p in sorted(glob.glob(os.path.join(data_set, "input_*.pb")), key=_index)]
            expected = [load_tensor(p) for p in sorted(glob.glob(os.path.join(data_set, "output_*.pb")), key=_index)]
        except (ValueError, onnx.onnx_cpp2py_export.checker.ValidationError, Exception) as e:
            return "not covered", "test data holds sequences or maps, not tensors (%s)" % type(e).__name__
        feed = {(name or input_names[k]): as_qcore_input(a) for k, (name, a) in enumerate(inputs)}
        try:
            got = session.run(feed)
        except qcore.QcoreError as e:
            return "fail", "%s: %s" % (type(e).__name__, e)
        for k, (name, want) in enumerate(expected):
            have = got[name or session.output_names[k]]
            if want.dtype == np.bool_:
                want = want.astype(np.uint8)
            if have.shape != want.shape:
                return "fail", "output %s has shape %s, expected %s" % (name, have.shape, want.shape)
            if want.dtype.kind in "fc":
                ok = np.allclose(have, want, rtol=RTOL, atol=ATOL, equal_nan=True)
            else:
                ok = np.array_equal(have, want)
            if not ok:
                diff = np.max(np.abs(have.astype(np.float64) - want.astype(np.float64))) if have.size else 0
                return "fail", "output %s differs (max abs diff %.3g)" % (name, diff)
    return "pass", ""


def _index(path):
    return int(os.path.basename(path).split("_")[1].split(".")[0])


def run_all():
    results = {}
    for d in model_dirs():
        results[os.path.relpath(d, ROOT)] = check_model(d)
    return results


def main():
    results = run_all()
    covered = {k: v for k, v in results.items() if v[0] != "not covered"}
    passed = [k for k, v in covered.items() if v[0] == "pass"]
    for k, (status, reason) in sorted(covered.items()):
        if status == "fail":
            print("FAIL %s: %s" % (k, reason))
    print("%d models, %d covered, %d passed (%.1f%%)" % (len(results), len(covered), len(passed),
                                                          100.0 * len(passed) / max(1, len(covered))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
