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
  # Static glibc binaries link the system libssl statically (libssl-dev ships the archives).
  export OPENSSL_STATIC=1
fi
say "building module binaries and osm-agent (release, $target)"
cargo build -q --release --target "$target" "${flags[@]}" -p osm-modules -p osm-agent --bin osm-modules --bin osm-agent
out=target/$target/release

mkdir -p plugins/modules files target/release
install -m 0755 "$out/osm-modules" files/osm-modules
install -m 0755 "$out/osm-agent" files/osm-agent
install -m 0755 "$out/osm-agent" target/release/osm-agent

# Every module is a symlink to the one multi-call binary (see crates/modules/src/main.rs).
modules=()
for doc in plugins/modules/*.yml; do
  m=$(basename "$doc" .yml)
  modules+=("$m")
  ln -sfn ../../files/osm-modules "plugins/modules/$m"
done
for link in plugins/modules/*; do
  case "$link" in *.yml|*.py) continue ;; esac
  [ -f "$link.yml" ] || rm -f "$link"
done
# Documentation-only plugins/modules/<module>.py from each sidecar, for the tools that index only .py
# modules (Galaxy, ansible-doc -l, ansible-test); see scripts/module_docs.py.
python3 scripts/module_docs.py

if [ -d crates/cloudsim ]; then
  # The test fixture in its own profile (Cargo.toml: sim), where the tests and tools look for it.
  say "building osm-cloudsim (profile sim)"
  cargo build -q --profile sim -p osm-cloudsim
  install -m 0755 target/sim/osm-cloudsim target/release/osm-cloudsim
fi

mkdir -p ansible_collections/osm
ln -sfn ../.. ansible_collections/osm/workloads
say "built ${#modules[@]} modules into plugins/modules/: ${modules[*]}"
