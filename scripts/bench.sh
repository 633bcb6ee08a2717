#!/usr/bin/env bash
# Benchmarks (never timed tests): results in target/bench/*.json and printed tables.
#   copy      data plane: osm-agent vs nbdcopy vs qemu-img over ssh -L (bench/copy)
#   export    500 servers exported from the simulator: seconds and API requests (bench/export)
#   parallel  20 small workloads imported with parallelism 1 and 4 (bench/parallel)
#   warm      downtime of a cold and of a warm migration of the same server (bench/warm)
#   scale     40 small workloads and a slow one: 1 pair x1, 1 pair x4, 4 pairs x4, 4 pairs x8 (bench/scale)
# `make bench` runs them all; `scripts/bench.sh export` runs one.
set -euo pipefail
cd "$(dirname "$0")/.."
which=("${@:-copy warm export parallel scale}")
for b in ${which[*]}; do
  case "$b" in
    copy) echo "==> benchmark: data plane copy (and sparsify on image a2)"; python3 bench/copy/run.py --runs 3 ;;
    export) echo "==> benchmark: export of 500 servers"; .venv/bin/python bench/export/run.py 500 ;;
    parallel) echo "==> benchmark: 20 workloads, parallelism 1 vs 4"; .venv/bin/python bench/parallel/run.py 20 ;;
    warm) echo "==> benchmark: warm migration downtime against cold"; .venv/bin/python bench/warm/run.py --runs 3 ;;
    scale) echo "==> benchmark: 40 workloads and a slow one over 1 and 4 pairs"; .venv/bin/python bench/scale/run.py --workloads 40 ;;
    *) echo "unknown benchmark $b" >&2; exit 2 ;;
  esac
done
