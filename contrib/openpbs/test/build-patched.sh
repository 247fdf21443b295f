#!/usr/bin/env bash
# Builds OpenPBS with the patch series of contrib/openpbs/patches applied:
# the source tarball beside BUILD_SH, patched, packed again beside a copy
# of BUILD_SH, which builds it as it builds the stock one. The result is
# kept under ROOT/<hash of the patches>/ (default ROOT
# /var/cache/momgate-openpbs-patched), so a build happens once per series;
# a change to any patch builds anew. Prints the install prefix (PBS_EXEC)
# as its last line, as build.sh does.
#
#   contrib/openpbs/test/build-patched.sh BUILD_SH [ROOT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
patches=$(cd "$here/../patches" && pwd)
build=$1
root=${2:-/var/cache/momgate-openpbs-patched}
[ -x "$build" ] || { echo "build-patched: no build script $build" >&2; exit 2; }
tarball=$(ls "$(dirname "$build")"/openpbs-*.tar.gz | head -n 1)
key=$(cat "$patches"/*.patch | sha256sum | cut -c1-16)
dir=$root/$key
mkdir -p "$dir"
# One build per series at a time; others wait for it and reuse it.
exec 9>"$dir/lock"
flock 9
if [ ! -f "$dir/pkg/ready" ]; then
  echo "build-patched: applying $(ls "$patches"/*.patch | wc -l) patches to $(basename "$tarball")" >&2
  rm -rf "$dir/pkg" "$dir/work"
  mkdir -p "$dir/pkg" "$dir/work"
  tar -xzf "$tarball" -C "$dir/work"
  top=$(ls "$dir/work")
  for p in "$patches"/*.patch; do
    if command -v patch >/dev/null; then
      patch -d "$dir/work/$top" -p1 --batch --forward --quiet <"$p"
    else
      (cd "$dir/work/$top" && git apply "$p")
    fi || { echo "build-patched: $(basename "$p") does not apply to $(basename "$tarball")" >&2; exit 1; }
  done
  tar -czf "$dir/pkg/$(basename "$tarball")" -C "$dir/work" "$top"
  cp "$build" "$dir/pkg/build.sh"
  rm -rf "$dir/work"
  touch "$dir/pkg/ready"
fi
"$dir/pkg/build.sh" "$dir"
