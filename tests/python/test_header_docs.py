"""Every public function is documented in its header: each QC_API / QC_ONNX_API declaration in
include/qcore/*.h has a comment right above it (no blank line between), or follows, with no blank line, a
declaration that has one (a group such as qc_model_input / qc_model_output shares its comment). The checker
is tested on headers written here, so that it is known to fail where it should."""
import glob
import os
import re

import pytest

INCLUDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "include", "qcore")
START = re.compile(r"^\s*(QC_API|QC_ONNX_API)\s")
NAME = re.compile(r"\b(qc_\w+)\s*\(")


def declarations(text):
    """[(first line number, name, end line index)] of the exported declarations in `text`."""
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        if START.match(lines[i]):
            first = i
            while ";" not in lines[i]:
                i += 1
            match = NAME.search(" ".join(lines[first:i + 1]))
            found.append((first, match.group(1) if match else lines[first].strip(), i))
        i += 1
    return found


def undocumented(text):
    """Names of the declarations without a comment right above them (or above their group)."""
    lines = text.splitlines()
    missing, documented_ends = [], set()
    for first, name, end in declarations(text):
        above = lines[first - 1].strip() if first > 0 else ""
        if above.endswith("*/") or above.startswith("//") or first - 1 in documented_ends:
            documented_ends.add(end)
        else:
            missing.append("%s (line %d)" % (name, first + 1))
    return missing


def test_checker_finds_undocumented_declarations():
    header = """
/* Frees x. */
QC_API void qc_a_free(qc_a *a);

QC_API qc_status qc_b(int x,
                      int y);
/* Input and output share this comment. */
QC_API qc_status qc_c_input(int i);
QC_API qc_status qc_c_output(int i);

QC_ONNX_API qc_status qc_d(void);
/* A comment, then a blank line: not "right above". */

QC_API int qc_e(void);
// C++-style comments count.
QC_ONNX_API int qc_f(void);
#define QC_API __attribute__((visibility("default")))
"""
    assert [d[1] for d in declarations(header)] == ["qc_a_free", "qc_b", "qc_c_input", "qc_c_output", "qc_d", "qc_e",
                                                    "qc_f"]
    assert undocumented(header) == ["qc_b (line 5)", "qc_d (line 11)", "qc_e (line 14)"]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(INCLUDE, "*.h")) + glob.glob(os.path.join(INCLUDE, "*.h.in"))),
                         ids=os.path.basename)
def test_every_public_function_is_documented(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert undocumented(text) == [], "undocumented in %s" % os.path.basename(path)


def test_the_headers_declare_the_public_functions():
    names = set()
    for path in glob.glob(os.path.join(INCLUDE, "*.h")) + glob.glob(os.path.join(INCLUDE, "*.h.in")):
        with open(path, encoding="utf-8") as f:
            names.update(d[1] for d in declarations(f.read()))
    assert {"qc_ctx_create", "qc_optq", "qc_model_load", "qc_pipeline_run", "qc_model_pack_ethosu"} <= names
    assert len(names) > 150
