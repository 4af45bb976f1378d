"""LSTM and If in qcore's executor, and the Silero VAD models that need them.

Oracles: a numpy implementation of the ONNX LSTM equations (itself checked against onnxruntime where
onnxruntime supports the case), onnxruntime for If graphs, and onnxruntime on every Silero VAD model of
the silero-vad wheel, run frame by frame over a speech clip with the state carried (rtol 1e-4, atol 1e-5).
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
RTOL, ATOL = 1e-4, 1e-5


def build(nodes, inputs, outputs, initializers=(), opset=14):
    """(qcore.Model, serialized ModelProto) of a one-graph model."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    data = proto.SerializeToString()
    return qcore.Model.from_bytes(data), data


def value(name, elem=TensorProto.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def run_ort(data, feed):
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


# ----------------------------------------------------------------------------------------------- LSTM
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_reference(x, w, r, b=None, lens=None, h0=None, c0=None, p=None, direction="forward", layout=0, clip=None,
                   input_forget=0):
    """The ONNX LSTM equations in float64: (Y, Y_h, Y_c), gates i o f c, peepholes i o f."""
    if layout:
        x = x.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    x = x.astype(np.float64)
    steps, batch, _ = x.shape
    dirs, hidden = w.shape[0], w.shape[1] // 4
    lens = np.full(batch, steps) if lens is None else np.asarray(lens)
    y = np.zeros((steps, dirs, batch, hidden))
    y_h = np.zeros((dirs, batch, hidden))
    y_c = np.zeros((dirs, batch, hidden))
    bound = (lambda z: np.clip(z, -clip, clip)) if clip else (lambda z: z)
    for d in range(dirs):
        bias = 0 if b is None else b[d, :4 * hidden] + b[d, 4 * hidden:]
        p_i, p_o, p_f = np.zeros((3, hidden)) if p is None else np.split(p[d].astype(np.float64), 3)
        h = np.zeros((batch, hidden)) if h0 is None else h0[d].astype(np.float64)
        c = np.zeros((batch, hidden)) if c0 is None else c0[d].astype(np.float64)
        reverse = direction == "reverse" or d == 1
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            z_i, z_o, z_f, z_c = np.split(x[t] @ w[d].T + h @ r[d].T + bias, 4, axis=1)
            i = sigmoid(bound(z_i + p_i * c))
            f = 1 - i if input_forget else sigmoid(bound(z_f + p_f * c))
            c_new = f * c + i * np.tanh(bound(z_c))
            h_new = sigmoid(bound(z_o + p_o * c_new)) * np.tanh(c_new)
            active = (t < lens)[:, None]
            h, c = np.where(active, h_new, h), np.where(active, c_new, c)
            y[t, d] = np.where(active, h_new, 0)
        ran = (lens > 0)[:, None]  # onnxruntime's states of an empty sequence are zeros, not the initial ones
        y_h[d], y_c[d] = np.where(ran, h, 0), np.where(ran, c, 0)
    if layout:
        return y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)
    return y, y_h, y_c


LSTM_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


def lstm_case(rng, steps=5, batch=3, size=4, hidden=6, direction="forward", layout=0, bias=True, lens=False,
              state=True, peepholes=False):
    """Random LSTM inputs {name: array} in the layout's shapes (absent optional inputs left out)."""
    dirs = 2 if direction == "bidirectional" else 1
    x_shape = (batch, steps, size) if layout else (steps, batch, size)
    state_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    feed = {
        "X": rng.standard_normal(x_shape).astype(np.float32),
        "W": (0.5 * rng.standard_normal((dirs, 4 * hidden, size))).astype(np.float32),
        "R": (0.5 * rng.standard_normal((dirs, 4 * hidden, hidden))).astype(np.float32),
    }
    if bias:
        feed["B"] = (0.3 * rng.standard_normal((dirs, 8 * hidden))).astype(np.float32)
    if lens:
        feed["sequence_lens"] = rng.integers(0, steps + 1, batch).astype(np.int32)
    if state:
        feed["initial_h"] = rng.standard_normal(state_shape).astype(np.float32)
        feed["initial_c"] = rng.standard_normal(state_shape).astype(np.float32)
    if peepholes:
        feed["P"] = (0.5 * rng.standard_normal((dirs, 3 * hidden))).astype(np.float32)
    return feed


def lstm_model(feed, outputs=("Y", "Y_h", "Y_c"), **attrs):
    """An LSTM node over graph inputs named as in `feed`; outputs not listed are left empty."""
    inputs = [name if name in feed else "" for name in LSTM_INPUTS]
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("LSTM", inputs, [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")], name="lstm", **attrs)
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}
    graph_inputs = [value(name, elem[a.dtype], a.shape) for name, a in feed.items()]
    return build([node], graph_inputs, [value(o) for o in outputs])


def reference_of(feed, **attrs):
    args = {"b": "B", "lens": "sequence_lens", "h0": "initial_h", "c0": "initial_c", "p": "P"}
    return lstm_reference(feed["X"], feed["W"], feed["R"], **{k: feed.get(v) for k, v in args.items()},
                          direction=attrs.get("direction", "forward"), layout=attrs.get("layout", 0),
                          clip=attrs.get("clip"), input_forget=attrs.get("input_forget", 0))


LSTM_CASES = {
    "forward": ({}, {}),
    "reverse": ({"direction": "reverse"}, {"direction": "reverse"}),
    "bidirectional": ({"direction": "bidirectional"}, {"direction": "bidirectional"}),
    "sequence_lens": ({"lens": True}, {}),
    "sequence_lens_bidirectional": ({"lens": True, "direction": "bidirectional"}, {"direction": "bidirectional"}),
    "peepholes": ({"peepholes": True}, {}),
    "layout1": ({"layout": 1}, {"layout": 1}),
    "layout1_bidirectional_lens": ({"layout": 1, "direction": "bidirectional", "lens": True, "peepholes": True},
                                   {"layout": 1, "direction": "bidirectional"}),
    "clip": ({}, {"clip": 0.7}),
    "input_forget": ({"peepholes": True}, {"input_forget": 1}),
    "no_bias_no_state": ({"bias": False, "state": False}, {}),
    "one_step": ({"steps": 1, "batch": 1}, {}),
}


@pytest.mark.parametrize("case", sorted(LSTM_CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_lstm_matches_numpy(case, threads):
    shape, attrs = LSTM_CASES[case]
    feed = lstm_case(np.random.default_rng(sorted(LSTM_CASES).index(case)), **shape)
    model, _ = lstm_model(feed, hidden_size=6, **attrs)
    got = qcore.Session(model, qcore.Context(threads=threads)).run(feed)
    for name, want in zip(("Y", "Y_h", "Y_c"), reference_of(feed, **attrs)):
        np.testing.assert_allclose(got[name], want, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_numpy_reference_matches_onnxruntime(direction):
    """The oracle itself, on the cases onnxruntime runs (layout 0)."""
    feed = lstm_case(np.random.default_rng(1), direction=direction, lens=True, peepholes=True)
    _, data = lstm_model(feed, hidden_size=6, direction=direction)
    want = run_ort(data, feed)
    for name, mine in zip(("Y", "Y_h", "Y_c"), reference_of(feed, direction=direction)):
        np.testing.assert_allclose(mine, want[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_lstm_optional_outputs_and_hidden_size_from_r():
    """Only Y_h asked for; hidden_size absent (taken from R)."""
    feed = lstm_case(np.random.default_rng(2))
    model, _ = lstm_model(feed, outputs=("Y_h",))
    got = qcore.Session(model).run(feed)
    np.testing.assert_allclose(got["Y_h"], reference_of(feed)[1], rtol=RTOL, atol=ATOL)


def test_lstm_sequence_state_carried_equals_one_call():
    """Running steps one at a time with Y_h/Y_c fed back equals one call over all steps."""
    feed = lstm_case(np.random.default_rng(3), steps=6, batch=2)
    model, _ = lstm_model(feed, hidden_size=6)
    whole = qcore.Session(model).run(feed)
    step_feed = dict(feed, X=feed["X"][:1])
    step_model, _ = lstm_model(step_feed, hidden_size=6)
    session = qcore.Session(step_model)
    for t in range(6):
        out = session.run(dict(step_feed, X=feed["X"][t:t + 1]))
        np.testing.assert_allclose(out["Y"][0], whole["Y"][t], rtol=RTOL, atol=ATOL)
        step_feed["initial_h"], step_feed["initial_c"] = out["Y_h"], out["Y_c"]
    np.testing.assert_allclose(step_feed["initial_c"], whole["Y_c"], rtol=RTOL, atol=ATOL)


def lstm_error(feed, error, match, **attrs):
    feed = {name: np.ascontiguousarray(a) for name, a in feed.items()}
    model, _ = lstm_model(feed, **attrs)
    with pytest.raises(error, match=match):
        qcore.Session(model).run(feed)


def test_lstm_bad_inputs():
    rng = np.random.default_rng(4)
    feed = lstm_case(rng)
    lstm_error(dict(feed, W=feed["W"][:, :20]), qcore.ShapeError, r"LSTM node 'lstm': W must have shape \[1, 24, 4\]")
    lstm_error(dict(feed, R=feed["R"][:, :, :5]), qcore.ShapeError, "hidden_size 6 disagrees with R", hidden_size=6)
    lstm_error(dict(feed, B=feed["B"][:, :40]), qcore.ShapeError, r"B must have shape \[1, 48\]")
    lstm_error(dict(feed, initial_h=feed["initial_h"][:, :2]), qcore.ShapeError, r"initial_h must have shape \[1, 3, 6\]")
    lstm_error(dict(feed, X=feed["X"][0]), qcore.ShapeError, "X must have rank 3")
    lstm_error(dict(feed, sequence_lens=np.array([1, 9, 2], np.int32)), qcore.InvalidArgumentError,
               r"sequence_lens\[1\] = 9 is outside 0..5")
    lstm_error(feed, qcore.InvalidArgumentError, "direction 'sideways'", direction="sideways")
    lstm_error(feed, qcore.InvalidArgumentError, "layout 2", layout=2)
    lstm_error(feed, qcore.InvalidArgumentError, "clip must be positive", clip=-1.0)
    lstm_error(feed, qcore.InvalidArgumentError, "2 activations given, 3 needed", activations=["Sigmoid", "Tanh"])
    lstm_error(feed, qcore.UnsupportedError, "activation 'HardSigmoid' is not supported",
               activations=["HardSigmoid", "Tanh", "Tanh"])


def test_lstm_missing_weights():
    feed = lstm_case(np.random.default_rng(5), bias=False, state=False)
    node = helper.make_node("LSTM", ["X", "W", ""], ["Y"], name="lstm", hidden_size=6)
    model, _ = build([node], [value("X", shape=feed["X"].shape), value("W", shape=feed["W"].shape)], [value("Y")])
    with pytest.raises(qcore.InvalidArgumentError, match="LSTM node 'lstm': input 2 is missing"):
        qcore.Session(model).run({"X": feed["X"], "W": feed["W"]})


def test_lstm_relu_activations_match_numpy():
    """Relu as g and h (a supported non-default activation), against a numpy cell."""
    feed = lstm_case(np.random.default_rng(6), steps=3, batch=2, bias=False, state=False)
    model, _ = lstm_model(feed, hidden_size=6, activations=["Sigmoid", "Relu", "Relu"])
    got = qcore.Session(model).run(feed)["Y_h"][0]
    h = c = np.zeros((2, 6))
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    for t in range(3):
        z_i, z_o, z_f, z_c = np.split(feed["X"][t] @ feed["W"][0].T + h @ feed["R"][0].T, 4, axis=1)
        c = sigmoid(z_f) * c + sigmoid(z_i) * relu(z_c)
        h = sigmoid(z_o) * relu(c)
    np.testing.assert_allclose(got, h, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------------- If
def branch(name, nodes, outputs):
    return helper.make_graph(nodes, name, [], [value(o) for o in outputs])


def if_node(cond, then_graph, else_graph, outputs, name="if"):
    return helper.make_node("If", [cond], outputs, name=name, then_branch=then_graph, else_branch=else_graph)


def outer_scope_model():
    """y = If(c) then x * w + k else x - k, where w is an initializer and k a node output of the main graph,
    both read by the branches from the outer scope; z = Relu(y) after the If."""
    then_graph = branch("then", [helper.make_node("Mul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "k"], ["t"])], ["t"])
    else_graph = branch("else", [helper.make_node("Sub", ["x", "k"], ["e"])], ["e"])
    nodes = [helper.make_node("Neg", ["x"], ["k"]), if_node("c", then_graph, else_graph, ["y"]),
             helper.make_node("Relu", ["y"], ["z"])]
    w = numpy_helper.from_array(np.array([2.0, -3.0, 0.5], np.float32), "w")
    return build(nodes, [value("c", TensorProto.BOOL, []), value("x", shape=[3])], [value("y"), value("z")], [w])


def test_if_takes_either_branch_and_reads_outer_scope():
    model, data = outer_scope_model()
    session = qcore.Session(model)
    x = np.array([1.0, 2.0, -4.0], np.float32)
    for cond in (True, False, True, False):  # alternating runs reuse the outputs' storage
        got = session.run({"c": np.array(cond, np.uint8), "x": x})
        want = run_ort(data, {"c": np.array(cond), "x": x})
        for name in ("y", "z"):
            np.testing.assert_array_equal(got[name], want[name])


def test_nested_if_reads_grandparent_values():
    """An If inside the then-branch whose branches read a main-graph input and a value of the outer branch."""
    inner_then = branch("inner_then", [helper.make_node("Add", ["x", "u"], ["a"])], ["a"])
    inner_else = branch("inner_else", [helper.make_node("Mul", ["x", "u"], ["b"])], ["b"])
    outer_then = branch("outer_then", [helper.make_node("Abs", ["x"], ["u"]),
                                       if_node("c2", inner_then, inner_else, ["inner"], name="inner_if")], ["inner"])
    outer_else = branch("outer_else", [helper.make_node("Identity", ["x"], ["same"])], ["same"])
    nodes = [if_node("c1", outer_then, outer_else, ["y"], name="outer_if")]
    inputs = [value("c1", TensorProto.BOOL, []), value("c2", TensorProto.BOOL, []), value("x", shape=[4])]
    model, data = build(nodes, inputs, [value("y")])
    session = qcore.Session(model)
    x = np.array([-1.5, 2.0, 0.0, -3.0], np.float32)
    for c1 in (True, False):
        for c2 in (True, False):
            got = session.run({"c1": np.array(c1, np.uint8), "c2": np.array(c2, np.uint8), "x": x})["y"]
            np.testing.assert_array_equal(got, run_ort(data, {"c1": np.array(c1), "c2": np.array(c2), "x": x})["y"])


def test_if_branch_may_output_outer_values_and_constants():
    """A branch without nodes returns an outer value (copied, since the outer graph owns it); the other a
    Constant; two outputs of one name."""
    then_graph = helper.make_graph([], "then", [], [value("x"), value("x")])
    const = numpy_helper.from_array(np.array([7.0, 8.0], np.float32), "v")
    else_graph = branch("else", [helper.make_node("Constant", [], ["k"], value=const)], ["k", "k"])
    model, _ = build([if_node("c", then_graph, else_graph, ["y1", "y2"])],
                        [value("c", TensorProto.BOOL, []), value("x", shape=[2])], [value("y1"), value("y2")])
    session = qcore.Session(model)
    x = np.array([1.0, 2.0], np.float32)
    for cond in (True, False, True):  # onnxruntime refuses such branches: numpy is the oracle
        got = session.run({"c": np.array(cond, np.uint8), "x": x})
        for name in ("y1", "y2"):
            np.testing.assert_array_equal(got[name], x if cond else [7.0, 8.0])


def test_if_ordered_after_producers_of_what_branches_read():
    """The If node comes first in the file, the node making the value its branch reads after it."""
    then_graph = branch("then", [helper.make_node("Identity", ["late"], ["t"])], ["t"])
    else_graph = branch("else", [helper.make_node("Identity", ["x"], ["e"])], ["e"])
    nodes = [if_node("c", then_graph, else_graph, ["y"]), helper.make_node("Sigmoid", ["x"], ["late"])]
    model, _ = build(nodes, [value("c", TensorProto.BOOL, []), value("x", shape=[2])], [value("y")])
    x = np.array([0.0, 1.0], np.float32)
    got = qcore.Session(model).run({"c": np.array(True, np.uint8), "x": x})["y"]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-x)), rtol=1e-6)


def if_session_error(then_graph, else_graph, error, match, outputs=("y",)):
    model, _ = build([if_node("c", then_graph, else_graph, list(outputs))], [value("c", TensorProto.BOOL, []), value("x", shape=[2])],
                     [value(o) for o in outputs])
    with pytest.raises(error, match=match):
        qcore.Session(model)


def identity_branch(name="b", output="o"):
    return branch(name, [helper.make_node("Identity", ["x"], [output])], [output])


def test_unsupported_op_in_branch_fails_at_creation():
    nested = branch("inner", [helper.make_node("Hardmax", ["x"], ["h"], name="deep_node")], ["h"])
    then_graph = branch("then", [if_node("c", nested, identity_branch(), ["n"], name="inner_if")], ["n"])
    if_session_error(then_graph, identity_branch(), qcore.UnsupportedError, "'Hardmax'.*'deep_node'")


def test_if_branch_reading_a_missing_name_fails_at_creation():
    ghost = branch("then", [helper.make_node("Relu", ["ghost"], ["o"])], ["o"])
    if_session_error(ghost, identity_branch(), qcore.FormatError, "then_branch of If node 'if' reads 'ghost'")


def test_if_branch_initializers_are_refused_clearly():
    then_graph = helper.make_graph([helper.make_node("Add", ["x", "i"], ["o"])], "then", [], [value("o")],
                                   [numpy_helper.from_array(np.ones(2, np.float32), "i")])
    if_session_error(then_graph, identity_branch(), qcore.UnsupportedError, "then_branch of If node 'if' has initializers")


def run_if(then_graph, else_graph, cond, outputs=("y",)):
    untyped = value("c", TensorProto.UNDEFINED)  # so that any dtype reaches the If
    model, _ = build([if_node("c", then_graph, else_graph, list(outputs))], [untyped, value("x", shape=[2])],
                     [value(o) for o in outputs])
    return qcore.Session(model).run({"c": cond, "x": np.zeros(2, np.float32)})


def test_if_bad_conditions_and_branches():
    good = identity_branch()
    with pytest.raises(qcore.DTypeError, match="If node 'if': input 0 .* has dtype f32"):
        run_if(good, good, np.array(1.0, np.float32))
    with pytest.raises(qcore.ShapeError, match="condition must hold one element, it holds 2"):
        run_if(good, good, np.array([1, 0], np.uint8))
    two = branch("two", [helper.make_node("Identity", ["x"], ["p"]), helper.make_node("Identity", ["x"], ["q"])], ["p", "q"])
    for cond in (1, 0):  # the branch not taken is checked too
        with pytest.raises(qcore.FormatError, match="then_branch has 2 outputs, the node 1"):
            run_if(two, good, np.array(cond, np.uint8))
    with pytest.raises(qcore.FormatError, match="else_branch has 1 outputs, the node 2"):
        run_if(two, good, np.array(1, np.uint8), outputs=("y", "z"))


def test_float16_graphs_are_refused_clearly():
    model, _ = build([helper.make_node("Relu", ["x"], ["y"])], [value("x", TensorProto.FLOAT16, [2])],
                     [value("y", TensorProto.FLOAT16, [2])])
    with pytest.raises(qcore.UnsupportedError, match="'x' has element type FLOAT16"):
        qcore.Session(model)


# --------------------------------------------------------------------------------------------- Silero
# Every silero_vad*.onnx of silero-vad 6.2.3. silero_vad_half.onnx holds no float16 tensor (its weights are
# float32 values rounded to half precision), so it runs like the others.
SILERO_MODELS = ["silero_vad.onnx", "silero_vad_16k_op15.onnx", "silero_vad_16k_sequence.onnx", "silero_vad_half.onnx",
                 "silero_vad_op18_ifless.onnx", "silero_vad_openvino_16k.onnx"]


@pytest.fixture(scope="module")
def silero():
    """(data folder of the silero-vad wheel, [frames, 576] of the speech clip)."""
    package = pytest.importorskip("silero_vad")
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    import silero_info
    audio = silero_info.read_wav(silero_info.DEFAULT_WAV)
    return os.path.join(os.path.dirname(package.__file__), "data"), silero_info.frames_with_context(audio)


def assert_close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("name", SILERO_MODELS)
def test_silero_matches_onnxruntime_frame_by_frame(silero, name):
    folder, frames = silero
    path = os.path.join(folder, name)
    ours = qcore.Session(qcore.Model(path), qcore.Context(threads=1))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in theirs.get_inputs()]
    if "h" in input_names:  # the sequence model: every frame in one call, h and c in and out
        feed = {"input": frames, "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}
        got = ours.run(feed)
        for o, want in zip(theirs.get_outputs(), theirs.run(None, feed)):
            assert_close(got[o.name], want, o.name)
        return
    ours_state = theirs_state = np.zeros((2, 1, 128), np.float32)
    speech = []
    for k, frame in enumerate(frames):  # each side carries its own state, as a streaming user would
        extra = {"sr": np.array(16000, np.int64)} if "sr" in input_names else {}
        got = ours.run({"input": frame[None, :], "state": ours_state, **extra})
        want_prob, theirs_state = theirs.run(None, {"input": frame[None, :], "state": theirs_state, **extra})
        assert_close(got["output"], want_prob, "frame %d" % k)
        ours_state = got["stateN"]
        speech.append(float(got["output"].ravel()[0]))
    assert_close(ours_state, theirs_state, "state after the last frame")
    assert max(speech) > 0.9 and min(speech) < 0.1, "the clip holds speech and silence"
