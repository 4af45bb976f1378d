"""Fails when a shared library depends (DT_NEEDED) on any of the named libraries.
Usage: check-dependencies.py LIBRARY FORBIDDEN_PREFIX..."""
import subprocess
import sys


def needed(library):
    out = subprocess.run(["readelf", "-d", library], check=True, capture_output=True, text=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def main(library, *forbidden):
    deps = needed(library)
    bad = [d for d in deps if d.startswith(forbidden)]
    if bad:
        print("%s must not depend on %s" % (library, ", ".join(bad)), file=sys.stderr)
        return 1
    print("%s depends on %s only" % (library, ", ".join(deps)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], *sys.argv[2:]))
