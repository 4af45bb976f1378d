"""Scales and bias entries against Vela: quantise_scale and reduced_quantise_scale (ethosu.vela.scaling) over
magnitudes from 2^-80 to 2^40 (shifts in and out of 0..63), exact powers of two, values a hair beside
rounding ties, negatives and zero; U55/U65 entries against npu_encode_bias over bias magnitudes up to the
40-bit limits. U85 entries (not reachable through Vela's Python API) against their layout written out with
int.to_bytes."""
import numpy as np
import pytest

import qcore

scaling = pytest.importorskip("ethosu.vela.scaling")
api = pytest.importorskip("ethosu.vela.api")


def scales():
    rng = np.random.default_rng(5)
    out = [0.0, 1.0, 0.5, 2.0**-31, 2.0**-32, 2.0**32, 2.0**31, 2.0**-33, 1e-300, 3.0e-5, 0.0039215686]
    out += list(np.exp2(rng.uniform(-80, 40, 3000)))
    out += [float(m) * 2.0**e for e in range(-40, 33, 3) for m in rng.uniform(0.5, 1, 20)]
    # m * 2^31 exactly half-way between integers, and one ulp either side
    for k in rng.integers(2**30, 2**31, 200):
        tie = (float(k) + 0.5) / 2.0**31
        out += [tie, np.nextafter(tie, 0), np.nextafter(tie, 1)]
    out += [np.nextafter(1.0, 0), np.nextafter(0.5, 1)]
    return out + [-s for s in out[:500]]


@pytest.mark.parametrize("ours,theirs", [
    (qcore.ethosu_quantise_scale, scaling.quantise_scale),
    (qcore.ethosu_reduced_quantise_scale, scaling.reduced_quantise_scale),
])
def test_scales_match_vela(ours, theirs):
    for s in scales():
        assert ours(s) == tuple(int(v) for v in theirs(s)), s


@pytest.mark.parametrize("function", [qcore.ethosu_quantise_scale, qcore.ethosu_reduced_quantise_scale])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scale_is_refused(function, bad):
    with pytest.raises(qcore.NumericError, match="'s'"):
        function(bad)


def test_u55_entries_match_vela():
    rng = np.random.default_rng(6)
    limit = 2**39
    biases = [0, 1, -1, limit - 1, -limit] + [int(b) for b in rng.integers(-limit, limit, 2000)]
    biases += [int(b) for b in rng.integers(-2**20, 2**20, 500)]
    for b in biases:
        scale, shift = int(rng.integers(0, 2**32)), int(rng.integers(0, 64))
        assert qcore.ethosu_pack_bias(b, scale, shift) == bytes(api.npu_encode_bias(np.int64(b), scale, shift)), b
    for s in scales()[:1000]:
        if s <= 0:
            continue
        scale, shift = scaling.quantise_scale(s)
        if scale < 2**32:
            assert qcore.ethosu_pack_bias(-7, scale, shift) == bytes(api.npu_encode_bias(np.int64(-7), scale, shift))


@pytest.mark.parametrize("bias,scale,shift", [(2**39, 0, 0), (-2**39 - 1, 0, 0), (0, 2**32, 0), (0, -1, 0),
                                              (0, 0, 64), (0, 0, -1)])
def test_u55_entry_out_of_range(bias, scale, shift):
    name = "bias" if bias else "scale" if scale else "shift"
    with pytest.raises(qcore.InvalidArgumentError, match="'%s'" % name):
        qcore.ethosu_pack_bias(bias, scale, shift)


@pytest.mark.parametrize("acc,bias_bytes,scale_bits", [(32, 4, 31), (48, 6, 15)])
def test_u85_entries_layout(acc, bias_bytes, scale_bits):
    rng = np.random.default_rng(acc)
    for _ in range(500):
        b = int(rng.integers(-2**(acc - 1), 2**(acc - 1)))
        s, sh = int(rng.integers(0, 2**scale_bits)), int(rng.integers(0, 64))
        expect = (b.to_bytes(bias_bytes, "little", signed=True) + s.to_bytes(8 - bias_bytes, "little")
                  + bytes([sh, 0]))
        assert qcore.ethosu85_pack_bias(b, s, sh, acc) == expect
    with pytest.raises(qcore.InvalidArgumentError, match="'bias'"):
        qcore.ethosu85_pack_bias(2**(acc - 1), 0, 0, acc)
    with pytest.raises(qcore.InvalidArgumentError, match="'scale'"):
        qcore.ethosu85_pack_bias(0, 2**scale_bits, 0, acc)
