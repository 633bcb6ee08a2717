#!/usr/bin/env bash
# Builds the collection tarball into build/ (or the directory given) and reports its size against
# Galaxy's 20 MB limit. Prints the tarball's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build}
mkdir -p "$out"
rm -f "$out"/osm-workloads-*.tar.gz
.venv/bin/ansible-galaxy collection build --force --output-path "$out" . >&2
tarball=$(ls "$out"/osm-workloads-*.tar.gz)
size=$(stat -c %s "$tarball")
printf '==> %s: %s bytes (%s MiB); Galaxy accepts up to 20 MB\n' "$tarball" "$size" "$(awk "BEGIN{printf \"%.1f\", $size/1048576}")" >&2
if [ "$size" -ge 20000000 ]; then
  echo "==> the collection tarball is over Galaxy's 20 MB upload limit" >&2
  exit 1
fi
echo "$tarball"
