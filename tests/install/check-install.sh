#!/usr/bin/env bash
# Installs a build into a scratch prefix, then compiles and runs the C example against it exactly as a
# user would: headers and flags from the installed pkg-config file, the library by its SONAME.
# Usage: tests/install/check-install.sh BUILD_DIR
set -euo pipefail
build=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --destdir "$stage" --quiet
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
  "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='prefix'))")
pcdir=$(dirname "$(find "$stage" -name qcore.pc | head -1)")
[ -n "$pcdir" ] || { echo "check-install: meson install wrote no qcore.pc" >&2; exit 1; }
for header in qcore.h qc_core.h qc_tensor.h qc_quant.h qc_version.h qc_model.h; do
  [ -f "$stage$prefix/include/qcore/$header" ] || { echo "check-install: missing include/qcore/$header" >&2; exit 1; }
done
# The .pc file names the final prefix; point it at the staged copy.
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$stage$prefix" --cflags --libs qcore)
libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$stage$prefix" --variable=libdir qcore)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror "$root/examples/c/quantize_weight.c" $flags -o "$stage/quantize_weight"
readelf -d "$stage/quantize_weight" | grep -q 'NEEDED.*libqcore.so.1' || { echo "check-install: not linked to libqcore.so.1" >&2; exit 1; }
output=$(LD_LIBRARY_PATH="$libdir" "$stage/quantize_weight")
echo "$output"
# Row 0 is (i % 7) - 3.1 for i = 0..7, so its largest magnitude is 3.1: the MSE search keeps the full range
# (no clipping ratio below 1 lowers the error of these 8 values), giving scale 3.1 / 127 and -3.1 -> -127.
case "$output" in *"q[0][0] = -127"*) echo "check-install: installed headers, library and pkg-config work" ;;
  *) echo "check-install: unexpected output" >&2; exit 1 ;; esac

# The ONNX library, through its own pkg-config file (which requires qcore's).
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$stage$prefix" --cflags --libs qcore-onnx)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror "$root/examples/c/inspect_model.c" $flags -o "$stage/inspect_model"
model="$root/tests/data/models/fashion_mlp.onnx"
output=$(LD_LIBRARY_PATH="$libdir" "$stage/inspect_model" "$model")
echo "$output"
# The oracle: the onnx package's view of the same file.
want=$("$root/.venv/bin/python" -c "import onnx, sys; g = onnx.load(sys.argv[1]).graph; print(len(g.node), len(g.initializer))" "$model")
if ! grep -q "^nodes ${want% *}$" <<<"$output" || ! grep -q "^initializers ${want#* }$" <<<"$output" \
   || ! grep -q "^input input FLOAT \[batch, 784\]$" <<<"$output"; then
  echo "check-install: inspect_model disagrees with onnx ($want)" >&2
  exit 1
fi
echo "check-install: libqcore-onnx and its pkg-config file work"

# The AXE example: OPTQ with and without AXE on a fixed random layer, verified by qc_accum_verify. Plain
# OPTQ's 4-bit rows of flat weights need more than 16 bits (the check can fail: it does for them); with
# AXE every tile must pass with at most P = 16 bits.
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$stage$prefix" --cflags --libs qcore)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror "$root/examples/c/quantize_layer_axe.c" $flags -o "$stage/quantize_layer_axe"
output=$(LD_LIBRARY_PATH="$libdir" "$stage/quantize_layer_axe")
echo "$output"
axe=$(grep '^OPTQ+AXE:' <<<"$output" || true)
plain=$(grep '^OPTQ:' <<<"$output" || true)
need=$(sed -n 's/.*max need \([0-9]*\) bits.*/\1/p' <<<"$axe")
plain_need=$(sed -n 's/.*max need \([0-9]*\) bits.*/\1/p' <<<"$plain")
if [[ "$axe" != *"passed 1, failing tiles 0,"* || -z "$need" || "$need" -gt 16 || "$plain" != *"passed 0"* \
      || -z "$plain_need" || "$plain_need" -le 16 ]]; then
  echo "check-install: quantize_layer_axe: AXE must fit P = 16 and plain OPTQ must not" >&2
  exit 1
fi
echo "check-install: OPTQ+AXE through the installed library fits a 16-bit accumulator"
