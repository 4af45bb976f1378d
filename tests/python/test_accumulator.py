"""The executor's P-bit accumulator simulation against a numpy model of the same register: terms added
in order of the reduction index, wrap-around or saturation after each partial sum."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import qcore


def register_matmul(a, b, bits, mode):
    """numpy oracle: (result, events, overflowing dot products, max |exact partial sum|)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), np.int64)
    events = overflowing = top = 0
    for i in range(m):
        for j in range(n):
            terms = a[i].astype(np.int64) * b[:, j].astype(np.int64)
            top = max(top, int(np.max(np.abs(np.cumsum(terms)))) if k else 0)
            reg, seen = 0, 0
            for t in terms:
                reg += int(t)
                if lo <= reg <= hi:
                    continue
                seen += 1
                reg = (reg - lo) % (hi - lo + 1) + lo if mode == "wrap" else min(max(reg, lo), hi)
            out[i, j] = reg
            events += seen
            overflowing += seen > 0
    return out, events, overflowing, top


def matmul_integer_model(m, k, n):
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.INT8, [m, k]), helper.make_tensor_value_info("b", TensorProto.INT8, [k, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return qcore.Model.from_bytes(model.SerializeToString())


@pytest.mark.parametrize("bits", [10, 14, 16])
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("threads", [1, 2])
def test_register_matches_numpy(bits, mode, threads):
    rng = np.random.default_rng(bits)
    a = rng.integers(-128, 128, (5, 64)).astype(np.int8)
    b = rng.integers(-128, 128, (64, 7)).astype(np.int8)
    session = qcore.Session(matmul_integer_model(5, 64, 7), qcore.Context(threads=threads))
    exact = session.run({"a": a, "b": b})["y"]
    assert np.array_equal(exact, a.astype(np.int64) @ b.astype(np.int64))
    assert session.accumulator_stats()["dot_products"] == 0  # exact mode simulates nothing
    session.set_accumulator(bits, mode)
    got = session.run({"a": a, "b": b})["y"]
    want, events, overflowing, top = register_matmul(a, b, bits, mode)
    assert np.array_equal(got, want)
    stats = session.accumulator_stats()
    assert stats == {"dot_products": 35, "overflowing_products": overflowing, "overflow_events": events,
                     "max_abs_partial_sum": top}
    assert events > 0  # these widths are too narrow for 64 int8 products: the simulation has work to do


def test_wide_register_sees_no_overflow():
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (3, 32)).astype(np.int8)
    b = rng.integers(-128, 128, (32, 4)).astype(np.int8)
    session = qcore.Session(matmul_integer_model(3, 32, 4))
    session.set_accumulator(32, "wrap")
    assert np.array_equal(session.run({"a": a, "b": b})["y"], a.astype(np.int64) @ b.astype(np.int64))
    stats = session.accumulator_stats()
    assert stats["overflow_events"] == 0 and stats["dot_products"] == 12
    assert stats["max_abs_partial_sum"] <= 32 * 128 * 128


def test_bad_accumulator_settings():
    session = qcore.Session(matmul_integer_model(1, 1, 1))
    with pytest.raises(qcore.InvalidArgumentError, match="'bits'"):
        session.set_accumulator(1, "wrap")
    with pytest.raises(qcore.InvalidArgumentError, match="'bits'"):
        session.set_accumulator(33, "saturate")
    with pytest.raises(ValueError, match="mode"):
        session.set_accumulator(16, "round")
