"""The LQ layer in models: the executor's ai.qcore.LQGemm op (qc_model.h) against numpy (decoded levels,
float64 product) and the bit-serial kernel called directly (the same bits), for every code pairing, Kw and
Ka, row lengths with word and vector tails, batch rows of any rank and the one-row GEMV path; its errors."""
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


def lq_gemm_model(x_shape, planes, w_basis, x_basis, bias=None, x_signed=0, w_signed=1, name="lq"):
    """A one-node model Y = LQGemm(X, planes, bases[, B]) with the parameters as initializers."""
    inits = [numpy_helper.from_array(planes.view(np.int64), "W_planes"), numpy_helper.from_array(w_basis, "W_basis"),
             numpy_helper.from_array(np.asarray(x_basis, np.float32), "X_basis")]
    inputs = ["X", "W_planes", "W_basis", "X_basis"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "B"))
        inputs.append("B")
    node = helper.make_node("LQGemm", inputs, ["Y"], name=name, domain="ai.qcore", x_signed=x_signed, w_signed=w_signed)
    y_shape = list(x_shape[:-1]) + [planes.shape[0]]
    graph = helper.make_graph([node], "lq", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.qcore", 1)])
    return qcore.Model.from_bytes(model.SerializeToString())


def run(model, x, threads=2):
    return qcore.Session(model, qcore.Context(threads=threads)).run({"X": x})["Y"]


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
        y = run(model, x)
        assert y.shape == (3, 5, o)
        rows = x.reshape(-1, n)
        direct = qcore.bitserial_gemm(rows, x_basis, x_code, planes, w_basis, w_code, bias)
        np.testing.assert_array_equal(y.reshape(-1, o), direct)
        w_codes = qcore.lq_encode(w, w_basis, w_code)
        levels_w = oracle.decode(w_codes, w_basis.astype(np.float64), w_code)
        levels_x = oracle.decode(oracle.encode(rows, x_basis[None], x_code), x_basis[None].astype(np.float64), x_code)
        expected = levels_x @ levels_w.T + bias
        np.testing.assert_allclose(y.reshape(-1, o), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max(),
                                   err_msg="Kw=%d Ka=%d" % (kw, ka))


def test_lq_gemm_one_row_runs_the_gemv_with_the_same_bits(rng):
    """One batch row goes to qc_bitserial_gemv; it equals the GEMM's row bit for bit, with or without B,
    and does not depend on the thread count."""
    n, o = 513, 130
    w, w_basis, planes, x_basis = fitted_layer(rng, o, n, 2, 2, "unsigned", "signed")
    x = np.maximum(rng.standard_normal((4, n)), 0).astype(np.float32)
    for bias in (None, rng.standard_normal(o).astype(np.float32)):
        many = run(lq_gemm_model(x.shape, planes, w_basis, x_basis, bias), x)
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
