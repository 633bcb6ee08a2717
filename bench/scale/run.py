"""Scale-out benchmark: N small workloads (default 40) and one deliberately slow one (a larger disk of
random data) imported on the simulator by each configuration of pairs x parallelism: 1 pair with
parallelism 1, 1 pair with 4, 4 pairs with 4 and 4 pairs with 8 (Ansible's forks raised to match).
The slow workload is queued first, so that a queue which waited for it would show.

Per configuration: wall seconds of import_workloads, speedup against 1 pair with parallelism 1, and
how much the slow workload added to the total (the time it ran while no other workload did, from the
run's summary) next to its own duration, and how busy the machine's CPUs were (everything here runs
on them: Ansible, both simulated clouds, every conversion host and the copies). Writes target/bench/scale.json.

With --runs N, each configuration runs N times in turn (1x1, 4x4, 1x1, 4x4, ...) and its figures are the
median run's: a run on this 2-core machine moves by a few seconds from one to the next.

Usage: .venv/bin/python bench/scale/run.py [--workloads N] [--slow-mib M] [--configs 1x1,1x4,4x4,4x8] [--runs N]"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from lib.ansible import run_playbook  # noqa: E402
from lib.scenario import (CloudBase, boot_from_volume, deploy_conversion_hosts, export, make_fs_image,  # noqa: E402
                          migration_vars, upload_image, volume_from_image, wait_volume)
from lib.sim import Sim, wait_until  # noqa: E402

MiB = 1 << 20
PAIRS = ["b1", "b2", "b3", "b4"]
SLOW = "bench-00-slow"


def clear_destination(sim):
    dst = sim.conn("dst")
    for s in list(dst.compute.servers()):
        if s.name.startswith("bench-"):
            dst.compute.delete_server(s)
    wait_until("destination servers gone", lambda: not any(s.name.startswith("bench-") for s in dst.compute.servers()), timeout=600)
    for v in list(dst.block_storage.volumes()):
        if v.name.startswith("bench-"):
            dst.block_storage.delete_volume(v)
    wait_until("destination volumes gone", lambda: not any(v.name.startswith("bench-") for v in dst.block_storage.volumes()), timeout=600)


def slow_source(sim, src, slow_mib):
    """The slow workload: a volume-booted server whose boot volume holds `slow_mib` MiB of random data."""
    c = src.conn
    gib = max(1, -(-slow_mib * MiB // (1 << 30)))
    boot = wait_volume(c, c.block_storage.create_volume(name=f"{SLOW}-boot", size=gib).id, "available")
    with open(sim.volume_path("src", boot.id), "r+b") as f:
        for _ in range(slow_mib):
            f.write(os.urandom(MiB))
    boot_from_volume(c, SLOW, src, boot, [{"uuid": src.app_net.id}])


def cpu_busy():
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def import_run(tmp, sim, data_dir, pairs, parallelism):
    ev = migration_vars(sim, data_dir, os_migrate_workloads_filter=[{"regex": "^bench-"}],
                        os_migrate_workload_parallelism=parallelism,
                        os_migrate_conversion_host_pairs=PAIRS[:pairs])
    start = time.monotonic()
    run = run_playbook(tmp, REPO / "playbooks" / "import_workloads.yml", extra_vars=ev, env=sim.env,
                       args=("-f", str(max(5, parallelism))))
    seconds = time.monotonic() - start
    assert run.rc == 0, run.failures()
    return seconds, json.loads((data_dir / "import_summary.json").read_text())


def slow_share(summary):
    """(seconds the slow workload added to the run, its own duration) from the run's summary: what it
    added is the time it ran with no other workload running (all of it with parallelism 1; with a
    queue, at most the tail after the others ended)."""
    rows = summary["workloads"]
    assert {r["status"] for r in rows} == {"migrated"}, rows
    slow = next(r for r in rows if r["name"] == SLOW)
    alone, at = 0.0, slow["started_at"]
    for a, b in sorted((r["started_at"], r["ended_at"]) for r in rows if r["name"] != SLOW):
        if a > at:
            alone += min(a, slow["ended_at"]) - at
        at = max(at, b)
        if at >= slow["ended_at"]:
            break
    alone += max(0.0, slow["ended_at"] - at)
    return alone, slow["duration_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", type=int, default=40, help="small workloads (the slow one comes on top)")
    ap.add_argument("--slow-mib", type=int, default=1024, help="random data on the slow workload's disk")
    ap.add_argument("--configs", default="1x1,1x4,4x4,4x8", help="pairs x parallelism, comma separated")
    ap.add_argument("--runs", type=int, default=1, help="runs of each configuration, interleaved; the median counts")
    args = ap.parse_args()
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    assert all(1 <= p <= len(PAIRS) for p, _ in configs), f"at most {len(PAIRS)} pairs"
    results = []
    with tempfile.TemporaryDirectory(prefix="osm-bench-scale-") as tmp:
        tmp = Path(tmp)
        sim = Sim(tmp / "sim", transition_ms=50).start()
        try:
            src = CloudBase(sim, "src", tmp).build()
            CloudBase(sim, "dst", tmp).build()
            data_dir = tmp / "data"
            run = deploy_conversion_hosts(tmp, sim, data_dir, extra={"os_migrate_conversion_host_pairs": PAIRS})
            assert run.rc == 0, run.failures()
            make_fs_image(tmp / "small.raw", "ext4", size=32 * MiB, files=3, seed=4)
            image = upload_image(src.conn, "bench-ext4", tmp / "small.raw")
            print(f"creating {args.workloads} small source servers and a slow one ({args.slow_mib} MiB) ...", flush=True)
            slow_source(sim, src, args.slow_mib)
            for i in range(1, args.workloads + 1):
                boot = volume_from_image(src.conn, f"bench-{i:02d}-boot", image)
                boot_from_volume(src.conn, f"bench-{i:02d}", src, boot, [{"uuid": src.app_net.id}])
            run = export(tmp, sim, data_dir, os_migrate_workloads_filter=[{"regex": "^bench-"}])
            assert run.rc == 0, run.failures()
            runs = {c: [] for c in configs}
            for _ in range(args.runs):
                for pairs, parallelism in configs:
                    clear_destination(sim)
                    busy0, all0 = cpu_busy()
                    seconds, summary = import_run(tmp, sim, data_dir, pairs, parallelism)
                    busy1, all1 = cpu_busy()
                    added, own = slow_share(summary)
                    row = {"pairs": pairs, "parallelism": parallelism, "workloads": args.workloads + 1,
                           "seconds": round(seconds, 1), "slow_added_s": round(added, 1),
                           "slow_duration_s": round(own, 1),
                           "cpu_busy_percent": round(100 * (busy1 - busy0) / (all1 - all0), 1)}
                    runs[(pairs, parallelism)].append(row)
                    print(f"{pairs} pair(s), parallelism {parallelism}: {seconds:.1f} s "
                          f"(the slow workload took {own:.1f} s and added {added:.1f} s; "
                          f"CPUs {row['cpu_busy_percent']}% busy)", flush=True)
            for c in configs:
                rows = sorted(runs[c], key=lambda r: r["seconds"])
                median = dict(rows[(len(rows) - 1) // 2])
                median["runs_seconds"] = [r["seconds"] for r in runs[c]]
                results.append(median)
        finally:
            sim.stop()
    base = next((r["seconds"] for r in results if (r["pairs"], r["parallelism"]) == (1, 1)), None)
    for r in results:
        r["speedup"] = round(base / r["seconds"], 2) if base else None
    out = REPO / "target" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps({"slow_mib": args.slow_mib, "runs": args.runs, "configs": results},
                                               indent=2))
    for r in results:
        speedup = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        print(f"  {r['pairs']} pair(s) x {r['parallelism']}: {r['seconds']:7.1f} s  {speedup:>6}  "
              f"slow added {r['slow_added_s']:.1f} s of its {r['slow_duration_s']:.1f} s, "
              f"CPUs {r['cpu_busy_percent']}% busy; runs {r['runs_seconds']}")


if __name__ == "__main__":
    main()
