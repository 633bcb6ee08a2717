"""Parallel import benchmark: 20 workloads with small disks, imported with parallelism 1 and 4 through
one conversion host pair on the simulator. Prints wall seconds; writes target/bench/parallel.json.

Run with `make bench` (or .venv/bin/python bench/parallel/run.py [N])."""

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from lib.scenario import (CloudBase, boot_from_volume, deploy_conversion_hosts, export, import_,  # noqa: E402
                          make_fs_image, upload_image, volume_from_image)
from lib.sim import Sim, wait_until  # noqa: E402


def clear_destination(sim, n):
    dst = sim.conn("dst")
    for s in list(dst.compute.servers()):
        if s.name.startswith("bench-"):
            dst.compute.delete_server(s)
    wait_until("destination servers gone", lambda: not any(s.name.startswith("bench-") for s in dst.compute.servers()), timeout=600)
    for v in list(dst.block_storage.volumes()):
        if v.name.startswith("bench-"):
            dst.block_storage.delete_volume(v)
    wait_until("destination volumes gone", lambda: not any(v.name.startswith("bench-") for v in dst.block_storage.volumes()), timeout=600)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    results = []
    with tempfile.TemporaryDirectory(prefix="osm-bench-parallel-") as tmp:
        tmp = Path(tmp)
        sim = Sim(tmp / "sim", transition_ms=50).start()
        try:
            src = CloudBase(sim, "src", tmp).build()
            CloudBase(sim, "dst", tmp).build()
            data_dir = tmp / "data"
            run = deploy_conversion_hosts(tmp, sim, data_dir)
            assert run.rc == 0, run.failures()
            make_fs_image(tmp / "small.raw", "ext4", size=32 << 20, files=3, seed=4)
            image = upload_image(src.conn, "bench-ext4", tmp / "small.raw")
            print(f"creating {n} source servers ...", flush=True)
            for i in range(n):
                boot = volume_from_image(src.conn, f"bench-{i:02d}-boot", image)
                boot_from_volume(src.conn, f"bench-{i:02d}", src, boot, [{"uuid": src.app_net.id}])
            run = export(tmp, sim, data_dir, os_migrate_workloads_filter=[{"regex": "^bench-"}])
            assert run.rc == 0, run.failures()
            for parallelism in (1, 4):
                clear_destination(sim, n)
                start = time.monotonic()
                run = import_(tmp, sim, data_dir, os_migrate_workloads_filter=[{"regex": "^bench-"}],
                              os_migrate_workload_parallelism=parallelism)
                seconds = time.monotonic() - start
                assert run.rc == 0, run.failures()
                results.append({"workloads": n, "parallelism": parallelism, "seconds": round(seconds, 1)})
                print(f"parallelism {parallelism}: {n} workloads in {seconds:.1f} s", flush=True)
        finally:
            sim.stop()
    out = REPO / "target" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "parallel.json").write_text(json.dumps(results, indent=2))
    base = results[0]["seconds"]
    for r in results:
        print(f"  parallelism {r['parallelism']}: {r['seconds']:7.1f} s  ({base / r['seconds']:.2f}x)")


if __name__ == "__main__":
    main()
