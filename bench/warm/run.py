"""Warm migration benchmark: the downtime of a cold migration and of a warm one of the same server.

A volume-booted server with a 4 GiB boot volume and a 4 GiB data volume, each an ext4 filesystem
holding 1 GiB of files (random data, so compression cannot help), on the simulator, through one
conversion host pair (real sshd on 127.x addresses: the simulator's conversion hosts are local
processes). The link between them is the copy benchmark's 1 Gbit/s (`--rate`): the whole run goes into a
network namespace of its own, whose loopback has an htb class of that rate for everything to and from
the source conversion host's addresses (netem and tbf are not in this kernel; htb and u32 are).
`--rate 0` runs on plain loopback. Per round:

- cold: the server is stopped by the import (os_migrate_workload_stop_before_migration) and migrated;
  downtime = from the stop request to the destination server ACTIVE, as the import measures it;
- warm: one pre-copy while the server runs, then 5% of the 4 KiB blocks of the files on each volume
  rewritten (random bytes, as a guest would), then the cutover; downtime measured the same way.

Writes target/bench/warm.json: {cold_downtime_s, warm_downtime_s, precopy_s, changed_bytes,
cutover_wire_bytes, link, rounds: [...]}, medians of --runs rounds, and each round's warm workload log
(pre-copy and cutover, timestamped) as target/bench/warm-N.log.
Usage: .venv/bin/python bench/warm/run.py [--runs N] [--rate 1gbit|0] (as root for the link)"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from lib.scenario import CloudBase, boot_from_volume, deploy_conversion_hosts, export, import_, wait_volume  # noqa: E402
from lib.sim import Sim  # noqa: E402

sys.path.insert(0, str(REPO / "bench" / "copy"))
from run import file_extents  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
NS = "osm-bench-warm"


def enter_namespace():
    """Runs this script again inside a network namespace of its own (its loopback is ours to shape)."""
    subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
    os.execvp("ip", ["ip", "netns", "exec", NS, sys.executable, *sys.argv, "--in-namespace"])


def shape(addresses, rate):
    """Everything to and from `addresses` on this namespace's loopback through htb classes of `rate`,
    one per direction, as a link between the two clouds would be."""
    sh = lambda *c: subprocess.run(["tc", *c], check=True)
    sh("qdisc", "replace", "dev", "lo", "root", "handle", "1:", "htb", "default", "10", "r2q", "1000")
    sh("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "100gbit")
    for cls, direction in (("1:20", "dst"), ("1:30", "src")):
        sh("class", "add", "dev", "lo", "parent", "1:", "classid", cls, "htb", "rate", rate, "ceil", rate)
        for a in addresses:
            sh("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
               "match", "ip", direction, f"{a}/32", "flowid", cls)


def files_tree(tmp):
    tree = tmp / "files"
    if not tree.exists():
        tree.mkdir()
        for i in range(16):
            with open("/dev/urandom", "rb") as src, open(tree / f"f{i:02}.bin", "wb") as dst:
                for _ in range(4):
                    dst.write(src.read(16 * MiB))
    return tree


def filled_volume(sim, conn, name, tree):
    """A new 4 GiB volume holding an ext4 filesystem with the files of `tree`."""
    v = wait_volume(conn, conn.block_storage.create_volume(name=name, size=4).id, "available")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", str(tree), str(sim.volume_path("src", v.id)), "4G"],
                   check=True)
    return v


def rewrite_used_blocks(path, fraction, seed):
    """Rewrites `fraction` of the 4 KiB blocks of the files in the volume's filesystem with random
    bytes, as a guest writing into its files would (rewriting any used block would also hit the
    filesystem's own metadata, which no guest does, and sparsify would rightly refuse the result);
    returns the bytes."""
    rng = random.Random(seed)
    used = [k for start, end in file_extents(path) for k in range(start // 4096, end // 4096)]
    pick = rng.sample(used, int(len(used) * fraction))
    with open(path, "r+b") as f:
        for k in pick:
            f.seek(k * 4096)
            f.write(rng.randbytes(4096))
        f.flush()
        os.fsync(f.fileno())
    return len(pick) * 4096


def state(data_dir, name):
    return json.loads((data_dir / "workload_logs" / f"{name}.state").read_text())


def one_round(sim, tmp, data_dir, src, tree, i):
    c = src.conn
    servers = {}
    for kind in ("cold", "warm"):
        name = f"bench-{kind}-{i}"
        boot = filled_volume(sim, c, f"{name}-boot", tree)
        data = filled_volume(sim, c, f"{name}-data", tree)
        servers[kind] = (name, boot_from_volume(c, name, src, boot, [{"uuid": src.app_net.id}],
                                                extra_volumes=[data], stop=False), [boot, data])
    run = export(tmp, sim, data_dir, os_migrate_workloads_filter=[{"regex": f"^bench-(cold|warm)-{i}$"}])
    assert run.rc == 0, run.failures()

    name, _, _ = servers["cold"]
    run = import_(tmp, sim, data_dir, os_migrate_workloads_filter=[name], os_migrate_workload_stop_before_migration=True)
    assert run.rc == 0, run.failures()
    cold = state(data_dir, name)["downtime_s"]

    name, _, vols = servers["warm"]
    started = time.monotonic()
    run = import_(tmp, sim, data_dir, os_migrate_workloads_filter=[name], os_migrate_workload_phase="precopy")
    assert run.rc == 0, run.failures()
    precopy = time.monotonic() - started
    changed = sum(rewrite_used_blocks(sim.volume_path("src", v.id), 0.05, seed=i * 10 + k) for k, v in enumerate(vols))
    run = import_(tmp, sim, data_dir, os_migrate_workloads_filter=[name], os_migrate_workload_phase="cutover")
    assert run.rc == 0, run.failures()
    st = state(data_dir, name)
    # The workload's log, with a timestamp on each line, says where the downtime went.
    log = REPO / "target" / "bench" / f"warm-{i}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text((data_dir / "workload_logs" / f"{name}.log").read_text())
    wire = sum(v["rounds"][-1]["bytes_on_wire"] for v in st["volumes"])
    for v in vols:
        new = sim.conn("dst").block_storage.find_volume(v.name)
        assert sim.volume_sha256("dst", new.id) == sim.volume_sha256("src", v.id), f"{v.name} differs"
    r = {"cold_downtime_s": cold, "warm_downtime_s": st["downtime_s"], "precopy_s": round(precopy, 1),
         "changed_bytes": changed, "cutover_wire_bytes": wire}
    print(f"round {i}: cold downtime {cold} s, warm downtime {st['downtime_s']} s "
          f"({st['downtime_s'] / cold:.0%}), pre-copy {precopy:.1f} s, {changed / MiB:.0f} MiB changed, "
          f"{wire / MiB:.1f} MiB on the wire at cutover", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", default="1gbit", help="the link's rate, or 0 for plain loopback")
    ap.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    shaped = args.rate not in ("0", "")
    if shaped and not args.in_namespace:
        enter_namespace()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="osm-bench-warm-") as tmp:
        tmp = Path(tmp)
        sim = Sim(tmp / "sim", transition_ms=50).start()
        try:
            src = CloudBase(sim, "src", tmp).build()
            CloudBase(sim, "dst", tmp).build()
            data_dir = tmp / "data"
            run = deploy_conversion_hosts(tmp, sim, data_dir)
            assert run.rc == 0, run.failures()
            if shaped:
                host = src.conn.compute.find_server("os_migrate_conv_src")
                addresses = {a["addr"] for net in host.addresses.values() for a in net} | {host.access_ipv4}
                shape(sorted(a for a in addresses if a), args.rate)
            tree = files_tree(tmp)
            for i in range(args.runs):
                rounds.append(one_round(sim, tmp, data_dir, src, tree, i))
        finally:
            sim.stop()
            if shaped:
                subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    link = (f"{args.rate}/s: htb on the loopback of a network namespace of its own, for everything to and from "
            "the source conversion host (sshd on a 127.x address)" if shaped else
            "loopback: the simulator's conversion hosts are sshd processes on 127.x addresses")
    out = {**med, "link": link, "rounds": rounds}
    path = REPO / "target" / "bench" / "warm.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nmedian: cold downtime {med['cold_downtime_s']} s, warm downtime {med['warm_downtime_s']} s "
          f"({med['warm_downtime_s'] / med['cold_downtime_s']:.0%} of cold)\nwrote {path}")


if __name__ == "__main__":
    main()
