"""`make demo`: a real migration on the embedded OpenStack simulator.

1. starts osm-cloudsim with a source and a destination cloud;
2. builds, through the ordinary APIs, what an operator's clouds would have (flavors, networks, a router,
   images), and a source VM booted from a volume holding a real ext4 filesystem with files, plus an
   extra data volume holding an XFS filesystem;
3. deploys the two conversion hosts (real sshd processes on 127.0.0.x) with deploy_conversion_hosts;
4. runs export_workloads, then import_workloads, with real ansible-playbook;
5. checks the result and prints a summary; exits non-zero if any check fails.

Everything lives in a temporary directory (kept with --keep, to look at the logs afterwards).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib.scenario import (CloudBase, boot_from_volume, deploy_conversion_hosts, export, import_, leftovers,  # noqa: E402
                          make_fs_image, upload_image, volume_from_image)
from lib.sim import Sim  # noqa: E402

GREEN, RED, RESET = "\033[32m", "\033[31m", "\033[0m"


def step(msg):
    print(f"\n==> {msg}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="osm-demo-"))
    # The destination hands out new volumes full of garbage, as a backend that does not zero them
    # (LVM thick with volume_clear=none) would: the copy must not assume zeros anywhere.
    sim = Sim(root / "sim", transition_ms=200, dirty_volumes=["dst"])
    checks = []
    try:
        step(f"starting the OpenStack simulator (state in {root / 'sim'})")
        sim.start()
        print(f"    clouds.yaml: {sim.clouds_yaml} (clouds 'src' and 'dst')")

        step("building the clouds: flavors, networks, router, images")
        src = CloudBase(sim, "src", root).build()
        dst = CloudBase(sim, "dst", root).build()
        c = src.conn

        step("creating the source VM 'demo-app': boot volume with ext4 files, data volume with XFS files")
        boot_files = make_fs_image(root / "boot.raw", "ext4", size=128 << 20, files=10, seed=11)
        data_files = make_fs_image(root / "data.raw", "xfs", size=320 << 20, files=10, seed=12)
        boot = volume_from_image(c, "demo-app-boot", upload_image(c, "demo-ext4", root / "boot.raw"))
        data = volume_from_image(c, "demo-app-data", upload_image(c, "demo-xfs", root / "data.raw"))
        server = boot_from_volume(c, "demo-app", src, boot, [{"uuid": src.app_net.id, "fixed_ip": "192.168.10.42"}],
                                  extra_volumes=[data])
        print(f"    {len(boot_files)} files on ext4, {len(data_files)} files on XFS; server {server.id} is SHUTOFF")
        src_sums = {"demo-app-boot": sim.volume_sha256("src", boot.id), "demo-app-data": sim.volume_sha256("src", data.id)}

        data_dir = root / "data"
        step("deploying the conversion hosts (ansible-playbook osm.workloads.deploy_conversion_hosts)")
        run = deploy_conversion_hosts(root, sim, data_dir)
        show(run)

        step("exporting (ansible-playbook osm.workloads.export_workloads)")
        run = export(root, sim, data_dir, os_migrate_workloads_filter=["demo-app"])
        show(run)
        print(f"    {data_dir / 'workloads.yml'}")

        step("importing (ansible-playbook osm.workloads.import_workloads)")
        started = time.monotonic()
        run = import_(root, sim, data_dir, os_migrate_workloads_filter=["demo-app"])
        show(run)
        log = data_dir / "workload_logs" / "demo-app.log"
        print(f"    took {time.monotonic() - started:.0f} s; from the workload's log ({log}):")
        for line in log.read_text().splitlines():
            if any(k in line for k in ("sparsify", "synced", "created destination server", "migrated")):
                print(f"      {line}")

        step("checking the result")
        d = dst.conn
        new = d.compute.find_server("demo-app")
        checks.append(("destination server exists and is ACTIVE", new is not None and new.status == "ACTIVE"))
        new = d.compute.get_server(new.id) if new else None
        checks.append(("same flavor (m1.small)", bool(new) and new.flavor.name == "m1.small"))
        addrs = (new.addresses or {}).get("app-net", []) if new else []
        checks.append(("same network and fixed IP (app-net, 192.168.10.42)",
                       any(a["addr"] == "192.168.10.42" for a in addrs)))
        vols = {d.block_storage.get_volume(a["id"]).name: a["id"] for a in (new.attached_volumes if new else [])}
        state = json.loads((data_dir / "workload_logs" / "demo-app.state").read_text())
        proofs = {v.get("dst_volume_id"): v for v in state.get("volumes", [])}
        for name, want in src_sums.items():
            got = sim.volume_sha256("dst", vols[name]) if name in vols else None
            proof = proofs.get(vols.get(name), {})
            root_digest = proof.get("root_digest") or "none"
            checks.append((f"volume {name}: sha256 equal to the source's ({want[:12]}...); sync verified, "
                           f"root {root_digest[:16]}...", got == want and proof.get("verified") is True))
        left = leftovers(sim)
        checks.append(("no temporary snapshot, image or volume left in either cloud", not left))
        src_after = c.compute.get_server(server.id)
        checks.append(("source VM keeps its volumes", len(src_after.attached_volumes) == 2))
        for line in left:
            print(f"    leftover: {line}")
    except Exception as e:  # the demo reports any failure as a failed check
        checks.append((f"demo ran to the end ({type(e).__name__}: {e})", False))
    finally:
        sim.stop()

    print("\n==> summary")
    for what, ok in checks:
        print(f"    {GREEN + 'PASS' if ok else RED + 'FAIL'}{RESET}  {what}")
    ok = bool(checks) and all(ok for _, ok in checks)
    if args.keep or not ok:
        print(f"\n    files kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'demo passed' if ok else 'demo FAILED'}")
    return 0 if ok else 1


def show(run):
    recap = run.output.split("PLAY RECAP")[-1].strip().splitlines()
    for line in recap:
        if line.strip() and not line.startswith("*"):
            print(f"    {line}")
    if run.rc != 0:
        print(run.failures())
        raise RuntimeError(f"ansible-playbook exited with {run.rc}")


if __name__ == "__main__":
    sys.exit(main())
