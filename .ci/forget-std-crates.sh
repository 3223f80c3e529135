#!/usr/bin/env bash
# Removes std's own registry dependencies (from rust-src's library/Cargo.lock) from the
# registry cache of the CARGO_HOME given as $1, and fails if there was nothing to remove, so
# the test that follows cannot pass by having nothing to prove.
set -euo pipefail
cargo_home="$1"
lock="$(rustc --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock"
removed=0
while read -r crate; do
  for path in "$cargo_home"/registry/cache/*/"$crate".crate "$cargo_home"/registry/src/*/"$crate"; do
    if [ -e "$path" ]; then
      rm -rf "$path"
      removed=$((removed + 1))
    fi
  done
done < <(awk '
  /^\[\[package\]\]/ { name = ""; version = "" }
  /^name = /        { name = $3; gsub(/"/, "", name) }
  /^version = /     { version = $3; gsub(/"/, "", version) }
  /^source = "registry/ { print name "-" version }
' "$lock")
if [ "$removed" -eq 0 ] || ls "$cargo_home"/registry/cache/*/moto-rt-*.crate >/dev/null 2>&1; then
  echo "forget-std-crates: expected to remove std's crates (moto-rt among them) from $cargo_home; removed $removed" >&2
  exit 1
fi
echo "forget-std-crates: removed $removed cached files of std's dependencies"
