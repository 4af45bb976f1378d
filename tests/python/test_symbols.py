"""The shared libraries' exported symbols, their version scripts, and what the Python package declares.

Each library is found as qcore/_ffi.py finds it: its environment variable (QCORE_LIBRARY,
QCORE_ONNX_LIBRARY) when set, else a file beside the installed package (a pip install bundles it there),
else the system's (then taken from the process's memory map). Either way it must be the file this
process actually loaded.
"""
import os
import re
import shutil
import subprocess

import pytest

import qcore
from qcore import ffi, lib
from qcore._ffi import onnx_lib

ABI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "abi")
# stem, environment variable, cffi library object
LIBRARIES = {"libqcore": ("QCORE_LIBRARY", lib), "libqcore-onnx": ("QCORE_ONNX_LIBRARY", onnx_lib)}


def loaded_libraries(stem):
    """Real paths of the `stem` files mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    except OSError:
        return None
    return {os.path.realpath(p) for p in paths if os.path.basename(p).startswith(stem + ".so")}


def library_path(stem):
    variable = LIBRARIES[stem][0]
    if os.environ.get(variable):
        return os.environ[variable]
    package_dir = os.path.dirname(os.path.abspath(qcore.__file__))
    bundled = sorted(n for n in os.listdir(package_dir) if n.startswith(stem + ".so"))
    if bundled:
        return os.path.join(package_dir, bundled[0])
    loaded = loaded_libraries(stem)
    if loaded:
        return sorted(loaded)[0]
    pytest.skip("cannot locate the loaded " + stem)


def exported_symbols(path):
    """{name: version} of the defined dynamic symbols (nm -D --defined-only), version nodes left out."""
    if shutil.which("nm") is None:
        pytest.skip("nm is not installed")
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[1] == "A":  # 'A': the version node itself (LIBQCORE_1.0)
            continue
        name, _, version = fields[2].partition("@")
        symbols[name] = version.lstrip("@")
    return symbols


def version_script(path):
    """{node: set of global names} of a GNU ld version script."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/|#[^\n]*", "", f.read(), flags=re.S)
    nodes = {}
    for node, body in re.findall(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*[\w.]*\s*;", text, flags=re.S):
        names = set()
        scope = "global"
        for item in re.split(r"[;\s]+", body):
            if item in ("global:", "local:"):
                scope = item[:-1]
            elif item and scope == "global":
                names.add(item)
        nodes[node] = names
    return nodes


@pytest.fixture(scope="module", params=sorted(LIBRARIES))
def stem(request):
    return request.param


@pytest.fixture(scope="module")
def path(stem):
    p = library_path(stem)
    loaded = loaded_libraries(stem)
    if loaded is not None:
        assert os.path.realpath(p) in loaded, (p, loaded)
    return p


@pytest.fixture(scope="module")
def symbols(path):
    return exported_symbols(path)


@pytest.fixture(scope="module")
def script(stem):
    map_file = os.path.join(ABI_DIR, stem + ".map")
    if not os.path.exists(map_file):
        pytest.skip("abi/%s.map is not beside these tests" % stem)
    return version_script(map_file)


def test_exports_are_the_version_script(symbols, script):
    declared = set().union(*script.values())
    assert declared, "no global names parsed from the version script"
    assert set(symbols) == declared, ("exported but not in the map: %s; in the map but not exported: %s"
                                      % (sorted(set(symbols) - declared), sorted(declared - set(symbols))))
    for name, version in symbols.items():
        assert name in script.get(version, ()), "%s is exported with version %r, not its map node" % (name, version)


def test_every_export_is_reachable_from_python(stem, symbols):
    library = LIBRARIES[stem][1]
    missing = [name for name in sorted(symbols) if not hasattr(library, name)]
    assert not missing, "not declared in the package's cdef: %s" % missing
    for name in symbols:
        assert callable(getattr(library, name)), name


def test_declared_functions_are_the_exports():
    """Every function of the package's cdef resolves (ABI mode looks each name up on first use; a lookup in
    libqcore-onnx also searches libqcore, its dependency), and the functions declared are exactly the two
    libraries' exports together."""
    exports = {stem: set(exported_symbols(library_path(stem))) for stem in LIBRARIES}
    declared = set()
    for name in dir(lib):
        if isinstance(getattr(onnx_lib, name, None), int):
            continue  # an enum constant or macro
        homes = [stem for stem, (_, library) in LIBRARIES.items() if _resolves(library, name)]
        assert homes, "%s is declared but neither library defines it" % name
        declared.add(name)
    assert declared == exports["libqcore"] | exports["libqcore-onnx"]


def _resolves(library, name):
    try:
        value = getattr(library, name)
    except AttributeError:
        return False
    assert ffi.typeof(value).kind == "function", name
    return True


def test_version():
    path = library_path("libqcore")
    number = lib.qc_version_number()
    text = ffi.string(lib.qc_version_string()).decode()
    assert number // 10000 == 1
    major, minor, patch = (int(p) for p in text.split("."))
    assert number == major * 10000 + minor * 100 + patch
    assert qcore.__version__ == text
    assert qcore.library_version() == text
    # the soname carries the same major version
    if shutil.which("readelf"):
        dynamic = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
        assert "Library soname: [libqcore.so.%d]" % major in dynamic


def test_version_script_parser():
    """The parser on a script with two nodes, comments and a wildcard local section."""
    import tempfile
    text = "/* c */ V_1.0 { global: a; b; local: *; };\nV_1.1 { global:\n c; } V_1.0;\n"
    with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as f:
        f.write(text)
    try:
        assert version_script(f.name) == {"V_1.0": {"a", "b"}, "V_1.1": {"c"}}
    finally:
        os.unlink(f.name)
