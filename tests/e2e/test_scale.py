"""Scale-out: a pool of two conversion-host pairs, the queue of workloads (a slow workload holds back
none of the others), at most K workloads on a pair, pins and a retry that goes back to the pair of its
kept volumes, the run's summary file, the inventory plugin with two slices run at once, and the
deletion of the whole pool."""

import json
import subprocess

import pytest
import yaml

from lib import backend
from lib.ansible import REPO, VENV_BIN, ansible_env, run_playbook
from lib.scenario import (CloudBase, boot_from_volume, deploy_conversion_hosts, export, import_, leftovers,
                          migration_vars, volume_from_image)

PAIRS = ["p1", "p2"]
POOL = {"os_migrate_conversion_host_pairs": PAIRS}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Both clouds and a pool of two deployed conversion-host pairs."""
    root = tmp_path_factory.mktemp("pool")
    sim = backend.start(root)
    try:
        src = CloudBase(sim, "src", root).build()
        dst = CloudBase(sim, "dst", root).build()
        run = deploy_conversion_hosts(root, sim, root / "data", extra=POOL)
        assert run.rc == 0, run
        yield type("Pool", (), {"sim": sim, "root": root, "data_dir": root / "data", "src": src, "dst": dst})
    finally:
        sim.stop()


def servers(pool, names):
    """Small volume-booted source servers (the cirros image); returns {name: boot volume sha256}."""
    c = pool.src.conn
    sums = {}
    for name in names:
        boot = volume_from_image(c, f"{name}-boot", pool.src.cirros)
        boot_from_volume(c, name, pool.src, boot, [{"uuid": pool.src.app_net.id}])
        sums[name] = pool.sim.volume_sha256("src", boot.id)
    return sums


def summary(pool):
    return json.loads((pool.data_dir / "import_summary.json").read_text())


def state(pool, name):
    return json.loads((pool.data_dir / "workload_logs" / f"{name}.state").read_text())


def assert_copied(pool, sums):
    dst = pool.dst.conn
    for name, want in sums.items():
        s = dst.compute.find_server(name)
        assert s is not None and dst.compute.get_server(s.id).status == "ACTIVE", name
        vols = dst.compute.get_server(s.id).attached_volumes
        assert [pool.sim.volume_sha256("dst", v["id"]) for v in vols] == [want], name


def test_the_pool_is_deployed(pool):
    for cloud, side in (("src", "src"), ("dst", "dst")):
        names = sorted(s.name for s in pool.sim.conn(cloud).compute.servers())
        assert names == [f"os_migrate_conv_{side}-p1", f"os_migrate_conv_{side}-p2"], names


@pytest.mark.faults
def test_a_slow_workload_holds_back_no_other_and_a_pair_runs_one_at_a_time(pool, tmp_path):
    if not pool.sim.supports_faults:
        pytest.skip("the slow workload is made by the simulator")
    # Exported (so queued) in name order: the slow one first, so that the others queue behind it.
    names = ["q-0-slow"] + [f"q-{i}" for i in range(1, 6)]
    sums = servers(pool, names)
    assert export(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=[{"regex": "^q-"}]).rc == 0
    # The destination server of q-0-slow takes a minute to build: its lane is busy that long.
    pool.sim.fault(kind="slow", resource="server", match={"name": "^q-0-slow$"}, cloud="dst", status="BUILD", seconds=60)
    try:
        run = import_(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=[{"regex": "^q-"}],
                      os_migrate_workload_parallelism=2, os_migrate_workloads_per_conversion_host_pair=1, **POOL)
    finally:
        pool.sim.clear_faults()
    assert run.rc == 0, run
    assert_copied(pool, sums)
    assert leftovers(pool.sim) == []

    rows = {r["name"]: r for r in summary(pool)["workloads"]}
    assert sorted(rows) == sorted(names)
    assert {r["status"] for r in rows.values()} == {"migrated"}
    assert {r["pair"] for r in rows.values()} == set(PAIRS)
    for name, r in rows.items():
        assert r["bytes"] > 0 and r["duration_s"] > 0, r
        assert state(pool, name)["conversion_host_pair"] == r["pair"], "the state file records the pair"
    slow = rows["q-0-slow"]
    inside = [n for n, r in rows.items() if slow["started_at"] < r["started_at"] and r["ended_at"] < slow["ended_at"]]
    assert len(inside) >= 2, f"workloads waited for the slow one: {rows}"
    for p in PAIRS:
        spans = sorted((r["started_at"], r["ended_at"]) for r in rows.values() if r["pair"] == p)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"pair {p} ran two workloads at once: {spans}"


@pytest.mark.faults
def test_a_pinned_workload_fails_and_its_retry_goes_back_to_its_pair(pool, tmp_path):
    if not pool.sim.supports_faults:
        pytest.skip("the failure is injected by the simulator")
    name = "pin-0"
    sums = servers(pool, [name])
    assert export(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=[name]).rc == 0
    pool.sim.fault(kind="http", method="POST", path=r"^/compute/v2\.1/servers$", cloud="dst", nth=1, count=1, status=500)
    try:
        run = import_(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=[name],
                      os_migrate_workload_conversion_host_pairs={name: "p2"}, **POOL)
    finally:
        pool.sim.clear_faults()
    assert run.rc != 0, run
    assert f"Workload '{name}' failed in step import_workload_create_instance" in run.output, run.failures()
    [row] = summary(pool)["workloads"]
    assert (row["status"], row["step"], row["pair"]) == ("failed", "import_workload_create_instance", "p2"), row
    assert state(pool, name)["conversion_host_pair"] == "p2"

    # Pinned elsewhere now, but its kept volumes were synced through p2: the retry goes back there.
    run = import_(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=[name],
                  os_migrate_workload_conversion_host_pairs={name: "p1"}, **POOL)
    assert run.rc == 0, run
    [row] = summary(pool)["workloads"]
    assert (row["status"], row["pair"]) == ("migrated", "p2"), row
    queue = json.loads((pool.data_dir / "queue" / f"{summary(pool)['run_id']}.json").read_text())
    assert queue["items"][0]["fixed_by"] == "state file"
    assert_copied(pool, sums)
    assert leftovers(pool.sim) == []


def test_a_pin_to_a_pair_outside_the_pool_is_refused(pool, tmp_path):
    servers(pool, ["bad-pin"])
    assert export(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=["bad-pin"]).rc == 0
    run = import_(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=["bad-pin"],
                  os_migrate_workload_conversion_host_pairs={"bad-pin": "p9"}, **POOL)
    assert run.rc != 0
    assert "os_migrate_workload_conversion_host_pairs) of workload 'bad-pin'" in run.output, run.failures()
    assert "pair 'p9' is not in the pool of conversion host pairs (p1, p2)" in run.output, run.failures()
    assert pool.dst.conn.compute.find_server("bad-pin") is None


def inventory_config(pool, tmp_path, names):
    path = tmp_path / "migration.osm_workloads.yml"
    path.write_text(yaml.safe_dump({"plugin": "osm.workloads.workloads", "data_dir": str(pool.data_dir),
                                    "filter": names, "conversion_host_pairs": PAIRS}))
    return path


def plain(v):
    """ansible-inventory's JSON with its unsafe marks (inventory sources' strings) taken off."""
    if isinstance(v, dict):
        return v["__ansible_unsafe"] if set(v) == {"__ansible_unsafe"} else {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def test_the_inventory_plugin_lists_workloads_by_pair(pool, tmp_path):
    names = ["inv-0", "inv-1", "inv-2", "inv-3"]
    servers(pool, names)
    assert export(tmp_path, pool.sim, pool.data_dir, os_migrate_workloads_filter=[{"regex": "^inv-"}]).rc == 0
    inv = inventory_config(pool, tmp_path, names)
    out = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(inv), "--list"], cwd=tmp_path,
                         env=ansible_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert sorted(listed["os_migrate_workloads"]["hosts"]) == names
    by_pair = {p: sorted(listed[f"osm_pair_{p}"]["hosts"]) for p in PAIRS}
    assert sorted(by_pair["p1"] + by_pair["p2"]) == names and len(by_pair["p1"]) == len(by_pair["p2"]) == 2, by_pair
    hostvars = plain(listed["_meta"]["hostvars"])
    for p, hosts in by_pair.items():
        for h in hosts:
            assert hostvars[h]["os_migrate_conversion_host_pair"] == p
            assert hostvars[h]["os_migrate_workload"]["params"]["name"] == h


def test_two_slices_run_at_once(pool, tmp_path):
    """AWX job slicing emulated: one ansible-playbook per pair's group, both at once, one data dir."""
    names = ["inv-0", "inv-1", "inv-2", "inv-3"]
    inv = inventory_config(pool, tmp_path, names)
    ev = tmp_path / "vars.json"
    ev.write_text(json.dumps(migration_vars(pool.sim, pool.data_dir, os_migrate_workload_parallelism=2, **POOL)))
    procs = []
    for p in PAIRS:
        d = tmp_path / p
        d.mkdir()
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "-c", "local", "--limit", f"osm_pair_{p}:localhost",
               str(REPO / "playbooks" / "import_workloads.yml"), "-e", f"@{ev}"]
        out = open(d / "out.txt", "w")
        procs.append((p, subprocess.Popen(cmd, cwd=d, env=ansible_env(d, pool.sim.env), stdout=out, stderr=subprocess.STDOUT), d))
    for p, proc, d in procs:
        assert proc.wait(timeout=900) == 0, (d / "out.txt").read_text()[-4000:]
    runs = [json.loads(f.read_text()) for f in (pool.data_dir / "summaries").glob("import-*.json")]
    sliced = [r for r in runs if {w["name"] for w in r["workloads"]} <= set(names)]
    assert len(sliced) == 2, sliced
    for r in sliced:
        assert len(r["workloads"]) == 2 and len({w["pair"] for w in r["workloads"]}) == 1, r
        assert {w["status"] for w in r["workloads"]} == {"migrated"}
    assert {w["name"] for r in sliced for w in r["workloads"]} == set(names)
    assert leftovers(pool.sim) == []


def test_delete_removes_every_pair(pool, tmp_path):
    ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst",
          **migration_vars(pool.sim, pool.data_dir), **POOL}
    run = run_playbook(tmp_path, REPO / "playbooks" / "delete_conversion_hosts.yml", extra_vars=ev, env=pool.sim.env)
    assert run.rc == 0, run
    for cloud in ("src", "dst"):
        c = pool.sim.conn(cloud)
        assert [s.name for s in c.compute.servers() if s.name.startswith("os_migrate_conv")] == []
        assert [n.name for n in c.network.networks() if n.name.startswith("os_migrate_conv")] == []
        assert [r.name for r in c.network.routers() if r.name.startswith("os_migrate_conv")] == []
        assert [g.name for g in c.network.security_groups() if g.name.startswith("os_migrate_conv")] == []
