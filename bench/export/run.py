"""Export benchmark: 500 servers in the simulator, exported by the export_workloads playbook.

Prints wall seconds and the number of API requests per route, and writes target/bench/export.json.
Run with `make bench` (or .venv/bin/python bench/export/run.py [N]).
"""

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from lib.scenario import CloudBase, export  # noqa: E402
from lib.sim import Sim, wait_until  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory(prefix="osm-bench-export-") as tmp:
        tmp = Path(tmp)
        sim = Sim(tmp / "sim", transition_ms=1).start()
        try:
            base = CloudBase(sim, "src", tmp).build()
            CloudBase(sim, "dst", tmp).build(with_images=False)
            c = sim.conn("src")
            # app-net is a /24: the servers get a network of their own that holds them all.
            net = c.network.create_network(name="bench-net")
            c.network.create_subnet(name="bench-subnet", network_id=net.id, ip_version=4, cidr="10.40.0.0/20")
            print(f"creating {n} servers ...", flush=True)

            def create(i):
                return c.compute.create_server(name=f"bench-{i:04d}", flavor_id=base.flavor.id, image_id=base.cirros.id,
                                               networks=[{"uuid": net.id}], key_name="app-key").id

            with ThreadPoolExecutor(8) as pool:
                ids = list(pool.map(create, range(n)))
            wait_until("servers ACTIVE", lambda: sum(1 for s in c.compute.servers() if s.status == "ACTIVE") >= n, timeout=600)
            sim.admin("/_sim/requests/reset", "POST")
            start = time.monotonic()
            run = export(tmp, sim, tmp / "data", os_migrate_workloads_filter=[{"regex": "^bench-"}])
            seconds = time.monotonic() - start
            if run.rc != 0:
                print(run.output[-4000:])
                raise SystemExit("export failed")
            counts = sim.admin("/_sim/requests").get("src", {})
            total = sum(counts.values())
            exported = (tmp / "data" / "workloads.yml").read_text().count("type: openstack.compute.Server")
            assert exported == n == len(ids), (exported, n)
        finally:
            sim.stop()
    result = {"servers": n, "seconds": round(seconds, 2), "requests": total, "requests_by_route": counts}
    out = REPO / "target" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    print(f"export of {n} servers: {seconds:.1f} s wall (ansible-playbook included), {total} API requests")
    for route, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {count:6d}  {route}")


if __name__ == "__main__":
    main()
