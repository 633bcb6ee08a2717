"""Soak under faults: 20 small workloads, parallelism 4 over two conversion-host pairs, a fault
injected into about a third of them at a random step (an HTTP 500, a status that sticks, a build that
ends in error, the source agent killed while it serves the copy), then a second run of the same
playbook. Every workload ends migrated with a destination disk byte-identical to its source, neither
cloud holds a leftover, and each fault touched only its own workload: the others migrated in the first
run, and the second run left their destination servers alone.

The seed is printed (and named in every assertion); OSM_SOAK_SEED=<seed> replays a run's choices."""

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lib import backend
from lib.scenario import (CloudBase, boot_from_volume, deploy_conversion_hosts, export, import_, leftovers,
                          reclaim_since, resources, volume_from_image)

pytestmark = pytest.mark.faults

N = 20
PAIRS = ["s1", "s2"]
# Seconds a workload waits for one resource: short, so that the stuck statuses fail fast, and still
# far above any transition of the simulator (transition_ms below).
TIMEOUT = 20

# Fault kind -> the step the workload must fail in.
FAULTS = {
    "http500-prelim": "import_workload_prelim",
    "http500-src-check": "import_workload_src_check",
    "stuck-build": "import_workload_create_instance",
    "error-build": "import_workload_create_instance",
    "agent-killed": "import_workload_transfer_volumes",
}


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    root = tmp_path_factory.mktemp("soak")
    sim = backend.start(root, transition_ms=10)
    try:
        if not sim.supports_faults:
            pytest.skip("the faults are injected by the simulator")
        src = CloudBase(sim, "src", root).build()
        dst = CloudBase(sim, "dst", root).build()
        run = deploy_conversion_hosts(root, sim, root / "data", extra={"os_migrate_conversion_host_pairs": PAIRS})
        assert run.rc == 0, run
        before = resources(sim)
        try:
            yield type("Soak", (), {"sim": sim, "root": root, "data_dir": root / "data", "src": src, "dst": dst})
        finally:
            reclaim_since(sim, before)
    finally:
        sim.stop()


def inject(sim, kind, name, server_id):
    """A fault that only the requests and resources of workload `name` meet (the agent kill is not
    the simulator's: see AgentKiller)."""
    message = f"soak fault for {name}"
    if kind == "http500-prelim":
        # The name is in the query of the destination's lookup; no other workload's name contains it.
        sim.fault(kind="http", method="GET", path=r"^/compute/v2\.1/servers/detail$", query=name, cloud="dst",
                  nth=1, count=20, status=500, message=message)
    elif kind == "http500-src-check":
        sim.fault(kind="http", method="GET", path=rf"^/compute/v2\.1/servers/{server_id}$", cloud="src",
                  nth=1, count=20, status=500, message=message)
    elif kind == "stuck-build":
        sim.fault(kind="stuck", resource="server", match={"name": f"^{name}$"}, cloud="dst", status="BUILD")
    elif kind == "error-build":
        sim.fault(kind="error", resource="server", match={"name": f"^{name}$"}, cloud="dst", message=message)


class AgentKiller(threading.Thread):
    """Kills, as soon as it runs, each osm-agent that serves a volume of the given workloads (found by
    the transfer id of their state files: its directory is in the agent's socket path)."""

    def __init__(self, sim, data_dir, names):
        super().__init__(daemon=True)
        self.sim, self.data_dir, self.names = sim, data_dir, names
        self.kills = {n: 0 for n in names}
        self.done = threading.Event()

    def transfer_id(self, name):
        try:
            return json.loads((self.data_dir / "workload_logs" / f"{name}.state").read_text()).get("transfer_id")
        except (OSError, ValueError):
            return None

    def run(self):
        hosts = re.escape(str(self.sim.hosts_dir))
        while not self.done.is_set():
            ids = {n: t for n in self.names if (t := self.transfer_id(n))}
            if ids:
                out = subprocess.run(["pgrep", "-af", "osm-agent serve"], stdout=subprocess.PIPE, text=True).stdout
                for line in out.splitlines():
                    pid, _, cmd = line.partition(" ")
                    for n, t in ids.items():
                        if re.search(rf"osm-agent serve .*{hosts}.*/{re.escape(t)}/", cmd):
                            try:
                                os.kill(int(pid), signal.SIGKILL)
                                self.kills[n] += 1
                            except ProcessLookupError:
                                pass
            self.done.wait(0.05)


def digests(sim, cloud, volume_ids):
    """Byte-identity of 40 sparse 1 GiB volumes without hashing 40 GiB of zeros."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda v: sim.volume_content_digest(cloud, v), volume_ids))


class Clock:
    """Prints the seconds of each phase (pytest -s shows them), to keep the soak's runtime in view."""

    def __init__(self):
        self.t = time.monotonic()

    def lap(self, what):
        now = time.monotonic()
        print(f"soak: {what} {now - self.t:.1f} s")
        self.t = now


def rows(soak):
    return {r["name"]: r for r in json.loads((soak.data_dir / "import_summary.json").read_text())["workloads"]}


def test_soak_under_faults(soak, tmp_path):
    seed = int(os.environ.get("OSM_SOAK_SEED") or random.randrange(1 << 32))
    print(f"soak seed {seed} (OSM_SOAK_SEED={seed} replays it)")
    why = f"(OSM_SOAK_SEED={seed})"
    rnd = random.Random(seed)
    names = [f"soak{i:02d}" for i in range(N)]
    faults = {n: rnd.choice(sorted(FAULTS)) for n in rnd.sample(names, N // 3)}
    print("faults:", faults)

    clock = Clock()
    src = soak.src.conn
    servers, boots = {}, {}
    for name in names:
        boot = volume_from_image(src, f"{name}-boot", soak.src.cirros)
        # A few bytes of its own past the filesystem: every disk differs, so a disk that reached
        # another workload's server cannot pass for its own.
        with open(soak.sim.volume_path("src", boot.id), "r+b") as f:
            f.seek(512 << 20)
            f.write(rnd.randbytes(4096))
        servers[name] = boot_from_volume(src, name, soak.src, boot, [{"uuid": soak.src.app_net.id}]).id
        boots[name] = boot.id
    want = dict(zip(names, digests(soak.sim, "src", [boots[n] for n in names])))
    assert len(set(want.values())) == N
    clock.lap("sources")

    scope = {"os_migrate_workloads_filter": [{"regex": "^soak"}]}
    assert export(tmp_path, soak.sim, soak.data_dir, **scope).rc == 0
    clock.lap("export")
    ev = dict(scope, os_migrate_workload_parallelism=4, os_migrate_workloads_per_conversion_host_pair=2,
              os_migrate_conversion_host_pairs=PAIRS, os_migrate_timeout=TIMEOUT)

    for name, kind in faults.items():
        inject(soak.sim, kind, name, servers[name])
    killer = AgentKiller(soak.sim, soak.data_dir, [n for n, k in faults.items() if k == "agent-killed"])
    for d in ("first", "second"):
        (tmp_path / d).mkdir()
    killer.start()
    try:
        first = import_(tmp_path / "first", soak.sim, soak.data_dir, **ev)
    finally:
        killer.done.set()
        killer.join()
        soak.sim.clear_faults()
    clock.lap("first run")
    assert first.rc != 0, f"{why} {first}"
    got = rows(soak)
    assert sorted(got) == names, why
    for name in names:
        if name in faults:
            assert (got[name]["status"], got[name]["step"]) == ("failed", FAULTS[faults[name]]), \
                f"{why} {name} ({faults[name]}): {got[name]}"
            assert f"Workload '{name}' failed in step {FAULTS[faults[name]]}" in first.output, why
        else:
            assert got[name]["status"] == "migrated", f"{why} a fault reached {name}: {got[name]}"
    assert all(killer.kills[n] > 0 for n in killer.names), f"{why} {killer.kills}"
    assert {r["pair"] for r in got.values() if r["status"] == "migrated"} == set(PAIRS), why
    dst = soak.dst.conn
    first_ids = {n: dst.compute.find_server(n).id for n in names if n not in faults}

    second = import_(tmp_path / "second", soak.sim, soak.data_dir, **ev)
    clock.lap("second run")
    assert second.rc == 0, f"{why} {second}"
    got = rows(soak)
    assert {n: r["status"] for n, r in got.items()} == {n: "migrated" if n in faults else "skipped" for n in names}, why

    for name in names:
        s = dst.compute.find_server(name)
        assert s is not None and dst.compute.get_server(s.id).status == "ACTIVE", f"{why} {name}"
        if name in first_ids:
            assert s.id == first_ids[name], f"{why} the second run redid {name}"
    dst_boot = {n: [a["id"] for a in dst.compute.get_server(dst.compute.find_server(n).id).attached_volumes] for n in names}
    assert all(len(v) == 1 for v in dst_boot.values()), f"{why} {dst_boot}"
    have = dict(zip(names, digests(soak.sim, "dst", [dst_boot[n][0] for n in names])))
    assert have == want, f"{why} destination disks differ from their sources"
    for name in names:
        attached = [a["id"] for a in src.compute.get_server(servers[name]).attached_volumes]
        assert attached == [boots[name]], f"{why} the source server {name} lost its volume: {attached}"
    assert leftovers(soak.sim) == [], why
    clock.lap("checks")
