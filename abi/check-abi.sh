#!/usr/bin/env bash
# Compares a built library with its abidw baseline; fails on any ABI change other than added symbols.
# Usage: abi/check-abi.sh LIBRARY BASELINE.abi PUBLIC_HEADERS_DIR
# After an intended addition (new symbols in a new version node), refresh the baseline with
#   abidw --no-corpus-path --headers-dir include/qcore --out-file abi/NAME.abi build/libqcore/.../NAME.so.1
set -u
library=$1 baseline=$2 headers=$3
abidiff --no-added-syms --headers-dir1 "$headers" --headers-dir2 "$headers" "$baseline" "$library"
status=$?
if [ $status -ne 0 ]; then
  echo "ABI check failed for $library against $baseline (abidiff status $status: 4 = changed, 8 = incompatible)" >&2
  exit 1
fi
echo "ABI of $(basename "$library") matches $(basename "$baseline") (added symbols allowed)"
