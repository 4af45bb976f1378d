"""The Ethos-U weight-stream codec against Arm Vela's own C codec (ethosu.mlw_codec from ethos-u-vela):
every stream qcore encodes must be byte-identical to mlw_codec.encode of the same weights, and decode back
to them with both qcore's decoder and Vela's.

The 10,000 random arrays mix the distributions whose encoder decisions differ: uniform (no palette, raw or
Golomb-Rice), sparse (zero runs), Gaussian of random width (palettes of every size), all-zero (the coded
first zero), single-value (the padded 1-entry palette), 2- and 4-bit-valued (small palettes, truncated
codes), and drifting widths (palette restarts mid-stream). Lengths: 9,600 are short (log-uniform 1..4,000,
where most decision boundaries are: palette sizes, window heuristics at 32..1,024 non-zero values, chunk
tails), and 400 are long (20,000..70,000) so that slices reach their 32,767-value limit and long streams
restart palettes. That keeps the run to about ten seconds on two cores while covering both regimes; the
verbose-log tests below check, with Vela's own slice log, that the long ones do split and restart."""
import numpy as np
import pytest

import qcore

mlw_codec = pytest.importorskip("ethosu.mlw_codec")

VELA_VECTOR = [0, 2, 3, 0, -1, -2, -3, 0, 0, 0, 1, -250, 240] * 3
VELA_VECTOR_STREAM = (b"\xb8\x00\\q^\x1f\xfc\x01\x03\x05\x08\x0c\x10\x908\x12\xd7\x99:\xd2\x99$\xae#\x9d\xa9#\x00"
                      b"\xf0\xff\xff\xff")
KINDS = ["uniform", "sparse", "gaussian", "all_zero", "single", "two_bit", "four_bit", "drifting"]
SHORT, LONG = 9600, 400


def draw(rng, kind, n):
    if kind == "uniform":
        w = rng.integers(-255, 256, n)
    elif kind == "sparse":
        w = np.where(rng.random(n) < rng.uniform(0.6, 0.99), 0, rng.integers(-40, 41, n))
    elif kind == "gaussian":
        w = np.round(rng.normal(0, rng.uniform(0.3, 80), n))
    elif kind == "all_zero":
        w = np.zeros(n)
    elif kind == "single":
        w = np.full(n, rng.integers(-255, 256))
    elif kind == "two_bit":
        w = rng.integers(-2, 2, n)
    elif kind == "four_bit":
        w = rng.integers(-8, 8, n)
    else:  # the width changes every few hundred values
        block = int(rng.integers(64, 2048))
        widths = rng.uniform(0.3, 60, n // block + 1)
        w = np.round(rng.normal(0, 1, n) * np.repeat(widths, block)[:n])
    return np.clip(w, -255, 255).astype(np.int16)


def arrays(count, seed, lo, hi):
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        n = int(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))) if lo == 1 else int(rng.integers(lo, hi + 1))
        yield kind, draw(rng, kind, max(n, 1))


def check_against_vela(w, kind):
    ours = qcore.ethosu_encode(w)
    theirs = bytes(mlw_codec.encode(w.tolist()))
    assert ours == theirs, "%s, n=%d: %d bytes vs Vela's %d" % (kind, w.size, len(ours), len(theirs))
    assert np.array_equal(qcore.ethosu_decode(ours), w), kind
    assert mlw_codec.decode(bytearray(ours)) == w.tolist(), kind


def test_vela_test_vector():
    w = np.array(VELA_VECTOR, np.int16)
    assert qcore.ethosu_encode(w) == VELA_VECTOR_STREAM
    assert qcore.ethosu_decode(VELA_VECTOR_STREAM).tolist() == VELA_VECTOR


@pytest.mark.parametrize("part", range(8))
def test_short_arrays_match_vela(part):
    for kind, w in arrays(SHORT // 8, 1000 + part, 1, 4000):
        check_against_vela(w, kind)


@pytest.mark.parametrize("part", range(4))
def test_long_arrays_match_vela(part):
    for kind, w in arrays(LONG // 4, 2000 + part, 20000, 70000):
        check_against_vela(w, kind)


@pytest.mark.parametrize("n", [1, 2, 11, 12, 13, 32767, 32768, 65535])
@pytest.mark.parametrize("value", [0, 1, -1, 255, -255])
def test_boundaries_match_vela(n, value):
    """Lengths at chunk (12) and slice (32,767) edges, with the extreme and smallest values."""
    check_against_vela(np.full(n, value, np.int16), "single")
    w = np.zeros(n, np.int16)
    w[-1] = value
    check_against_vela(w, "last")


def slices(w, capfd):
    """Vela's own log of the slices it writes: (length, new palette) per slice."""
    capfd.readouterr()
    mlw_codec.encode(w.tolist(), 1)
    out = capfd.readouterr().out
    return [(int(line.split("slicelen")[1].split()[0]), int(line.split("newpal")[1].split()[0]))
            for line in out.splitlines() if line.startswith("slice:")]


def test_long_arrays_cross_the_slice_limit_and_restart_palettes(capfd):
    rng = np.random.default_rng(7)
    uniform = draw(rng, "two_bit", 70000)
    assert any(length == 32767 for length, _ in slices(uniform, capfd))
    drifting = draw(rng, "drifting", 60000)
    assert sum(new for _, new in slices(drifting, capfd)) > 1
    check_against_vela(uniform, "two_bit")
    check_against_vela(drifting, "drifting")


def test_concatenated_streams_decode_as_one():
    a, b = np.arange(-5, 6, dtype=np.int16), np.full(40, 9, np.int16)
    both = qcore.ethosu_decode(qcore.ethosu_encode(a) + qcore.ethosu_encode(b))
    assert both.tolist() == a.tolist() + b.tolist()


# ---- errors ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [256, -256, 32767, -32768])
def test_out_of_range_weight_is_named(bad):
    w = np.zeros(100, np.int16)
    w[37] = bad
    with pytest.raises(qcore.InvalidArgumentError, match=r"element 37 is %d, outside -255\.\.255" % bad):
        qcore.ethosu_encode(w)
    with pytest.raises(ValueError):  # Vela refuses it too
        mlw_codec.encode(w.tolist())


def test_empty_input_is_refused():
    with pytest.raises(qcore.InvalidArgumentError, match="'n' is 0"):
        qcore.ethosu_encode(np.zeros(0, np.int16))
    with pytest.raises(qcore.FormatError, match="'size' is 0"):
        qcore.ethosu_decode(b"")


def test_wrong_dtype_is_refused():
    with pytest.raises(qcore.DTypeError, match="int16"):
        qcore.ethosu_encode(np.zeros(4, np.int32))


def test_every_truncation_of_a_stream_fails_cleanly():
    """Cutting a valid stream anywhere before its padding leaves a stream without end marker, or one that
    ends inside a slice: both are format errors, never a crash or a partial result."""
    stream = qcore.ethosu_encode(draw(np.random.default_rng(3), "sparse", 3000))
    payload = len(stream.rstrip(b"\xff"))
    for cut in range(1, payload):
        with pytest.raises(qcore.FormatError):
            qcore.ethosu_decode(stream[:cut])


@pytest.mark.parametrize("header,message", [
    (0b100, "reserved ZDIV value 4"),
    (0b101, "reserved ZDIV value 5"),
])
def test_reserved_zdiv_is_named(header, message):
    with pytest.raises(qcore.FormatError, match=message):
        qcore.ethosu_decode(bytes([header]) + b"\x00" * 15)


def test_first_slice_without_palette_is_refused():
    # ZDIV 6, SLICELEN 0, WDIV 0, WTRUNC 0, NEWPAL 0: bits 0-2 = 110
    with pytest.raises(qcore.FormatError, match="none was defined"):
        qcore.ethosu_decode(bytes([0b110]) + b"\x00" * 15)


def test_reserved_wdiv_is_named():
    # ZDIV 6, SLICELEN 0, WDIV 6 (bits 18-20), NEWPAL 1 (bit 22), then an empty palette header
    bits = 6 | (6 << 18) | (1 << 22)
    with pytest.raises(qcore.FormatError, match="reserved WDIV value 6"):
        qcore.ethosu_decode(bits.to_bytes(8, "little") + b"\xff" * 8)


def test_random_bytes_never_crash():
    rng = np.random.default_rng(11)
    decoded = 0
    for _ in range(3000):
        data = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        try:
            w = qcore.ethosu_decode(data)
        except qcore.FormatError:
            continue
        decoded += 1
        assert np.abs(w.astype(np.int32)).max(initial=0) <= 255
    assert decoded < 3000
