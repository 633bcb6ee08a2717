#!/usr/bin/env bash
# Every test: the Rust workspace (unit and integration tests, with real qemu-nbd, nbdkit, sshd) and the
# end-to-end suites that run real ansible-playbook against the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }
started=$(date +%s)
say "Rust tests (cargo test --workspace)"
cargo test --workspace -q
say "Rust tests took $(( $(date +%s) - started )) s"
say "end-to-end tests (pytest tests/, real ansible-playbook)"
# Two workers, one test file each at a time (module fixtures stay whole); the tests mostly wait on
# simulated clouds and copies, so this halves the wall time on two cores.
# -rs: a skipped test says why in the summary (e.g. no container engine for the execution environment).
# --durations: where CI's time goes, in every run's output.
.venv/bin/pytest -q -rs -n 2 --dist loadfile --durations=20 tests "$@"
