"""The LQ layer in models. The executor's ai.qcore.LQGemm op (qc_model.h) against numpy (decoded levels,
float64 product) and the reference bit-serial kernel called directly (the same bits, on every kernel set
the session's context picks), for every code pairing, Kw and Ka, row lengths with word and vector tails,
batch rows of any rank and the one-row GEMV path; its errors. Then qc_model_lq_replace (qcore.lq_replace)
and `qcore lq` on the Fashion-MNIST MLP and small graphs, against onnxruntime running the export, the
example's own Python recipe and numpy."""
import numpy as np
import pytest

import lq_oracle as oracle
import qcore

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

PAIRS = [("unsigned", "signed"), ("signed", "signed"), ("unsigned", "unsigned"), ("signed", "unsigned")]


def fitted_layer(rng, o, n, kw, ka, x_code, w_code):
    """Random W with fitted bases and planes, an input basis fitted on random inputs of the right sign."""
    w = rng.standard_normal((o, n)).astype(np.float32)
    if w_code == "unsigned":
        w = np.abs(w)
    w_basis = qcore.lq_fit(w, kw, w_code).basis
    planes = qcore.lq_pack(qcore.lq_encode(w, w_basis, w_code), kw)
    sample = rng.standard_normal((64, n)).astype(np.float32)
    if x_code == "unsigned":
        sample = np.maximum(sample, 0)
    x_basis = qcore.lq_fit(sample.reshape(1, -1), ka, x_code).basis[0]
    return w, w_basis, planes, x_basis


def lq_gemm_model(x_shape, planes, w_basis, x_basis, bias=None, x_signed=0, w_signed=1, name="lq",
                  planes_fed=False):
    """A one-node model Y = LQGemm(X, planes, bases[, B]) with the parameters as initializers; with
    `planes_fed`, W_planes is a graph input instead (fed at run time, so not a constant)."""
    stored = planes if planes.dtype == np.uint8 else planes.view(np.int64)
    inits = [numpy_helper.from_array(w_basis, "W_basis"), numpy_helper.from_array(np.asarray(x_basis, np.float32), "X_basis")]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))]
    if planes_fed:
        graph_inputs.append(helper.make_tensor_value_info("W_planes", helper.np_dtype_to_tensor_dtype(stored.dtype),
                                                          list(stored.shape)))
    else:
        inits.append(numpy_helper.from_array(stored, "W_planes"))
    inputs = ["X", "W_planes", "W_basis", "X_basis"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "B"))
        inputs.append("B")
    node = helper.make_node("LQGemm", inputs, ["Y"], name=name, domain="ai.qcore", x_signed=x_signed, w_signed=w_signed)
    y_shape = list(x_shape[:-1]) + [planes.shape[0]]
    graph = helper.make_graph([node], "lq", graph_inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.qcore", 1)])
    return qcore.Model.from_bytes(model.SerializeToString())


def run(model, x, threads=2, arch="auto"):
    return qcore.Session(model, qcore.Context(threads=threads, arch=arch)).run({"X": x})["Y"]


ARCHS = [a for a in ("ref", "avx2", "avx512") if qcore.arch_supported(a)]


@pytest.mark.parametrize("x_code,w_code", PAIRS)
@pytest.mark.parametrize("n", [1, 65, 700])
def test_lq_gemm_equals_kernel_and_numpy(rng, x_code, w_code, n):
    for kw, ka in [(1, 1), (2, 2), (3, 4)]:
        o = 37
        w, w_basis, planes, x_basis = fitted_layer(rng, o, n, kw, ka, x_code, w_code)
        bias = rng.standard_normal(o).astype(np.float32)
        x = rng.standard_normal((3, 5, n)).astype(np.float32)
        if x_code == "unsigned":
            x = np.maximum(x, 0)
        model = lq_gemm_model(x.shape, planes, w_basis, x_basis, bias, x_signed=int(x_code == "signed"),
                              w_signed=int(w_code == "signed"))
        rows = x.reshape(-1, n)
        reference = qcore.bitserial_gemm(rows, x_basis, x_code, planes, w_basis, w_code, bias,
                                         ctx=qcore.Context(arch="ref", threads=1))
        few = lq_gemm_model((1, 5, n), planes, w_basis, x_basis, bias, x_signed=int(x_code == "signed"),
                            w_signed=int(w_code == "signed"))
        for arch in ARCHS:  # the session's kernel set runs the op, and every set gives the reference's bits
            y = run(model, x, arch=arch)
            assert y.shape == (3, 5, o)
            np.testing.assert_array_equal(y.reshape(-1, o), reference, err_msg=arch)
            np.testing.assert_array_equal(run(few, x[:1], arch=arch)[0], reference[:5], err_msg=arch)
        w_codes = qcore.lq_encode(w, w_basis, w_code)
        levels_w = oracle.decode(w_codes, w_basis.astype(np.float64), w_code)
        levels_x = oracle.decode(oracle.encode(rows, x_basis[None], x_code), x_basis[None].astype(np.float64), x_code)
        expected = levels_x @ levels_w.T + bias
        np.testing.assert_allclose(y.reshape(-1, o), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max(),
                                   err_msg="Kw=%d Ka=%d" % (kw, ka))


def test_lq_gemm_one_row_runs_the_gemv_with_the_same_bits(rng):
    """One batch row goes to qc_bitserial_gemv, or to the node's interleaved weights (AVX-512 with
    VPOPCNTDQ); it equals qc_bitserial_gemm's row (the plain register tiles) bit for bit, with or without B,
    and does not depend on the thread count."""
    n, o = 513, 130
    w, w_basis, planes, x_basis = fitted_layer(rng, o, n, 2, 2, "unsigned", "signed")
    x = np.maximum(rng.standard_normal((4, n)), 0).astype(np.float32)
    for bias in (None, rng.standard_normal(o).astype(np.float32)):
        many = qcore.bitserial_gemm(x, x_basis, "unsigned", planes, w_basis, "signed", bias)
        one = lq_gemm_model((1, n), planes, w_basis, x_basis, bias)
        for r in range(4):
            for threads in (1, 2):
                np.testing.assert_array_equal(run(one, x[r:r + 1], threads)[0], many[r])


def test_lq_gemm_errors_name_the_node(rng):
    n, o = 100, 8
    w, w_basis, planes, x_basis = fitted_layer(rng, o, n, 2, 2, "unsigned", "signed")
    x = np.zeros((2, n), np.float32)
    wrong_width = np.zeros((2, n + 600), np.float32)  # needs 16 words per plane, the planes have 8
    with pytest.raises(qcore.ShapeError, match=r"LQGemm node 'fc'.*W_planes must be \[O, Kw, 16\]"):
        run(lq_gemm_model(wrong_width.shape, planes, w_basis, x_basis, name="fc"), wrong_width)
    with pytest.raises(qcore.ShapeError, match=r"W_basis must be \[O, Kw\] = \[8, 2\]"):
        run(lq_gemm_model(x.shape, planes, w_basis[:, :1].copy(), x_basis), x)
    with pytest.raises(qcore.ShapeError, match="B must hold O = 8 values"):
        run(lq_gemm_model(x.shape, planes, w_basis, x_basis, np.zeros(7, np.float32)), x)
    with pytest.raises(qcore.ShapeError, match=r"X_basis must be \[Ka\]"):
        run(lq_gemm_model(x.shape, planes, w_basis, np.zeros(5, np.float32)), x)
    with pytest.raises(qcore.InvalidArgumentError, match="attribute x_signed = 2"):
        run(lq_gemm_model(x.shape, planes, w_basis, x_basis, x_signed=2), x)
    bad = x.copy()
    bad[1, 3] = np.nan
    with pytest.raises(qcore.NumericError, match="LQGemm node 'lq'"):
        run(lq_gemm_model(x.shape, planes, w_basis, x_basis), bad)
    padded = planes.copy()
    padded[5, 1, 1] |= np.uint64(1 << 36)  # element 100 of row 5's plane 1: the first bit past n
    with pytest.raises(qcore.InvalidArgumentError, match="plane row 11 has bits set past element 100"):
        run(lq_gemm_model(x.shape, padded, w_basis, x_basis), x)
    padded = planes.copy()
    padded[0, 0, 7] = np.uint64(1)  # a whole padding word
    with pytest.raises(qcore.InvalidArgumentError, match="plane row 0 has bits set past element 100"):
        run(lq_gemm_model(x.shape, padded, w_basis, x_basis), x)
    run(lq_gemm_model(x.shape, planes, w_basis, x_basis), x)  # and the planes as packed pass


def dense(planes, n):
    """qc_lq_pack's words cut to the dense UINT8 form: ceil(n / 8) little-endian bytes per plane row."""
    return np.ascontiguousarray(planes.view(np.uint64).view(np.uint8)[..., :(n + 7) // 8])


@pytest.mark.parametrize("n", [1, 100, 513, 700])
def test_dense_planes_give_the_packed_planes_bits(rng, n):
    """W_planes in its dense UINT8 form gives the INT64 form's outputs bit for bit: as a constant (widened
    once, then interleaved) at batch 1 and 5, and as a graph input fed at run time (widened per run)."""
    o = 37
    w, w_basis, planes, x_basis = fitted_layer(rng, o, n, 2, 2, "unsigned", "signed")
    x = np.maximum(rng.standard_normal((5, n)), 0).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    want = qcore.bitserial_gemm(x, x_basis, "unsigned", planes, w_basis, "signed", bias)
    model = lq_gemm_model(["batch", n], dense(planes, n), w_basis, x_basis, bias)
    session = qcore.Session(model, qcore.Context(threads=2))
    for rows in (x[:1], x, x[:1]):  # the kept widened planes serve every batch size
        np.testing.assert_array_equal(session.run({"X": rows})["Y"], want[:len(rows)])
    fed = qcore.Session(lq_gemm_model(["batch", n], dense(planes, n), w_basis, x_basis, bias, planes_fed=True))
    for rows in (x[:1], x):
        np.testing.assert_array_equal(fed.run({"X": rows, "W_planes": dense(planes, n)})["Y"], want[:len(rows)])


def test_dense_planes_errors():
    rng = np.random.default_rng(5)
    n = 100
    w, w_basis, planes, x_basis = fitted_layer(rng, 8, n, 2, 2, "unsigned", "signed")
    x = np.zeros((2, n), np.float32)
    with pytest.raises(qcore.ShapeError, match=r"W_planes must be \[O, Kw, 13\] .*13 bytes per plane"):
        run(lq_gemm_model(x.shape, dense(planes, n)[..., :12].copy(), w_basis, x_basis), x)
    padded = dense(planes, n)
    padded[5, 1, 12] |= 1 << 4  # element 100 of row 5's plane 1: the first bit past n
    with pytest.raises(qcore.InvalidArgumentError, match="plane row 11 has bits set past element 100"):
        run(lq_gemm_model(x.shape, padded, w_basis, x_basis), x)


# ---- qc_model_lq_replace, its onnxruntime export and the qcore lq tool ---------------------------------

import gzip  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

ort = pytest.importorskip("onnxruntime")

HERE = os.path.dirname(os.path.abspath(__file__))
MLP = os.path.join(HERE, "..", "data", "models", "fashion_mlp.onnx")
FASHION = "/usr/share/datasets/fashion-mnist"
TOOL = os.environ.get("QCORE_TOOL")
CALIBRATION = 4096  # the example's default
ACT_VALUES = ["input", "/act/Relu_output_0", "/act_1/Relu_output_0"]  # the three layers' inputs


def fashion(name, count=None):
    path = os.path.join(FASHION, name)
    if not os.path.exists(path):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    with gzip.open(path) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16 if "images" in name else 8)
    return raw.reshape(-1, 784)[:count] if "images" in name else raw[:count]


def pipeline_of(model, x, batch=512, name="input", ctx=None):
    p = qcore.Pipeline(model, ctx)
    for k in range(0, len(x), batch):
        p.add_batch({name: np.ascontiguousarray(x[k:k + batch])})
    return p


def ort_run(model, x, tmp_path, name="model.onnx"):
    path = str(tmp_path / name)
    model.save(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def initializers(model, tmp_path):
    path = str(tmp_path / "inits.onnx")
    model.save(path)
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def unpack_codes(planes, n):
    """uint8 [rows, n] codes from qcore's bit-planes, dense uint8 or qc_lq_pack's 64-bit words (the inverse of
    their layout: bit k & 7 of byte k >> 3 of a plane row)."""
    raw = planes if planes.dtype == np.uint8 else planes.view(np.uint64).view(np.uint8)
    bits = np.unpackbits(raw, axis=-1, bitorder="little")[..., :n]
    return sum(bits[:, j].astype(np.uint8) << j for j in range(planes.shape[1]))


@pytest.fixture(scope="module")
def fashion_w2a2():
    calib = fashion("train-images-idx3-ubyte.gz", CALIBRATION).astype(np.float32) / 255
    test = fashion("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    labels = fashion("t10k-labels-idx1-ubyte.gz")
    lq, export, result = qcore.lq_replace(pipeline_of(qcore.Model(MLP), calib), weight_bits=2, input_bits=2)
    return calib, test, labels, lq, export, result


def example_module():
    sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))
    try:
        import lq_mlp
    finally:
        sys.path.pop(0)
    return lq_mlp


def test_fashion_mlp_w2a2_equals_its_ort_export_and_the_example(fashion_w2a2, tmp_path):
    """The tool's W2A2 MLP in qcore's executor against onnxruntime on the export (10000 real test images),
    and against the example's own Python recipe (examples/python/lq_mlp.py) on the same data."""
    calib, test, labels, lq, export, result = fashion_w2a2
    assert [(n.op_type, n.domain) for n in lq.nodes] == [("LQGemm", "ai.qcore"), ("Relu", ""), ("LQGemm", "ai.qcore"),
                                                         ("Relu", ""), ("LQGemm", "ai.qcore")]
    y = qcore.Session(lq).run({"input": test})["logits"]
    y_ort = ort_run(export, test, tmp_path)
    np.testing.assert_allclose(y, y_ort, rtol=1e-4, atol=1e-4 * np.abs(y).max())
    differ = int((y.argmax(1) != y_ort.argmax(1)).sum())
    assert differ <= 2, differ  # only near-ties may flip
    acc, acc_ort = (y.argmax(1) == labels).mean(), (y_ort.argmax(1) == labels).mean()
    assert abs(acc - acc_ort) <= differ / len(test)
    ex = example_module()
    ctx = qcore.Context(threads=2)
    layers = ex.build_lq(qcore, ex.float_layers("fashion"), 2, 2, calib, ctx, refit=True)
    acc_example = ex.accuracy(lambda x: ex.run_lq(qcore, layers, x, ctx), test, labels)
    assert abs(acc - acc_example) <= 0.01, (acc, acc_example)
    assert acc > 0.85, acc  # W2A2 post-training on Fashion-MNIST (fp32: 89.4%)
    assert (result.replaced, result.kept) == (3, 0)
    assert result.lq_bytes == sum(layer.nbytes() for layer in layers)
    assert result.float_bytes == sum(w.nbytes + b.nbytes for w, b in ex.float_layers("fashion"))


def weight_fit_chain(w, x_float, x_levels, rounds):
    """The documented step 3 from the primitives: QEM, nearest-level codes, the output refit, then `rounds`
    times the output-aware codes and a refit, on GPFQ statistics of the float and quantized inputs."""
    stats = qcore.GpxqStats("gpfq", w.shape[1])
    for k in range(0, len(x_float), 512):
        stats.add(x_float[k:k + 512], x_levels[k:k + 512])
    h, g = stats.hessian(), stats.cross()
    basis = qcore.lq_fit(w, 2, "signed").basis
    codes = qcore.lq_encode(w, basis, "signed")
    basis = qcore.lq_refit_output(codes, basis, w, h, g)
    for _ in range(rounds):
        codes = qcore.lq_assign_codes(w, basis, h, g)[0]
        basis = qcore.lq_refit_output(codes, basis, w, h, g)
    return codes, basis


def test_each_layer_is_fitted_on_the_inputs_of_the_model_replaced_so_far(fashion_w2a2, tmp_path):
    """Input bases equal qcore.lq_fit on the inputs the LQ model itself gives its layer (so the earlier
    layers were already replaced), weight codes and bases equal the documented chain of primitives on the
    float and the replaced model's inputs, and the model equals a float64 numpy forward pass over its
    decoded levels."""
    calib, test, labels, lq, export, result = fashion_w2a2
    inits = initializers(lq, tmp_path)
    session, float_session = qcore.Session(lq), qcore.Session(qcore.Model(MLP))
    for name in ACT_VALUES[1:]:
        session.capture(name)
        float_session.capture(name)
    values, float_values = session.run({"input": calib}), float_session.run({"input": calib})
    values["input"] = float_values["input"] = calib
    weights = {k: v for k, v in initializers(qcore.Model(MLP), tmp_path).items()}
    x = test[:500].astype(np.float64)
    for k, act in enumerate(ACT_VALUES, start=1):
        w = weights["fc%d.weight" % k]
        x_basis = inits["fc%d.weight_lq_input_basis" % k]
        expected = qcore.lq_fit(np.ascontiguousarray(values[act].reshape(1, -1)), 2, "unsigned").basis[0]
        np.testing.assert_array_equal(x_basis, expected, err_msg=act)
        codes = unpack_codes(inits["fc%d.weight_lq_planes" % k], w.shape[1])
        x_levels = qcore.lq_decode(qcore.lq_encode(values[act], x_basis[None], "unsigned"), x_basis[None], "unsigned")
        want_codes, want_basis = weight_fit_chain(w, float_values[act], x_levels, rounds=2)
        assert np.mean(codes != want_codes) < 1e-4, (act, np.mean(codes != want_codes))
        np.testing.assert_allclose(inits["fc%d.weight_lq_basis" % k], want_basis, rtol=1e-4, err_msg=act)
        w_levels = oracle.decode(codes, inits["fc%d.weight_lq_basis" % k].astype(np.float64), "signed")
        x_levels = oracle.decode(oracle.encode(x.astype(np.float32), x_basis[None], "unsigned"),
                                 x_basis[None].astype(np.float64), "unsigned")
        x = x_levels @ w_levels.T + weights["fc%d.bias" % k]
        if k < 3:
            x = np.maximum(x, 0)
    y = session.run({"input": test[:500]})["logits"]
    np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-4 * np.abs(x).max())


def small_model(rng):
    """X [N, 3, 16] -> MatMul + Add -> Relu -> MatMul -> Reshape [N, 36] -> Gemm (alpha 0.5, not
    fully connected by qcore's definition) -> Y: signed inputs, unsigned inputs, rank-3 rows, a kept layer."""
    w1, b1 = rng.standard_normal((16, 24)).astype(np.float32), rng.standard_normal(24).astype(np.float32)
    w2, w3 = rng.standard_normal((24, 12)).astype(np.float32), rng.standard_normal((36, 5)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w1, "w1"), (b1, "b1"), (w2, "w2"), (w3, "w3"), (np.array([-1, 36], np.int64), "shape")]]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"), helper.make_node("Add", ["h1", "b1"], ["h2"]),
             helper.make_node("Relu", ["h2"], ["h3"]), helper.make_node("MatMul", ["h3", "w2"], ["h4"], name="mm2"),
             helper.make_node("Reshape", ["h4", "shape"], ["h5"]),
             helper.make_node("Gemm", ["h5", "w3"], ["y"], name="gemm", alpha=0.5)]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return qcore.Model.from_bytes(model.SerializeToString()), {"w1": w1, "w2": w2}


@pytest.mark.parametrize("kw,ka", [(1, 1), (3, 2), (4, 4)])
def test_matmul_layers_signed_inputs_and_kept_layers(rng, tmp_path, kw, ka):
    model, weights = small_model(rng)
    x = rng.standard_normal((96, 3, 16)).astype(np.float32)
    lq, export, result = qcore.lq_replace(pipeline_of(model, x, batch=32, name="x"), kw, ka, refit=False)
    assert (result.replaced, result.kept) == (2, 1)
    assert [n.op_type for n in lq.nodes] == ["LQGemm", "Add", "Relu", "LQGemm", "Reshape", "Gemm"]
    inits = initializers(lq, tmp_path)
    assert "w1" not in inits and "w2" not in inits and "w3" in inits  # replaced weights dropped, the kept one stays
    nodes = {n.name: n for n in onnx.load(str(tmp_path / "inits.onnx")).graph.node}
    for name, weight, x_signed in [("mm1", "w1", 1), ("mm2", "w2", 0)]:  # inputs: signed, then after a ReLU
        assert {a.name: a.i for a in nodes[name].attribute} == {"x_signed": x_signed, "w_signed": 1}
        # without the refit, the weight bases are QEM's on W [out, in]
        np.testing.assert_array_equal(inits[weight + "_lq_basis"], qcore.lq_fit(weights[weight].T.copy(), kw).basis)
    probe = rng.standard_normal((40, 3, 16)).astype(np.float32)
    y = qcore.Session(lq).run({"x": probe})["y"]
    np.testing.assert_allclose(y, ort_run(export, probe, tmp_path), rtol=1e-4, atol=1e-4 * np.abs(y).max())


def test_gemm_bias_must_be_one_value_per_output_and_shared_inputs(rng, tmp_path):
    """A Gemm's C [1, O] or [O] becomes LQGemm's B; a C [M, 1] (M = O here, so it broadcasts) is not a bias
    and its Gemm stays float. Layers reading one value (as Q, K and V do) each fit their bases on it."""
    w = [rng.standard_normal((16, 8)).astype(np.float32) for _ in range(3)]
    c = [rng.standard_normal(shape).astype(np.float32) for shape in [(1, 8), (8, 1), (8,)]]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w%d" % k, "c%d" % k], ["y%d" % k], name="g%d" % k) for k in range(3)], "bias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
        [helper.make_tensor_value_info("y%d" % k, TensorProto.FLOAT, [8, 8]) for k in range(3)],
        [numpy_helper.from_array(a, "w%d" % k) for k, a in enumerate(w)] +
        [numpy_helper.from_array(a, "c%d" % k) for k, a in enumerate(c)])
    model = qcore.Model.from_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    x = rng.standard_normal((64, 16)).astype(np.float32)
    lq, export, result = qcore.lq_replace(pipeline_of(model, x, batch=8, name="x"), 3, 3)
    assert (result.replaced, result.kept) == (2, 1)
    assert [(n.name, n.op_type, n.inputs[-1]) for n in lq.nodes] == [("g0", "LQGemm", "c0"), ("g1", "Gemm", "c1"),
                                                                    ("g2", "LQGemm", "c2")]
    inits = initializers(lq, tmp_path)
    expected = qcore.lq_fit(x.reshape(1, -1), 3, "signed").basis[0]
    for k in (0, 2):
        np.testing.assert_array_equal(inits["w%d_lq_input_basis" % k], expected)
    probe = rng.standard_normal((8, 16)).astype(np.float32)
    y = qcore.Session(lq).run({"x": probe})["y0"]
    np.testing.assert_allclose(y, ort_run(export, probe, tmp_path), rtol=1e-5, atol=1e-5 * np.abs(y).max())


def test_export_encodes_values_on_and_beside_thresholds_as_qcore_does(rng, tmp_path):
    """The export's x >= (the smallest float above each double threshold) gives qc_lq.h's
    rule for every float: inputs exactly on, just below and just above each threshold, signed and unsigned;
    the export keeps the model's opset (11 and 17 here)."""
    for signed, opset in ((True, 11), (False, 17)):
        w = rng.standard_normal((16, 8)).astype(np.float32)
        graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="g")], "t",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
                                  [numpy_helper.from_array(w, "w")])
        model = qcore.Model.from_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString())
        calib = rng.standard_normal((64, 16)).astype(np.float32)
        calib = calib if signed else np.abs(calib)
        lq, export, _ = qcore.lq_replace(pipeline_of(model, calib, batch=64, name="x"), 2, 3)
        x_basis = initializers(lq, tmp_path)["w_lq_input_basis"]
        _, _, thresholds = qcore.lq_levels(x_basis[None], "signed" if signed else "unsigned")
        near = np.concatenate([[np.float32(t), np.nextafter(np.float32(t), np.float32(-np.inf)),
                                np.nextafter(np.float32(t), np.float32(np.inf))] for t in thresholds[0]])
        probe = np.resize(near, (4, 16)).astype(np.float32)  # every value, in several columns
        y = qcore.Session(lq).run({"x": probe})["y"]
        levels = oracle.decode(oracle.encode(probe.reshape(1, -1), x_basis[None], "signed" if signed else "unsigned"),
                               x_basis[None].astype(np.float64), "signed" if signed else "unsigned").reshape(probe.shape)
        np.testing.assert_allclose(ort_run(export, probe, tmp_path), y, rtol=1e-5, atol=1e-5 * np.abs(y).max())
        assert [(o.domain, o.version) for o in onnx.load(str(tmp_path / "model.onnx")).opset_import] == [("", opset)]
        inputs = next(n for n in onnx.load(str(tmp_path / "model.onnx")).graph.node if n.op_type == "Gemm").input[0]
        exported_levels = onnx_reference_value(tmp_path / "model.onnx", inputs, probe)
        np.testing.assert_array_equal(exported_levels, levels.astype(np.float32))


def onnx_reference_value(path, name, x):
    """Intermediate value `name` of the model at `path` on input x, by onnxruntime (made a graph output)."""
    model = onnx.load(str(path))
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([name], {session.get_inputs()[0].name: x})[0]


def test_output_aware_codes_bring_the_model_closer_to_float():
    """One-bit weights (W1A2) on the Fashion MLP: with code rounds the replaced model's logits are clearly
    closer to the float model's (mean squared difference on held-out images) than with the refit alone."""
    calib = fashion("train-images-idx3-ubyte.gz", 1024).astype(np.float32) / 255
    test = fashion("t10k-images-idx3-ubyte.gz", 1000).astype(np.float32) / 255
    reference = qcore.Session(qcore.Model(MLP)).run({"input": test})["logits"]
    errors = {}
    for rounds in (0, 2):
        lq, _, _ = qcore.lq_replace(pipeline_of(qcore.Model(MLP), calib), weight_bits=1, input_bits=2,
                                    code_rounds=rounds)
        errors[rounds] = np.mean((qcore.Session(lq).run({"input": test})["logits"] - reference) ** 2)
    assert errors[2] < 0.7 * errors[0], errors


def test_replacement_errors_are_named(rng, tmp_path):
    model, _ = small_model(rng)
    x = rng.standard_normal((8, 3, 16)).astype(np.float32)
    with pytest.raises(qcore.InvalidArgumentError, match="no calibration batch"):
        qcore.lq_replace(qcore.Pipeline(model))
    with pytest.raises(qcore.InvalidArgumentError, match="weight_bits = 5 and input_bits = 2 must be in 1..4"):
        qcore.lq_replace(pipeline_of(model, x, name="x"), weight_bits=5)
    with pytest.raises(qcore.InvalidArgumentError, match="code_rounds = 17 is outside -1..16"):
        qcore.lq_replace(pipeline_of(model, x, name="x"), code_rounds=17)
    with pytest.raises(qcore.InvalidArgumentError, match="assign_damping = 0 is outside"):
        qcore.lq_replace(pipeline_of(model, x, name="x"), assign_damping=0.0)
    bad = x.copy()
    bad[3, 1, 7] = np.inf
    with pytest.raises(qcore.NumericError, match="layer 'w1'"):
        qcore.lq_replace(pipeline_of(model, bad, name="x"))
    conv = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3, 3])],
        [numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(qcore.UnsupportedError, match="no fully-connected layer"):
        qcore.lq_replace(pipeline_of(qcore.Model.from_bytes(conv.SerializeToString()),
                                     np.ones((1, 2, 5, 5), np.float32), name="x"))


def test_progress_counts_layers_and_may_cancel(rng):
    model, _ = small_model(rng)
    x = rng.standard_normal((16, 3, 16)).astype(np.float32)
    seen = []
    ctx = qcore.Context(threads=1, progress=lambda stage, done, total: seen.append((stage, done, total)))
    qcore.lq_replace(pipeline_of(model, x, name="x", ctx=ctx))
    assert [s for s in seen if s[0] == "replacing layers"] == [("replacing layers", 1, 2), ("replacing layers", 2, 2)]
    ctx = qcore.Context(threads=1, progress=lambda stage, done, total: stage == "replacing layers" and done == 1)
    with pytest.raises(qcore.CancelledError):
        qcore.lq_replace(pipeline_of(model, x, name="x", ctx=ctx))


def test_a_model_with_batches_gives_what_its_pipeline_gives(rng, tmp_path):
    model, _ = small_model(rng)
    x = rng.standard_normal((48, 3, 16)).astype(np.float32)
    batches = [{"x": x[k:k + 16]} for k in range(0, 48, 16)]
    direct, _, _ = qcore.lq_replace(model, 2, 3, batches=batches, ctx=qcore.Context(threads=1))
    through, _, _ = qcore.lq_replace(pipeline_of(model, x, batch=16, name="x"), 2, 3)
    have, want = initializers(direct, tmp_path), initializers(through, tmp_path)
    assert sorted(have) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(have[name], want[name], err_msg=name)
    with pytest.raises(qcore.InvalidArgumentError, match="give calibration 'batches'"):
        qcore.lq_replace(model)
    with pytest.raises(qcore.InvalidArgumentError, match="go with a Model"):
        qcore.lq_replace(pipeline_of(model, x, name="x"), batches=batches)


# ---- qcore lq ------------------------------------------------------------------------------------------

def qcore_tool(*args):
    if not TOOL:
        pytest.skip("QCORE_TOOL (the built tool) is not set")
    return subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=600)


def test_tool_writes_what_lq_replace_gives(tmp_path):
    raw = fashion("train-images-idx3-ubyte.gz", 600)
    np.save(tmp_path / "calib.npy", raw.reshape(-1, 28, 28))
    out, export = tmp_path / "lq.onnx", tmp_path / "ort.onnx"
    run = qcore_tool("lq", MLP, "--weight-bits", 1, "--act-bits", 2, "--data", "input=%s" % (tmp_path / "calib.npy"),
                     "--input-scale", 1 / 255, "--samples", 500, "--batch", 100, "-o", out, "--export-ort", export, "-q")
    assert run.returncode == 0, run.stderr
    assert "W1A2: 3 fully-connected layers replaced" in run.stdout
    x = (raw[:500] * (1 / 255)).astype(np.float32)  # as the tool scales: in double, then rounded
    lq, ort_model, _ = qcore.lq_replace(pipeline_of(qcore.Model(MLP), x, batch=100), weight_bits=1, input_bits=2)
    have, want = initializers(qcore.Model(str(out)), tmp_path), initializers(lq, tmp_path)
    assert sorted(have) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(have[name], want[name], err_msg=name)
    probe = fashion("t10k-images-idx3-ubyte.gz", 200).astype(np.float32) / 255
    np.testing.assert_allclose(ort_run(qcore.Model(str(export)), probe, tmp_path, "a.onnx"),
                               ort_run(ort_model, probe, tmp_path, "b.onnx"), rtol=1e-5, atol=1e-5)


def test_tool_output_is_the_same_for_any_thread_count(tmp_path):
    """Results do not depend on the thread count: "all cores" (0, the default) resolves to the cores, so the
    executor's products take the same path as the same count given explicitly."""
    np.save(tmp_path / "calib.npy", fashion("train-images-idx3-ubyte.gz", 300).reshape(-1, 28, 28))
    written = []
    for threads in (0, 1, 2, 3):
        out = tmp_path / ("lq%d.onnx" % threads)
        run = qcore_tool("lq", MLP, "--data", "input=%s" % (tmp_path / "calib.npy"), "--input-scale", 1 / 255,
                         "--samples", 300, "--batch", 100, "--threads", threads, "-o", out, "-q")
        assert run.returncode == 0, run.stderr
        written.append(out.read_bytes())
    assert all(w == written[0] for w in written[1:])


def test_tool_bad_input_leaves_no_file(tmp_path):
    out, export = tmp_path / "lq.onnx", tmp_path / "ort.onnx"
    export.write_bytes(b"kept")
    assert qcore_tool("lq", "--help").returncode == 0
    np.save(tmp_path / "calib.npy", np.zeros((4, 784), np.float32))
    cases = [(["--weight-bits", 5], 2, "--weight-bits takes an integer in 1..4"),
             (["--act-bits", 0], 2, "--act-bits takes an integer in 1..4"),
             (["--bogus"], 2, "see qcore lq --help")]
    for extra, code, message in cases:
        run = qcore_tool("lq", MLP, "--data", "input=%s" % (tmp_path / "calib.npy"), "-o", out, "--export-ort", export, *extra)
        assert run.returncode == code and message in run.stderr, (extra, run.returncode, run.stderr)
    run = qcore_tool("lq", MLP, "--data", "input=%s" % (tmp_path / "missing.npy"), "-o", out, "--export-ort", export)
    assert run.returncode == 3 and "missing.npy" in run.stderr, run.stderr
    bad = np.zeros((4, 784), np.float32)
    bad[2, 5] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    run = qcore_tool("lq", MLP, "--data", "input=%s" % (tmp_path / "nan.npy"), "-o", out, "--export-ort", export)
    assert run.returncode == 1 and "fc1.weight" in run.stderr, run.stderr
    assert not out.exists() and export.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npy", "nan.npy", "ort.onnx"]
