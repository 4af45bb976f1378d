"""Generates the cffi declarations of the qcore Python package from the public C headers.

Usage: gen_cdef.py OUTPUT HEADER...

The headers are written so that a declaration-level filter is enough: comments, C++ guards and
preprocessor lines go, integer macros are substituted into the declarations (cffi needs literal array
sizes) and kept as constants, and the export attributes QC_API and QC_ONNX_API are dropped.
"""
import re
import sys

INTEGER_MACRO = re.compile(r"^#\s*define\s+(QC_\w+)\s+(-?\d+)\s*$")
COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def strip_cplusplus_blocks(lines):
    """Drops the lines between '#ifdef __cplusplus' and its '#endif' (the extern "C" braces)."""
    kept, skipping = [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#ifdef __cplusplus"):
            skipping = True
        elif skipping and stripped.startswith("#endif"):
            skipping = False
        elif not skipping:
            kept.append(line)
    return kept


def declarations(text, macros):
    text = COMMENTS.sub("", text).replace("\\\n", " ")
    out = []
    for line in strip_cplusplus_blocks(text.splitlines()):
        stripped = line.strip()
        match = INTEGER_MACRO.match(stripped)
        if match:
            macros[match.group(1)] = match.group(2)
            out.append(stripped)
        elif not stripped.startswith("#"):
            out.append(line.replace("QC_API ", "").replace("QC_ONNX_API ", ""))
    body = "\n".join(out)
    for name, value in macros.items():
        body = re.sub(r"\[\s*%s\s*\]" % name, "[%s]" % value, body)
    return body


def main(argv):
    output, headers = argv[1], argv[2:]
    macros = {}
    parts = []
    for header in headers:
        with open(header, encoding="utf-8") as f:
            parts.append(declarations(f.read(), macros))
    text = "\n".join(parts)
    text = re.sub(r"\n\s*\n+", "\n", text).strip() + "\n"
    with open(output, "w", encoding="utf-8") as f:
        f.write("/* Generated from the qcore public headers by gen_cdef.py; do not edit. */\n" + text)


if __name__ == "__main__":
    main(sys.argv)
