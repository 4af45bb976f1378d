"""Per-head rotations in the recipe (qcore.Recipe(rotate_heads=True), qc_recipe.rotate_heads, version 4):
each attention block's V and O projections found from the graph and rotated by the recipe's kind and
seed. Oracles: the model's own float function (all-MiniLM-L6-v2 rotated with heads, every layer kept in
float, gives the unrotated outputs within 1e-4 in qcore's executor and in onnxruntime on the saved file),
and linear algebra on the weights: V's weight with heads is V's weight without them (same input
rotations) times a block-diagonal matrix B of orthogonal head blocks, and O's is R^T B^T R times O's weight
without them (R: O's own online input rotation, applied after the heads')."""
import os
import sys

import numpy as np
import pytest

import qcore

ort = pytest.importorskip("onnxruntime")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir, os.pardir)
MINILM = os.path.join(ROOT, "build", "models", "minilm.onnx")
MLP = os.path.join(HERE, "..", "data", "models", "mnist_mlp.onnx")
HEAD = 32  # all-MiniLM-L6-v2: 12 heads of 32 values


def relative_error(have, want):
    return float(np.max(np.abs(have - want)) / max(np.max(np.abs(want)), 1e-12))


@pytest.fixture(scope="module")
def minilm():
    if not os.path.exists(MINILM):
        pytest.skip("MiniLM needs scripts/setup's export (build/models/minilm.onnx)")
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    import minilm_tokenizer
    with open(os.path.join(ROOT, "tests", "data", "text", "heldout.txt"), encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()][:16]
    p = qcore.Pipeline(qcore.Model(MINILM))
    p.add_batch(minilm_tokenizer.encode(texts[:8]))
    return p, minilm_tokenizer.encode(texts[8:])


def float_rotated(p, heads):
    """The rotated float model (every layer kept in float; one pass: nothing is quantized) and its report."""
    keep = tuple(l["weight"] for l in p.layers)
    return p.run(qcore.Recipe(rotation="hadamard", rotation_seed=3, rotate_heads=heads, keep_float=keep,
                              sequential=False))


def weight(model, name):
    return model.initializer(name)[2].astype(np.float64)


def online_rotation(model, weight_name):
    """R of the online rotation in front of the layer whose weight is `weight_name`."""
    layer = next(n for n in model.nodes if n.op_type == "MatMul" and n.inputs[1] == weight_name)
    rotation = next(n for n in model.nodes if n.outputs[0] == layer.inputs[0])
    return weight(model, rotation.inputs[1])


def test_minilm_rotated_with_heads_computes_the_same_function(minilm, tmp_path):
    p, feed = minilm
    model, report = float_rotated(p, True)
    kinds = [r.heads_rotated for r in report]
    assert kinds.count("value") == kinds.count("output") == 6 and all(r.rotated for r in report)
    base = qcore.Session(qcore.Model(MINILM)).run(feed)
    got = qcore.Session(model).run(feed)
    for name in base:
        assert relative_error(got[name], base[name]) < 1e-4, name
    path = str(tmp_path / "rotated.onnx")
    model.save(path)
    theirs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)
    want = ort.InferenceSession(MINILM, providers=["CPUExecutionProvider"]).run(None, feed)
    for have, expected in zip(theirs, want):
        assert relative_error(have, expected) < 1e-4

    plain, _ = float_rotated(p, False)
    for v, o in zip([r.weight for r in report if r.heads_rotated == "value"],
                    [r.weight for r in report if r.heads_rotated == "output"]):
        b = np.linalg.solve(weight(plain, v), weight(model, v))  # W_v,heads = W_v,plain B ([in, out] layout)
        blocks = np.kron(np.eye(384 // HEAD), np.ones((HEAD, HEAD)))
        assert np.abs(b * (1 - blocks)).max() < 1e-3  # block diagonal
        np.testing.assert_allclose(b.T @ b, np.eye(384), atol=1e-3)  # of orthogonal blocks
        assert np.abs(b - np.eye(384)).max() > 0.1  # and not the identity
        r = online_rotation(model, o)  # O's input rotation comes after its heads': R^T B^T W_o
        np.testing.assert_allclose(weight(model, o), r.T @ b.T @ r @ weight(plain, o), atol=1e-4)


def test_head_rotations_need_attention_and_a_rotation():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.random.default_rng(0).random((16, 784), dtype=np.float32)})
    with pytest.raises(qcore.UnsupportedError, match="'rotate_heads': the model has no attention block"):
        p.run(qcore.Recipe(rotation="hadamard", rotate_heads=True))
    with pytest.raises(qcore.InvalidArgumentError, match="'rotate_heads': head rotations take the recipe's rotation"):
        p.run(qcore.Recipe(rotate_heads=True))
    _, report = p.run(qcore.Recipe(rotation="hadamard"))  # the pipeline is still usable, and without heads
    assert [r.heads_rotated for r in report] == [None] * 3 and all(r.rotated for r in report)


def test_older_recipe_and_report_versions_end_before_the_heads_fields():
    """qc_recipe_init(3) and a version-3 recipe never touch rotate_heads (an older caller's struct ends
    before it); version 4 checks it; qc_pipeline_report(version 2) stops before heads_rotated."""
    from qcore._ffi import ffi, lib, onnx_lib
    size, end = ffi.sizeof("qc_recipe"), ffi.offsetof("qc_recipe", "rotate_heads")
    buf = ffi.new("unsigned char[]", b"\xab" * size)
    assert onnx_lib.qc_recipe_init(ffi.cast("qc_recipe *", buf), 3) == 0
    assert bytes(buf[end:size]) == b"\xab" * (size - end)
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.random.default_rng(1).random((16, 784), dtype=np.float32)})
    recipe, alive = qcore.Recipe(method="rtn", rotation="hadamard").to_c()
    out = ffi.new("qc_model **")
    recipe.version, recipe.rotate_heads = 3, 7  # not a version-3 field: ignored
    assert onnx_lib.qc_pipeline_run(p._p, recipe, out) == 0
    onnx_lib.qc_model_free(out[0])
    recipe.version = 4
    assert onnx_lib.qc_pipeline_run(p._p, recipe, out) != 0
    assert "'rotate_heads': 7 is neither 0 nor 1" in ffi.string(lib.qc_last_error()).decode()
    size, end = ffi.sizeof("qc_layer_report"), ffi.offsetof("qc_layer_report", "heads_rotated")
    buf = ffi.new("unsigned char[]", b"\xab" * size)
    report = ffi.cast("qc_layer_report *", buf)
    report.version = 2
    assert onnx_lib.qc_pipeline_report(p._p, 0, report) == 0
    assert bytes(buf[end:size]) == b"\xab" * (size - end) and report.rotated == 1
