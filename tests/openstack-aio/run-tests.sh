#!/usr/bin/env bash
# `make test-openstack`: the end-to-end suite (real ansible-playbook) against real Keystone, Placement,
# Glance, Neutron, Cinder and Nova on this machine. Installs what is missing (install.sh), brings the
# bed up (bed.py up: idempotent, state under build/openstack-aio/state), runs pytest with
# OSM_E2E_BACKEND=openstack, and stops every process it started, by pid, also on failure.
#
#   tests/openstack-aio/run-tests.sh                       the default selection (see TESTS below)
#   tests/openstack-aio/run-tests.sh tests/e2e/test_x.py   pytest arguments of your own
#   OSM_AIO_KEEP=1 tests/openstack-aio/run-tests.sh        leave the bed running afterwards
#   OSM_AIO_FRESH=1 tests/openstack-aio/run-tests.sh       start from empty databases
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
say() { printf '==> openstack-aio: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  printf '\n%s\n%s\n%s\n\n' "#################################################################################" \
    "### SKIP: make test-openstack needs root (Debian packages, bind mount, services) ###" \
    "#################################################################################" >&2
  exit 0
fi

started=$(date +%s)
py=build/openstack-aio/venv/bin/python
"$here/install.sh"
[ -x .venv/bin/pytest ] || scripts/bootstrap.sh test
installed=$(date +%s)
say "install step took $((installed - started)) s"

cleanup() {
  rc=$?
  if [ "${OSM_AIO_KEEP:-0}" = 1 ]; then
    say "leaving the bed running (OSM_AIO_KEEP=1); stop it with: $py tests/openstack-aio/bed.py down"
  else
    "$py" "$here/bed.py" down || true
  fi
  say "total $(( $(date +%s) - started )) s"
  exit $rc
}
trap cleanup EXIT INT TERM

if [ "${OSM_AIO_FRESH:-0}" = 1 ]; then
  "$py" "$here/bed.py" reset
fi
"$py" "$here/bed.py" up
up=$(date +%s)
say "bed up after $((up - installed)) s"

# Projects that an interrupted run left behind (their public images would be found by name).
purge_dir=$(mktemp -d)
(cd tests && ../.venv/bin/python -c '
import sys
from lib.aio import purge
left = purge(sys.argv[1])
if left:
    print("==> openstack-aio: removed the projects of earlier runs:", " ".join(left), file=sys.stderr)
' "$purge_dir")
rm -rf "$purge_dir"

# The scenarios of issue 8 live in the import and export suites; tests that need the simulator's
# fault injection skip themselves on this backend (`not sim.supports_faults`).
if [ $# -gt 0 ]; then
  TESTS=("$@")
else
  TESTS=(tests/e2e -m "not faults")
fi
# A base temp dir of our own: other pytest runs of root on this machine do not mix with ours.
OSM_E2E_BACKEND=openstack .venv/bin/pytest -q -p no:cacheprovider --basetemp=/tmp/osm-aio-e2e -rfE \
  --durations=15 "${TESTS[@]}"
say "tests took $(( $(date +%s) - up )) s"
