"""Checks that a shared library exports exactly the symbols its version script lists, each under a
version node of that script (nothing else leaks: no internals, no protobuf-c symbols).
Usage: check-exports.py LIBRARY VERSION_SCRIPT"""
import re
import subprocess
import sys


def map_symbols(path):
    """{symbol: node} for the names listed in the global sections of a version script."""
    text = re.sub(r"/\*.*?\*/", "", open(path, encoding="utf-8").read(), flags=re.S)
    symbols = {}
    for node, body in re.findall(r"([\w.]+)\s*\{(.*?)\}\s*[\w.]*\s*;", text, flags=re.S):
        global_part = body.split("local:")[0].replace("global:", "")
        for name in re.findall(r"([A-Za-z_]\w*)\s*;", global_part):
            symbols[name] = node
    return symbols


def exported_symbols(library):
    """{symbol: version} of the defined dynamic symbols, version nodes themselves excluded."""
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] == "A":
            continue
        name, _, version = parts[2].partition("@@")
        symbols[name] = version
    return symbols


def main(library, version_script):
    listed, exported = map_symbols(version_script), exported_symbols(library)
    problems = ["exported but not in the map: " + n for n in sorted(set(exported) - set(listed))]
    problems += ["in the map but not exported: " + n for n in sorted(set(listed) - set(exported))]
    problems += ["%s is exported under %r, the map puts it in %r" % (n, exported[n], listed[n])
                 for n in sorted(set(listed) & set(exported)) if exported[n] != listed[n]]
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print("%d exported symbols match %s" % (len(exported), version_script))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
