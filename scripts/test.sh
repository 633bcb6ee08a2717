#!/usr/bin/env bash
# Every test: the Rust workspace (unit and integration tests, with real qemu-nbd, nbdkit, sshd) and the
# end-to-end suites that run real ansible-playbook against the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }
say "Rust tests (cargo test --workspace)"
cargo test --workspace -q
say "end-to-end tests (pytest tests/, real ansible-playbook)"
.venv/bin/pytest -q tests "$@"
