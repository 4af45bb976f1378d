"""Mixed precision over a model (qcore.ModelSearch). Oracles: onnxruntime running the model the pipeline
exports for the same configuration (accuracy and cosine recomputed with numpy), and the pipeline's own
reports for a whole model at one width (candidate bytes and output errors are those reports)."""
import os
from dataclasses import replace

import numpy as np
import pytest

import qcore
from gpxq_layers import images

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

MLP = os.path.join(os.path.dirname(__file__), "..", "data", "models", "fashion_mlp.onnx")
TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
TEST_LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
WIDTHS = (0, 8, 4, 2)


@pytest.fixture(scope="module")
def evaluation():
    if not os.path.exists(TEST_IMAGES):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    x = (qcore.load_array(TEST_IMAGES)[:1200].reshape(-1, 784) / 255).astype(np.float32)
    return x, qcore.load_array(TEST_LABELS)[:1200].astype(np.int64)


@pytest.fixture(scope="module")
def search(evaluation):
    x, labels = evaluation
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    s = qcore.ModelSearch(p, qcore.Recipe(method="optq"), widths=WIDTHS)
    for k in range(0, 1200, 400):
        s.add_batch({"input": x[k:k + 400]}, labels=labels[k:k + 400])
    return s


def ort_outputs(model, x, tmp_path):
    path = str(tmp_path / "m.onnx")
    model.save(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def scaled_output_error(y, reference):
    """The model proxy's formula in numpy: each sample's (row's) squared distance from its nearest
    non-negative multiple of the reference output, summed, over the reference's squared norm."""
    y, reference = y.astype(np.float64).reshape(len(y), -1), reference.astype(np.float64).reshape(len(y), -1)
    a = np.maximum(np.sum(y * reference, 1) / np.sum(reference ** 2, 1), 0)
    return np.sum((y - a[:, None] * reference) ** 2) / np.sum(reference ** 2)


@pytest.mark.parametrize("choice", [(0, 0, 0), (2, 2, 2), (3, 1, 2), (1, 3, 0)])
def test_evaluation_equals_onnxruntime_on_the_exported_configuration(search, evaluation, choice, tmp_path):
    x, labels = evaluation
    recipe = search.recipe(choice)
    assert recipe.layer_bits == {"fc1.weight": WIDTHS[choice[0]], "fc2.weight": WIDTHS[choice[1]],
                                 "fc3.weight": WIDTHS[choice[2]]}
    model, reports = search.pipeline.run(recipe.__class__(**{**recipe.__dict__, "sequential": False}))
    logits = ort_outputs(model, x, tmp_path)
    assert search.evaluate(choice) == pytest.approx(np.mean(logits.argmax(1) == labels), abs=0.002)
    third = search.evaluate(choice, fraction=0.3)  # ceil(0.3 * 3) = 1 batch of 400
    assert third == pytest.approx(np.mean(logits[:400].argmax(1) == labels[:400]), abs=0.003)
    assert search.cost(choice) == sum(r.weight_bytes for r in reports)


def test_candidates_are_the_pipeline_reports_at_each_width(search):
    for c, bits in enumerate(WIDTHS[1:], start=1):
        _, reports = search.pipeline.run(qcore.Recipe(method="optq", sequential=False,
                                                      weights=qcore.QuantOptions(bits=bits, granularity="channel", axis=0)))
        for t, r in enumerate(reports):
            assert (search.candidates[t][c].bits, search.candidates[t][c].bytes) == (bits, r.weight_bytes)
            assert search.candidates[t][c].output_error == pytest.approx(r.output_error, rel=1e-12)
    assert [row[0].bytes for row in search.candidates] == [784 * 512 * 4, 512 * 256 * 4, 256 * 10 * 4]
    errors = [[c.output_error for c in row] for row in search.candidates]
    assert all(e[0] == 0 and e[1] < e[2] < e[3] for e in errors)  # fewer bits, larger error


def test_ethosu_and_bit_operation_costs(evaluation, tmp_path):
    """Each 8-bit candidate's Ethos-U stream is what Vela packs for the integers the exported model stores
    (qcore.ethosu_pack_model on the W8 export, itself tested against Vela); bit-operations are the MACs per
    sample times the widths."""
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:128])})
    s = qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(0, 8, 4), ethosu="ethos-u55-128")
    model, _ = p.run(qcore.Recipe(method="rtn", sequential=False))
    packed = qcore.ethosu_pack_model(model, config="ethos-u55-128")
    for t, layer in enumerate(packed):
        assert s.candidates[t][1].ethosu_bytes == layer.stream_bytes
    assert all(row[0].ethosu_bytes == 0 and 0 < row[2].ethosu_bytes < row[1].ethosu_bytes for row in s.candidates)
    macs = [784 * 512, 512 * 256, 256 * 10]
    assert [[c.bit_operations for c in row] for row in s.candidates] == [[m * 32 * 8, m * 8 * 8, m * 4 * 8] for m in macs]
    with pytest.raises(qcore.InvalidArgumentError, match="'config'"):
        qcore.ModelSearch(p, widths=(8,), ethosu="ethos-u99")


def test_without_labels_the_metric_is_the_cosine_to_the_float_model(evaluation, tmp_path):
    x, _ = evaluation
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    s = qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(0, 3))
    s.add_batch({"input": x[:500]})
    model, _ = p.run(qcore.Recipe(method="rtn", sequential=False, layer_bits=s.recipe((1, 1, 0)).layer_bits))
    y, ref = ort_outputs(model, x[:500], tmp_path), ort.InferenceSession(MLP).run(None, {"input": x[:500]})[0]
    cos = np.sum(y * ref, 1) / np.linalg.norm(y, axis=1) / np.linalg.norm(ref, axis=1)
    assert s.evaluate((1, 1, 0)) == pytest.approx(cos.mean(), abs=1e-5)
    assert s.evaluate((1, 1, 0)) < 1 - 1e-4


def test_bad_searches_are_named(search, evaluation):
    x, labels = evaluation
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:64])})
    for widths, match in (((0, 1), "entry 1 is 1"), ((4, 4), "4 is given twice"), ((), "at least one")):
        with pytest.raises(qcore.InvalidArgumentError, match=match):
            qcore.ModelSearch(p, widths=widths)
    with pytest.raises(qcore.InvalidArgumentError, match="no graph output 'probs'"):
        qcore.ModelSearch(p, widths=(8,), output="probs")
    with pytest.raises(qcore.InvalidArgumentError, match="nothing is left to search"):
        qcore.ModelSearch(p, qcore.Recipe(keep_float=("fc1.weight", "fc2.weight", "fc3.weight")))
    empty = qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(8,))
    with pytest.raises(qcore.InvalidArgumentError, match="no evaluation batch"):
        empty.evaluate((0, 0, 0))
    with pytest.raises(qcore.InvalidArgumentError, match="candidate 4 is not below"):
        search.evaluate((0, 4, 0))
    with pytest.raises(qcore.InvalidArgumentError, match="fraction"):
        search.evaluate((0, 0, 0), fraction=0)
    with pytest.raises(qcore.InvalidArgumentError, match="every batch must match"):
        search.add_batch({"input": x[:10]})
    with pytest.raises(qcore.ShapeError, match="labels"):
        empty.add_batch({"input": x[:10]}, labels=labels[:9])
    with pytest.raises(ValueError, match="one candidate per searched layer"):
        search.evaluate((0, 0))


def test_space_tables_are_the_candidates(search):
    for cost, field in (("bytes", "bytes"), ("bit_operations", "bit_operations")):
        space = search.space(cost)
        assert space.num_candidates == [len(WIDTHS)] * 3
        for choice in ((0, 1, 2), (3, 3, 3), (2, 0, 1)):
            total, proxy = space.evaluate(choice)
            assert total == pytest.approx(sum(getattr(search.candidates[t][c], field) for t, c in enumerate(choice)))
            assert proxy == pytest.approx(sum(search.candidates[t][c].proxy for t, c in enumerate(choice)))
    with pytest.raises(qcore.InvalidArgumentError, match="ethosu_config"):
        search.space("ethosu_bytes")


def test_run_evaluates_what_it_reports_and_repeats_for_a_seed(search):
    runs = [search.run(max_evaluations=6, seed=3) for _ in range(2)]
    front = runs[0].front()
    assert len(front) >= 1
    np.testing.assert_array_equal(front.choices, runs[1].front().choices)
    for choice, cost, metric in zip(front.choices, front.cost, front.metric):
        assert cost == search.cost(choice) and metric == search.evaluate(choice)
    costs = np.asarray(front.cost)
    assert np.all(np.diff(costs) > 0) and np.all(np.diff(front.metric) > 0)  # non-dominated, sorted by cost


def test_layer_proxy_is_the_squared_layer_output_error():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:128])})
    s = qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(0, 8, 3), proxy="layer")
    for row in s.candidates:
        assert [c.proxy for c in row] == [c.output_error ** 2 for c in row]
    space = s.space()
    assert space.evaluate((1, 2, 0))[1] == pytest.approx(s.candidates[0][1].output_error ** 2
                                                         + s.candidates[1][2].output_error ** 2)


@pytest.fixture(scope="module")
def calibration():
    x = np.ascontiguousarray(images()[:256])
    return x[:128], x[128:]


@pytest.mark.parametrize("proxy_batches", [1, 0])
def test_model_proxy_equals_onnxruntime_on_one_quantized_weight(calibration, proxy_batches, tmp_path):
    """Each candidate's model proxy is the squared relative error of the model with that weight alone
    quantized (the pipeline's export of the same integers, run by onnxruntime) against the float model, each
    sample's to the nearest non-negative multiple of its float output, on the first proxy_batches
    calibration batches (0: both); the scaled one is that at the lowest width, and at the others that times
    the layer's own squared error ratio."""
    p = qcore.Pipeline(qcore.Model(MLP))
    for x in calibration:
        p.add_batch({"input": x})
    widths = (0, 8, 4, 2)
    s, scaled = (qcore.ModelSearch(p, qcore.Recipe(method="rtn", activation_bits=0), widths=widths, proxy=proxy,
                                   proxy_batches=proxy_batches) for proxy in ("model", "model_scaled"))
    x = np.concatenate(calibration[:proxy_batches or 2])
    reference = ort.InferenceSession(MLP).run(None, {"input": x})[0].astype(np.float64)
    names = [row[0].weight for row in s.candidates]
    for t, row in enumerate(s.candidates):
        assert row[0].proxy == 0
        for c, bits in enumerate(widths[1:], start=1):
            bits_of = {n: (bits if n == names[t] else 0) for n in names}
            model, _ = p.run(qcore.Recipe(method="rtn", activation_bits=0, sequential=False, layer_bits=bits_of))
            y = ort_outputs(model, x, tmp_path).astype(np.float64)
            want = scaled_output_error(y, reference)
            assert row[c].proxy == pytest.approx(want, rel=2e-3), (t, bits)
            assert want < np.sum((y - reference) ** 2) / np.sum(reference ** 2)  # the formula is not the plain one
            assert scaled.candidates[t][c].proxy == pytest.approx(  # measured at 2 bits, scaled by the layer's
                want if bits == 2 else row[3].proxy * (row[c].output_error / row[3].output_error) ** 2, rel=2e-3)
        assert row[1].proxy < row[2].proxy < row[3].proxy  # fewer bits, larger error at the output


def test_model_proxy_keeps_activation_quantizers_and_is_deterministic(calibration, evaluation):
    """With 8-bit activations the reference is the model with every weight float and its activations
    quantized (so a float weight costs 0), which is what evaluate() scores for the all-float choice; a
    second search gives the same proxies bit for bit, and evaluations are unchanged by the proxy passes."""
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": calibration[0]})
    x, labels = evaluation
    searches = []
    for proxy in ("model_scaled", "model_scaled", "layer"):
        s = qcore.ModelSearch(p, qcore.Recipe(method="optq", activation_bits=8), widths=(0, 4, 2), proxy=proxy)
        s.add_batch({"input": x[:400]}, labels=labels[:400])
        searches.append(s)
    a, b, layer = searches
    assert [[c.proxy for c in row] for row in a.candidates] == [[c.proxy for c in row] for row in b.candidates]
    assert all(row[0].proxy == 0 and 0 < row[1].proxy < row[2].proxy for row in a.candidates)
    for choice in ((0, 0, 0), (2, 1, 0), (1, 2, 2)):
        assert a.evaluate(choice) == layer.evaluate(choice)


def test_bad_proxy_options_are_named(calibration):
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": calibration[0]})
    with pytest.raises(qcore.InvalidArgumentError, match="'proxy_batches': 3 is more than the pipeline's 1"):
        qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(0, 4), proxy="model", proxy_batches=3)
    with pytest.raises(qcore.InvalidArgumentError, match="'proxy_batches': 1 is for the model proxy"):
        qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(0, 4), proxy="layer", proxy_batches=1)
    with pytest.raises(ValueError, match="proxy must be one of layer, model, model_scaled, got 'hessian'"):
        qcore.ModelSearch(p, widths=(0, 4), proxy="hessian")
    with pytest.raises(ValueError, match="proxy_batches must be"):
        qcore.ModelSearch(p, widths=(0, 4), proxy_batches=-1)


def test_c_options_version_1_gets_the_layer_proxy_and_bad_enums_are_named(calibration):
    """Through the C API: initialising a version-1 options struct writes nothing past its end; a version-1
    struct (no proxy fields) keeps the layer proxy it always had; a proxy outside qc_model_proxy is named."""
    from qcore._ffi import ffi, onnx_lib
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": calibration[0]})
    v1 = ffi.offsetof("qc_model_search_options", "proxy")  # a version-1 caller's struct ends there
    raw = ffi.new("unsigned char[]", ffi.sizeof("qc_model_search_options") + 8)
    ffi.buffer(raw)[v1:] = b"\xa5" * (len(raw) - v1)
    assert onnx_lib.qc_model_search_options_init(ffi.cast("qc_model_search_options *", raw), 1) == onnx_lib.QC_OK
    assert ffi.buffer(raw)[v1:] == b"\xa5" * (len(raw) - v1)  # nothing written past it
    layer = qcore.ModelSearch(p, widths=(0, 8, 6, 4, 3, 2), proxy="layer")  # the C defaults' widths and recipe
    for version, proxy, status in ((1, 7, onnx_lib.QC_OK), (2, 7, onnx_lib.QC_ERR_INVALID_ARG),
                                   (2, -1, onnx_lib.QC_ERR_INVALID_ARG)):
        opts, out, value = ffi.new("qc_model_search_options *"), ffi.new("qc_model_search **"), ffi.new("double *")
        assert onnx_lib.qc_model_search_options_init(opts, version) == onnx_lib.QC_OK
        opts.proxy = proxy  # beyond a version-1 struct: never read
        assert onnx_lib.qc_model_search_create(out, p._p, opts) == status
        if status != onnx_lib.QC_OK:
            assert "option 'proxy': %d is not a qc_model_proxy" % proxy in ffi.string(onnx_lib.qc_last_error()).decode()
            continue
        try:
            for t, row in enumerate(layer.candidates):
                for c, candidate in enumerate(row):
                    assert onnx_lib.qc_model_search_proxy(out[0], t, c, value) == onnx_lib.QC_OK
                    assert value[0] == candidate.output_error ** 2
            assert onnx_lib.qc_model_search_proxy(out[0], 0, 6, value) == onnx_lib.QC_ERR_INVALID_ARG
        finally:
            onnx_lib.qc_model_search_free(out[0])
# A recipe's rotation (issue 9): the search rotates once and evaluates what the recipe then quantizes.
MNIST_MLP = os.path.join(os.path.dirname(__file__), "..", "data", "models", "mnist_mlp.onnx")
MNIST_SAMPLE = os.path.join(os.path.dirname(__file__), "..", "data", "models", "mnist_sample.npz")


@pytest.fixture(scope="module")
def mnist():
    d = np.load(MNIST_SAMPLE)
    return (d["images"].reshape(-1, 784) / 255).astype(np.float32), d["labels"].astype(np.int64)


@pytest.mark.parametrize("labels", [True, False], ids=["accuracy", "cosine"])
def test_a_rotated_search_evaluates_the_model_its_recipe_quantizes(mnist, labels, tmp_path):
    """With Recipe(rotation='hadamard') every configuration's metric is that of the model Pipeline.run makes
    from search.recipe(choice) (rotated, one pass), as onnxruntime runs it; its cost is that model's bytes;
    and the candidates are not the unrotated search's."""
    x, y = mnist
    p = qcore.Pipeline(qcore.Model(MNIST_MLP))
    p.add_batch({"input": x[:64]}), p.add_batch({"input": x[64:]})
    base = qcore.Recipe(method="optq", activation_bits=8, rotation="hadamard", rotation_seed=5)
    s = qcore.ModelSearch(p, base, widths=WIDTHS)
    s.add_batch({"input": x}, labels=y if labels else None)
    reference = ort_outputs(qcore.Model(MNIST_MLP), x, tmp_path)
    for choice in [(2, 2, 2), (3, 2, 1), (1, 3, 3)]:
        recipe = s.recipe(choice)
        assert (recipe.rotation, recipe.rotation_seed) == ("hadamard", 5)
        model, reports = p.run(replace(recipe, sequential=False))
        assert [r.rotated for r in reports] == [True] * 3
        out = ort_outputs(model, x, tmp_path)
        if labels:
            assert s.evaluate(choice) == pytest.approx(np.mean(out.argmax(1) == y), abs=1.5 / len(y))
        else:
            cos = np.sum(out * reference, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)
            assert s.evaluate(choice) == pytest.approx(cos.mean(), abs=1e-5)
        assert s.cost(choice) == sum(r.weight_bytes for r in reports)
    plain = qcore.ModelSearch(p, replace(base, rotation="none"), widths=WIDTHS)
    errors = [[c.output_error for c in layer] for layer in s.candidates]
    assert errors != [[c.output_error for c in layer] for layer in plain.candidates]


def c_run(search, space, max_evaluations, prior_width=None):
    """qc_model_search_run through the C API (prior_width None: a version-1 options struct)."""
    from qcore._ffi import ffi, lib, onnx_lib
    from qcore.search import Front
    opts, out = ffi.new("qc_search_options *"), ffi.new("qc_search **")
    assert lib.qc_search_options_init(opts, 1 if prior_width is None else 2) == lib.QC_OK
    opts.max_evaluations = max_evaluations
    if prior_width is not None:
        opts.prior_width = prior_width
    assert onnx_lib.qc_model_search_run(search._s, space._space, opts, out) == lib.QC_OK
    try:
        evaluations = ffi.new("qc_search_front **")
        assert lib.qc_search_evaluations(evaluations, out[0]) == lib.QC_OK
        return Front(evaluations[0]).choices
    finally:
        lib.qc_search_free(out[0])


def test_run_narrows_the_prior_for_a_model_proxy(search, evaluation):
    """qc_model_search_run and ModelSearch.run resolve prior_width 0 (and a version-1 struct) to 0.5 for the
    model-level proxy and to the library's 1 for the layer proxy: the same evaluations, in order, as
    qcore.Search with that width; an explicit width is kept."""
    x, labels = evaluation
    layer = qcore.ModelSearch(search.pipeline, qcore.Recipe(method="optq"), widths=WIDTHS, proxy="layer")
    layer.add_batch({"input": x[:400]}, labels=labels[:400])

    def by_search(s, width):
        return s.run(max_evaluations=10, prior_width=width).evaluations().choices

    for s, default in ((search, 0.5), (layer, 1.0)):
        space = s.space()
        want = by_search(s, default)
        for got in (c_run(s, space, 10, 0.0), c_run(s, space, 10), s.run(max_evaluations=10).evaluations().choices):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(c_run(s, space, 10, 2.0), by_search(s, 2.0))
    assert not np.array_equal(by_search(search, 0.5), by_search(search, 1.0))  # the width matters here


# Bad evaluation data: refused with the batch named (the search keeps nothing of it), never scored as NaN.
def mnist_search(p, proxy="layer"):
    return qcore.ModelSearch(p, qcore.Recipe(method="rtn"), widths=(0, 4, 2), proxy=proxy)


@pytest.mark.parametrize("labels", [True, False], ids=["accuracy", "cosine"])
def test_a_non_finite_evaluation_input_is_refused_and_the_search_goes_on(mnist, labels):
    """A NaN in an evaluation batch's float input is refused at add_batch (input, value, element and batch
    named); the batch is not kept: later batches are numbered from the last one kept, and every metric
    equals a fresh search's given only the valid batches. (An Inf is taken: an additive mask may hold it.)"""
    x, y = mnist
    p = qcore.Pipeline(qcore.Model(MNIST_MLP))
    p.add_batch({"input": x[:64]})
    s, fresh = mnist_search(p), mnist_search(p)
    for k in (0, 50):
        fresh.add_batch({"input": x[k:k + 50]}, labels=y[k:k + 50] if labels else None)
    s.add_batch({"input": x[:50]}, labels=y[:50] if labels else None)
    bad = x[50:100].copy()
    bad[3, 17] = np.nan
    with pytest.raises(qcore.NumericError, match=r"input 'input' holds nan \(element %d\) in evaluation batch 1$"
                       % (3 * 784 + 17)):
        s.add_batch({"input": bad}, labels=y[50:100] if labels else None)
    s.add_batch({"input": x[50:100]}, labels=y[50:100] if labels else None)
    for choice in ((2, 2, 2), (1, 2, 0)):
        assert s.evaluate(choice) == fresh.evaluate(choice)
        assert s.evaluate(choice, fraction=0.5) == fresh.evaluate(choice, fraction=0.5)


def test_labels_that_are_no_class_are_refused(mnist):
    """A negative label is refused at add_batch; a label not below the output's 10 classes too once the
    class count is known (the model proxy runs the model at create; the layer proxy's search knows it from
    its first evaluation), and before that at the evaluation that reaches its batch. Refused batches are
    not kept; an accepted bad batch fails every evaluation reaching it, and only those."""
    x, y = mnist
    p = qcore.Pipeline(qcore.Model(MNIST_MLP))
    p.add_batch({"input": x[:64]})
    negative, ten = y[:50].copy(), y[:50].copy()
    negative[5], ten[7] = -1, 10
    model_proxy, layer_proxy = mnist_search(p, proxy="model"), mnist_search(p)
    for s in (model_proxy, layer_proxy):
        with pytest.raises(qcore.InvalidArgumentError, match="label -1 of sample 5 in evaluation batch 0 is negative"):
            s.add_batch({"input": x[:50]}, labels=negative)
    with pytest.raises(qcore.InvalidArgumentError,
                       match="label 10 of sample 7 in evaluation batch 0 is not below the output's 10 classes"):
        model_proxy.add_batch({"input": x[:50]}, labels=ten)
    layer_proxy.add_batch({"input": x[:50]}, labels=y[:50])
    layer_proxy.add_batch({"input": x[50:100]}, labels=ten)  # the class count is not known yet
    with pytest.raises(qcore.InvalidArgumentError,
                       match="label 10 of sample 7 in evaluation batch 1 is not below the output's 10 classes"):
        layer_proxy.evaluate((1, 1, 1))
    first = layer_proxy.evaluate((1, 1, 1), fraction=0.5)  # batch 0 alone
    model_proxy.add_batch({"input": x[:50]}, labels=y[:50])
    assert first == model_proxy.evaluate((1, 1, 1))
    with pytest.raises(qcore.InvalidArgumentError, match="in evaluation batch 2 is not below the output's 10 classes"):
        layer_proxy.add_batch({"input": x[50:100]}, labels=ten)  # known now


def overflow_model(transpose=False):
    """y = x W^T with W = [[1, 0.7], [0.2, 1]] (transposed: its transpose) and its search at widths (float, 2
    bits): 2-bit RTN makes W [[1, 1], [0, 1]], so that on x = [1.8e38, 1.8e38] the float output's first
    element is 3.06e38 and the quantized one's overflows (the tests check both with onnxruntime)."""
    from onnx import TensorProto, helper, numpy_helper
    w = np.array([[1.0, 0.7], [0.2, 1.0]], np.float32)
    nodes = [helper.make_node("Gemm", ["input", "w"], ["xw" if transpose else "y"], transB=1)]
    nodes += [helper.make_node("Transpose", ["xw"], ["y"])] if transpose else []
    graph = helper.make_graph(nodes, "overflow", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, "n"] if transpose else ["n", 2])],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    p = qcore.Pipeline(qcore.Model.from_bytes(model.SerializeToString()))
    p.add_batch({"input": np.random.default_rng(5).standard_normal((16, 2)).astype(np.float32)})
    return p, qcore.ModelSearch(p, qcore.Recipe(method="rtn", activation_bits=0), widths=(0, 2))


def test_a_non_finite_float_reference_is_refused_at_add_batch(tmp_path):
    """Without labels the float model's output is the reference of every sample's cosine: where it
    overflows (onnxruntime agrees), add_batch is refused naming the output, value, element and batch, and
    the search keeps nothing of it."""
    p, s = overflow_model()
    good, bad = np.array([[1, 2], [-3, 1]], np.float32), np.array([[1, 2], [3e38, 3e38]], np.float32)
    assert not np.isfinite(ort_outputs(p.model, bad, tmp_path)[1, 0])
    s.add_batch({"input": good})
    with pytest.raises(qcore.NumericError, match=r"the float model's output 'y' holds inf \(element 2\) on evaluation batch 1$"):
        s.add_batch({"input": bad})
    _, fresh = overflow_model()
    fresh.add_batch({"input": good})
    assert s.evaluate((1,)) == fresh.evaluate((1,)) and np.isfinite(s.evaluate((1,)))


@pytest.mark.parametrize("labels", [True, False], ids=["accuracy", "cosine"])
def test_a_non_finite_quantized_output_scores_0(labels, tmp_path):
    """A sample whose evaluated output holds NaN or Inf scores 0 (wrong, or the cosine of an all-zero
    output), the others as onnxruntime's run of the exported configuration scores them: the metric stays
    finite. Here the overflowing row's argmax is its label (the float model's class), so counting it by
    argmax would call it right."""
    p, s = overflow_model()
    x = np.array([[1, 2], [-3, 1], [1.8e38, 1.8e38], [0.5, -2]], np.float32)
    model, _ = p.run(replace(s.recipe((1,)), sequential=False))
    ref, y = ort_outputs(p.model, x, tmp_path), ort_outputs(model, x, tmp_path)
    assert np.isfinite(ref).all() and np.isinf(y[2, 0]) and np.isfinite(np.delete(y, 2, 0)).all()
    finite = np.isfinite(y).all(1)
    if labels:
        classes = ref.argmax(1)
        assert y[2].argmax() == classes[2]
        want = np.mean(finite & (y.argmax(1) == classes))
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # row 2's cosine is NaN
            cos = np.sum(y * ref, 1) / np.linalg.norm(y, axis=1) / np.linalg.norm(ref, axis=1)
        want = np.mean(np.where(finite, cos, 0))
    s.add_batch({"input": x}, labels=classes if labels else None)
    assert s.evaluate((1,)) == pytest.approx(want, abs=1e-6)
    assert s.evaluate((0,)) == 1


def test_a_minus_infinite_class_score_leaves_the_top_class_readable(tmp_path):
    """Log(Softmax(x W^T)) underflows to -Inf on confident rows: that is a class score, not a broken output,
    so with labels the float configuration is right on every sample, as onnxruntime's argmax says."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Gemm", ["input", "w"], ["z"], transB=1), helper.make_node("Softmax", ["z"], ["p"]),
             helper.make_node("Log", ["p"], ["y"])]
    graph = helper.make_graph(nodes, "log_softmax", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
                              initializer=[numpy_helper.from_array(np.eye(2, dtype=np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    p = qcore.Pipeline(qcore.Model.from_bytes(model.SerializeToString()))
    p.add_batch({"input": np.random.default_rng(5).standard_normal((16, 2)).astype(np.float32)})
    s = qcore.ModelSearch(p, qcore.Recipe(method="rtn", activation_bits=0), widths=(0, 8), proxy="layer")
    x = np.array([[200, 0], [0, 200], [1, 0], [0, 1]], np.float32)
    y = ort_outputs(p.model, x, tmp_path)
    assert np.isneginf(y[:2]).any() and not np.isnan(y).any()
    s.add_batch({"input": x}, labels=y.argmax(1).astype(np.int64))
    assert s.evaluate((0,)) == 1.0


def test_labels_need_one_output_row_per_sample():
    """Labels are one class per row of the output: an output [2, samples] (transposed) gives rows that are
    not the samples, refused rather than compared (with 1 sample, argmax of row 1 would read a label past
    the batch's)."""
    _, s = overflow_model(transpose=True)
    s.add_batch({"input": np.array([[1, 2]], np.float32)}, labels=np.array([0]))
    with pytest.raises(qcore.ShapeError, match="output 'y' has 2 rows for the 1 labels of evaluation batch 0"):
        s.evaluate((1,))
