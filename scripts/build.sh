#!/usr/bin/env bash
# Release build of the collection's binaries. Module binaries and the agent are static (musl) when the
# musl target is installed, so they run on any x86_64 Linux (UBI 9, any conversion host); otherwise
# they are linked statically against glibc.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }

if rustup target list --installed 2>/dev/null | grep -q '^x86_64-unknown-linux-musl$'; then
  target=x86_64-unknown-linux-musl
  flags=()
else
  target=x86_64-unknown-linux-gnu
  flags=(--config 'target.x86_64-unknown-linux-gnu.rustflags=["-C","target-feature=+crt-static"]')
fi
say "building module binaries and osm-agent (release, $target)"
cargo build -q --release --target "$target" "${flags[@]}" -p osm-modules -p osm-agent
out=target/$target/release

modules=()
for src in crates/modules/src/bin/*.rs; do
  modules+=("$(basename "$src" .rs)")
done
mkdir -p plugins/modules files target/release
for m in "${modules[@]}"; do
  install -m 0755 "$out/$m" "plugins/modules/$m"
done
install -m 0755 "$out/osm-agent" files/osm-agent
install -m 0755 "$out/osm-agent" target/release/osm-agent

if [ -d crates/cloudsim ]; then
  say "building osm-cloudsim (release)"
  cargo build -q --release -p osm-cloudsim
fi

mkdir -p ansible_collections/osm
ln -sfn ../.. ansible_collections/osm/workloads
say "built ${#modules[@]} modules into plugins/modules/: ${modules[*]}"
