"""Rotations and normalization scales fused into ONNX models (qc_model_fold_norm, qc_model_rotate_input,
qc_model_rotate_output, qc_model_rotate_heads). Oracle: the model's own float function. The rotated
all-MiniLM-L6-v2 must give the unrotated model's outputs on real held-out sentences, in qcore's executor
and in onnxruntime (which also loads the saved file); small hand-built models cover the folded cases and
Gemm; bad requests are named and leave the model unchanged."""
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
MINILM = os.path.join(ROOT, "build", "models", "minilm.onnx")


def relative_error(have, want):
    return float(np.max(np.abs(have - want)) / max(np.max(np.abs(want)), 1e-12))


def ort_run(path_or_bytes, feed):
    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


@pytest.fixture(scope="module")
def minilm():
    assert os.path.exists(MINILM), "run scripts/setup: it exports %s" % MINILM
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    import minilm_tokenizer
    with open(os.path.join(ROOT, "tests", "data", "text", "heldout.txt"), encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()][:16]
    feed = minilm_tokenizer.encode(texts)
    return feed, qcore.Session(qcore.Model(MINILM)).run(feed), ort_run(MINILM, feed)


def layer_input_width(model, layer):
    node = next(n for n in model.nodes if n.name == layer)
    return node.inputs[0], model.initializer(node.inputs[1])[1][0]


def learned_rotation(model, feed, layer, steps):
    """A rotation learned by Cayley SGD (qcore.cayley_run on the built-in W4A4 objective) from the layer's
    real inputs, starting at a randomized Hadamard matrix."""
    value, width = layer_input_width(model, layer)
    session = qcore.Session(model)
    session.capture(value)
    x = np.ascontiguousarray(session.run(feed)[value].reshape(-1, width)[:256], np.float32)
    node = next(n for n in model.nodes if n.name == layer)
    w = np.ascontiguousarray(model.initializer(node.inputs[1])[2].T, np.float32)
    objective = qcore.LinearRotationLoss(x, w, qcore.QuantOptions(bits=4, signed=False, symmetric=False,
                                                                  granularity="channel", axis=0),
                                         qcore.QuantOptions(bits=4, granularity="channel", axis=0))
    start = qcore.random_hadamard_matrix(width, np.float64, stream=width)
    r, losses, orth = qcore.cayley_run(start, objective, steps, qcore.CayleyOptions(lr=0.01, momentum=0.0))
    assert losses[-1] != losses[0] and orth < 1e-6
    return r


def rotations(kind, model, feed):
    """One rotation per input width of MiniLM's linear layers (384 and 1536)."""
    if kind == "haar":
        return {n: qcore.random_orthogonal(n, stream=n) for n in (384, 1536)}
    if kind == "hadamard":
        return {n: qcore.random_hadamard_matrix(n, stream=n) for n in (384, 1536)}
    return {384: learned_rotation(model, feed, "/bert/encoder/layer.0/attention/self/query/MatMul", 8),
            1536: learned_rotation(model, feed, "/bert/encoder/layer.0/output/dense/MatMul", 2)}


@pytest.mark.parametrize("kind", ["haar", "hadamard", "learned"])
def test_rotated_minilm_computes_the_same_function(minilm, kind, tmp_path):
    feed, base, base_ort = minilm
    model = qcore.Model(MINILM)
    rs = rotations(kind, model, feed)
    heads = np.stack([qcore.random_orthogonal(32, stream=100 + h) for h in range(12)])
    layers = model.linear_layers()
    assert len(layers) == 36
    for layer in layers:
        if layer.endswith("attention/output/dense/MatMul"):
            model.rotate_heads(layer, heads)
    online = [model.rotate_input(layer, rs[layer_input_width(model, layer)[1]]) for layer in layers]
    assert all(online)  # post-LN BERT: no layer's input comes straight from another linear layer
    # q, k and v share one online rotation of their common input: 4 new MatMuls per block
    assert sum(n.op_type == "MatMul" for n in model.nodes) == 48 + 6 * 4
    got = qcore.Session(model).run(feed)
    path = str(tmp_path / "rotated.onnx")
    model.save(path)
    live = ort_run(path, feed)
    for name in base:
        assert relative_error(got[name], base[name]) < 1e-4, name
        assert relative_error(live[name], base_ort[name]) < 1e-4, name
    assert_weights_rotated(qcore.Model(MINILM), qcore.Model(path), rs[384].astype(np.float64), heads)


def assert_weights_rotated(original, rotated, r, heads):
    """Layer 0's query weight is R^T W; its value projection R^T W_v B with bias b_v B, and its output
    projection R^T B^T W_o, for B the block diagonal of the heads' rotations."""
    def weights(model, layer):
        node = next(n for n in model.nodes if n.name == "/bert/encoder/layer.0/" + layer)
        return np.asarray(model.initializer(node.inputs[1])[2], np.float64)

    b = np.zeros((384, 384))
    for h in range(12):
        b[32 * h:32 * h + 32, 32 * h:32 * h + 32] = heads[h]
    query, value, out = "attention/self/query/MatMul", "attention/self/value/MatMul", "attention/output/dense/MatMul"
    assert np.abs(weights(rotated, query) - r.T @ weights(original, query)).max() < 1e-5
    assert np.abs(weights(rotated, value) - r.T @ weights(original, value) @ b).max() < 1e-5
    assert np.abs(weights(rotated, out) - r.T @ b.T @ weights(original, out)).max() < 1e-5
    bias = "bert.encoder.layer.0.attention.self.value.bias"
    assert np.abs(rotated.initializer(bias)[2] - original.initializer(bias)[2] @ b).max() < 1e-5
    assert np.abs(weights(rotated, value) - weights(original, value)).max() > 1e-2


# ---- hand-built models: folded rotations, Gemm, normalization folding --------------------------------

def build(nodes, initializers, width=16, out="y", out_width=None):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, out_width or width])],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def two_layers(rng, gemm=False):
    """x -> MatMul + Add -> (MatMul + Add, or Gemm with transB) -> Relu, widths 16 -> 24 -> 8."""
    inits = {"w1": rng.standard_normal((16, 24)), "b1": rng.standard_normal(24),
             "w2": rng.standard_normal((8, 24) if gemm else (24, 8)), "b2": rng.standard_normal(8)}
    first = [helper.make_node("MatMul", ["x", "w1"], ["h0"], name="first"),
             helper.make_node("Add", ["b1", "h0"], ["h"], name="first_bias")]
    second = (helper.make_node("Gemm", ["h", "w2", "b2"], ["z"], name="second", transB=1) if gemm else
              helper.make_node("MatMul", ["h", "w2"], ["z"], name="second"))
    nodes = first + [second] + ([] if gemm else [helper.make_node("Add", ["z", "b2"], ["z2"], name="second_bias")])
    nodes.append(helper.make_node("Relu", ["z" if gemm else "z2"], ["y"], name="relu"))
    return build(nodes, inits, out_width=8)


def saved_bytes(model):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.onnx")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def same_function(before, model, x):
    """The edited model (saved, in onnxruntime; and in qcore's executor) against the original in
    onnxruntime."""
    want = ort_run(before, {"x": x})["y"]
    assert relative_error(ort_run(saved_bytes(model), {"x": x})["y"], want) < 1e-5
    assert relative_error(qcore.Session(model).run({"x": x})["y"], want) < 1e-5


@pytest.mark.parametrize("gemm", [False, True])
def test_input_rotation_folds_into_a_producing_layer_and_output_rotation_pairs_with_readers(gemm):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    before = two_layers(rng, gemm)
    model = qcore.Model.from_bytes(before)
    assert model.rotate_input("second", qcore.random_orthogonal(24, stream=4)) is False
    assert len(model.nodes) == len(qcore.Model.from_bytes(before).nodes)
    same_function(before, model, x)
    model.rotate_output("first", qcore.random_hadamard_matrix(24, stream=5))
    same_function(before, model, x)
    model.rotate_input("first", qcore.random_orthogonal(16, np.float64, stream=6))
    assert any(n.op_type == "MatMul" and n.inputs[0] == "x" and n.name != "first" for n in model.nodes)
    same_function(before, model, x)


def test_layer_norm_and_rms_scale_fold_into_readers():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 16)).astype(np.float32)
    inits = {"gamma": rng.uniform(0.5, 2, 16), "beta": rng.standard_normal(16), "wa": rng.standard_normal((16, 8)),
             "ba": rng.standard_normal(8), "wb": rng.standard_normal((8, 16)), "bb": rng.standard_normal(8),
             "g2": rng.uniform(0.5, 2, 8), "wc": rng.standard_normal((8, 8))}
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["n"], name="ln", epsilon=1e-5),
             helper.make_node("MatMul", ["n", "wa"], ["a0"], name="a"),
             helper.make_node("Add", ["a0", "ba"], ["a"], name="a_bias"),
             helper.make_node("Gemm", ["n", "wb", "bb"], ["b"], name="b", transB=1),
             helper.make_node("Add", ["a", "b"], ["s"], name="sum"),
             helper.make_node("Mul", ["s", "g2"], ["m"], name="rms_scale"),
             helper.make_node("MatMul", ["m", "wc"], ["y"], name="c")]
    before = build(nodes, inits, out_width=8)
    model = qcore.Model.from_bytes(before)
    model.fold_norm("ln")
    model.fold_norm("rms_scale")
    assert np.all(model.initializer("gamma")[2] == 1) and np.all(model.initializer("beta")[2] == 0)
    assert np.all(model.initializer("g2")[2] == 1)
    same_function(before, model, x)


# ---- errors ------------------------------------------------------------------------------------------

def initializer_bytes(model):
    return {n: model.initializer(n)[2].tobytes() for n in model.initializer_names()}


def test_layers_that_cannot_be_rotated_are_named_and_the_model_is_unchanged():
    model = qcore.Model(MINILM)
    before = initializer_bytes(model)
    query = "/bert/encoder/layer.0/attention/self/query/MatMul"
    r = qcore.random_orthogonal(384, stream=1)
    with pytest.raises(qcore.UnsupportedError, match="attention/self/MatMul'.*not a constant"):
        model.rotate_input("/bert/encoder/layer.0/attention/self/MatMul", r)
    with pytest.raises(qcore.UnsupportedError, match="is a LayerNormalization, not a MatMul"):
        model.rotate_input("/bert/embeddings/LayerNorm/LayerNormalization", r)
    with pytest.raises(qcore.InvalidArgumentError, match="no node called 'nope'"):
        model.rotate_input("nope", r)
    with pytest.raises(qcore.ShapeError, match="'r' must be \\[384, 384\\]"):
        model.rotate_input(query, qcore.random_orthogonal(383, stream=1))
    skewed = r.copy()
    skewed[0, 0] += 1e-3
    with pytest.raises(qcore.NumericError, match="not orthogonal: max \\|R\\^T R - I\\| = 0.00"):
        model.rotate_input(query, skewed)
    model.rotate_input(query, skewed, tolerance=1e-2)  # within a looser tolerance it is accepted ...
    model = qcore.Model(MINILM)
    with pytest.raises(qcore.InvalidArgumentError, match="tolerance"):
        model.rotate_input(query, r, tolerance=0.0)
    nan = r.copy()
    nan[3, 3] = np.nan
    with pytest.raises(qcore.NumericError, match="NaN"):
        model.rotate_input(query, nan)
    with pytest.raises(qcore.UnsupportedError, match="self/Reshape' is a Reshape, not a MatMul"):
        model.rotate_output(query, r)  # q feeds a Reshape, not a linear layer
    with pytest.raises(qcore.UnsupportedError, match="self/Shape' is a Shape, not a MatMul"):
        model.fold_norm("/bert/embeddings/LayerNorm/LayerNormalization")  # read by Shape and the residual Add too
    with pytest.raises(qcore.UnsupportedError, match="attention product"):
        model.rotate_heads("/bert/encoder/layer.0/intermediate/dense/MatMul", qcore.random_orthogonal(32))
    with pytest.raises(qcore.ShapeError, match="blocks of 40"):
        model.rotate_heads("/bert/encoder/layer.0/attention/output/dense/MatMul", qcore.random_orthogonal(40))
    with pytest.raises(qcore.ShapeError, match="heads"):
        model.rotate_heads("/bert/encoder/layer.0/attention/output/dense/MatMul",
                           np.stack([np.eye(32, dtype=np.float32)] * 11))
    bad_head = np.stack([np.eye(32, dtype=np.float32)] * 12)
    bad_head[5, 0, 1] = 0.5
    with pytest.raises(qcore.NumericError, match="not orthogonal"):
        model.rotate_heads("/bert/encoder/layer.0/attention/output/dense/MatMul", bad_head)
    assert initializer_bytes(model) == before


def test_online_rotations_get_fresh_names_even_for_long_names():
    """Two different online rotations of one value whose name (and the layer's) is 300 characters long."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    long = "v" * 300
    nodes = [helper.make_node("Relu", ["x"], [long], name="relu"),
             helper.make_node("MatMul", [long, "w1"], ["a"], name="L" * 300),
             helper.make_node("MatMul", [long, "w2"], ["b"], name="second"),
             helper.make_node("Add", ["a", "b"], ["y"], name="sum")]
    before = build(nodes, {"w1": rng.standard_normal((16, 16)), "w2": rng.standard_normal((16, 16))})
    model = qcore.Model.from_bytes(before)
    assert model.rotate_input("L" * 300, qcore.random_orthogonal(16, stream=1))
    assert model.rotate_input("second", qcore.random_orthogonal(16, stream=2))
    rotated = [n.outputs[0] for n in model.nodes if n.op_type == "MatMul" and n.inputs[0] == long]
    assert len(rotated) == 2 and len(set(rotated)) == 2
    same_function(before, model, x)
