"""Warm migration end to end: pre-copy rounds while the source server runs (its disks changed between
rounds, as a guest would), then a cutover whose downtime is measured; failures in each phase and
their retries; a cutover refused without a pre-copy; abandoning what the pre-copies kept. Real
ansible-playbook, the simulator, real sshd conversion hosts, real filesystems."""

import re

import pytest
import yaml

from lib.scenario import boot_from_image, boot_from_volume, export, import_, make_fs_image, upload_image, volume_from_image
from lib.sim import change_file_blocks, wait_until

from lib.procs import pids, signal_all, stop_group
from .test_failures import start_import

pytestmark = pytest.mark.usefixtures("reclaim")


def image_file(world, name, fs, seed, size=96 << 20):
    path = world.root / name
    if not path.exists():
        make_fs_image(path, fs, size=size, files=6, seed=seed)
    return path


def phase(world, tmp_path, name, which, **extra):
    return import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name],
                   os_migrate_workload_phase=which, **extra)


def state(world, name):
    return yaml.safe_load((world.data_dir / "workload_logs" / f"{name}.state").read_text())


def volume_vm(world, tmp_path, name):
    """A volume-booted ACTIVE source server with two data volumes holding filesystems."""
    c = world.src.conn
    boot = volume_from_image(c, f"{name}-boot", upload_image(c, f"{name}-ext4", image_file(world, f"{name}-b.raw", "ext4", 21)))
    d1 = volume_from_image(c, f"{name}-data1", upload_image(c, f"{name}-xfs", image_file(world, f"{name}-d.raw", "xfs", 22, size=320 << 20)))
    d2 = volume_from_image(c, f"{name}-data2", upload_image(c, f"{name}-ext4b", image_file(world, f"{name}-e.raw", "ext4", 23)))
    server = boot_from_volume(c, name, world.src, boot, [{"uuid": world.src.app_net.id}], extra_volumes=[d1, d2], stop=False)
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    return server, [boot, d1, d2]


def dst_volumes_named(world, prefix):
    return {v.name: v.id for v in world.dst.conn.block_storage.volumes() if v.name.startswith(prefix)}


def assert_only_kept_volumes(world, name, expected):
    """Between phases: no destination server, the kept volumes (and nothing else) carry the mark."""
    assert world.dst.conn.compute.find_server(name) is None
    assert sorted(dst_volumes_named(world, name)) == sorted(expected)
    left = world.leftovers()
    assert all(line.startswith("dst volume ") for line in left), left
    assert sorted(line.split()[2] for line in left) == sorted(expected), left


def test_warm_volume_boot_with_two_extra_volumes(world, tmp_path):
    name = "warm-vb"
    server, vols = volume_vm(world, tmp_path, name)
    src = world.src.conn
    # Looked up again at each change: on Cinder NFS a snapshot moves the data into a new overlay.
    paths = {v.name: v.id for v in vols}

    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    assert src.compute.get_server(server.id).status == "ACTIVE", "a pre-copy leaves the source running"
    assert "Pre-copy of 'warm-vb' done" in run.output
    st = state(world, name)
    assert st["status"] == "precopied" and st["warm"]["precopies"] == 1
    # Each volume takes one SSH connection per 512 MiB of the data its export found in use, up to
    # os_migrate_workload_transfer_streams (4): these small filesystems take fewer, and the log says why.
    log = (world.data_dir / "workload_logs" / f"{name}.log").read_text()
    why = " (of 4 at most: one per 512 MiB of data in use)"
    wanted = {}
    for v in st["volumes"]:
        n = wanted[v["role"]] = min(4, max(1, -(-v["used_bytes"] // (512 << 20))))
        taken = re.findall(rf"\] {v['role']}: syncing into .* over (\d+) SSH connections?({re.escape(why)})?$", log, re.M)
        assert taken == [(str(n), why if n < 4 else "")], (v["role"], v["used_bytes"], taken)
    assert min(wanted.values()) < 4, wanted
    assert_only_kept_volumes(world, name, paths)

    changed = {n: world.sim.change_used_blocks("src", v, 0.05, seed=i) for i, (n, v) in enumerate(paths.items())}
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    st = state(world, name)
    assert st["warm"]["precopies"] == 2
    by_name = {v["role"]: v for v in st["volumes"]}
    for v in st["volumes"]:
        first, second = v["rounds"][-2:]
        assert first["phase"] == second["phase"] == "precopy"
        assert second["bytes_written"] < first["bytes_written"], v["role"]
    role_of = {f"{name}-boot": "boot", f"{name}-data1": "data-0", f"{name}-data2": "data-1"}
    for n, c in changed.items():
        r = by_name[role_of[n]]["rounds"][-1]
        assert r["bytes_written"] <= c + (64 << 10), (n, c, r)
    assert_only_kept_volumes(world, name, paths)

    for i, v in enumerate(paths.values()):
        world.sim.change_used_blocks("src", v, 0.05, seed=10 + i)
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc == 0, run
    assert src.compute.get_server(server.id).status == "SHUTOFF", "the cutover stops the source and leaves it so"
    want = {n: world.sim.volume_sha256("src", v.id) for n, v in zip(paths, vols)}
    new = world.dst.conn.compute.find_server(name)
    got = {world.dst.conn.block_storage.get_volume(a["id"]).name: a["id"]
           for a in world.dst.conn.compute.get_server(new.id).attached_volumes}
    for n in paths:
        assert world.sim.volume_sha256("dst", got[n]) == want[n], n
    st = state(world, name)
    assert st["status"] == "done" and st["downtime_s"] > 0
    assert all(v["rounds"][-1]["phase"] == "cutover" and v["verified"] for v in st["volumes"])
    m = re.search(r"downtime (\d+\.\d) s", run.output)
    assert m, "the playbook prints the downtime"
    log = (world.data_dir / "workload_logs" / f"{name}.log").read_text()
    assert "downtime" in log and "pre-copy round 2 finished" in log
    # The kept volumes were attached while the source still ran: the downtime holds the delta only.
    cutover = log[log.rindex("[prelim] cutover"):]
    assert cutover.count("is ready for the cutover") == 3, cutover
    assert cutover.index("is ready for the cutover") < cutover.index("[src_check]"), cutover
    # ... and read there ahead of the stop: the cutover's syncs read only the source.
    assert cutover.count("read ahead of the stop") == 3, cutover
    assert cutover.index("read ahead of the stop") < cutover.index("[src_check]"), cutover
    assert cutover.count("digests come from its scan before the stop, not read again") == 3, cutover
    # The delta travels over one SSH connection per volume (os_migrate_workload_cutover_transfer_streams).
    assert cutover.count("over 1 SSH connection\n") == 3, cutover
    assert sorted(a["id"] for a in src.compute.get_server(server.id).attached_volumes) == sorted(v.id for v in vols)
    assert world.leftovers() == []


def test_warm_image_boot_with_boot_disk_copy(world, tmp_path):
    name = "warm-ib"
    c = world.src.conn
    server = boot_from_image(c, name, world.src, world.src.cirros, [{"uuid": world.src.app_net.id}], stop=False)
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name],
                 os_migrate_workloads_boot_disk_copy=True)
    assert run.rc == 0, run
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    assert c.compute.get_server(server.id).status == "ACTIVE"
    disk = world.sim.server_disk_path("src", server.id)
    change_file_blocks(disk, 0.05, seed=3)
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc == 0, run
    new = world.dst.conn.compute.get_server(world.dst.conn.compute.find_server(name).id)
    (boot_id,) = [a["id"] for a in new.attached_volumes]
    size = disk.stat().st_size
    with open(disk, "rb") as a, open(world.sim.volume_path("dst", boot_id), "rb") as b:
        assert a.read(size) == b.read(size), "the destination boot volume holds the disk as of the cutover"
    assert state(world, name)["downtime_s"] > 0
    assert world.leftovers() == []


def test_a_cutover_without_a_precopy_fails_and_changes_nothing(world, tmp_path):
    name = "warm-nopre"
    c = world.src.conn
    boot = volume_from_image(c, f"{name}-boot", upload_image(c, f"{name}-ext4", image_file(world, f"{name}.raw", "ext4", 31)))
    server = boot_from_volume(c, name, world.src, boot, [{"uuid": world.src.app_net.id}], stop=False)
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc != 0
    assert "no pre-copy round of workload 'warm-nopre' has finished" in run.output
    assert c.compute.get_server(server.id).status == "ACTIVE", "the source was not stopped"
    assert dst_volumes_named(world, name) == {}
    assert world.leftovers() == []


def test_abandon_removes_everything_the_precopies_kept(world, tmp_path):
    name = "warm-abandon"
    server, vols = volume_vm(world, tmp_path, name)
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    assert len(dst_volumes_named(world, name)) == 3
    run = phase(world, tmp_path, name, "abandon")
    assert run.rc == 0, run
    assert dst_volumes_named(world, name) == {}
    assert world.leftovers() == []
    assert state(world, name)["status"] == "abandoned"
    assert world.src.conn.compute.get_server(server.id).status == "ACTIVE"
    # Abandoned means a fresh start: a cutover is refused again.
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc != 0 and "no pre-copy round" in run.output


@pytest.mark.faults
def test_failed_precopy_rounds_are_retried(world, tmp_path):
    """A round that fails at the snapshot, then one that fails at the volume made from it, each
    leave the source running and only the kept volumes; the next round and the cutover succeed. One
    warm migration carries both failures, since each costs a server and two rounds to set up."""
    name = "warm-fround"
    server, vols = volume_vm(world, tmp_path, name)
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    for what in ("snapshots", "volumes"):
        world.sim.fault(kind="http", method="POST", path=rf"^/volume/v3/{what}$", cloud="src", nth=2, count=1, status=500)
        run = phase(world, tmp_path, name, "precopy")
        world.sim.clear_faults()
        assert run.rc != 0 and "HTTP 500" in run.output, (what, run)
        assert world.src.conn.compute.get_server(server.id).status == "ACTIVE", what
        assert_only_kept_volumes(world, name, [v.name for v in vols])
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc == 0, run
    new = world.dst.conn.compute.find_server(name)
    got = {world.dst.conn.block_storage.get_volume(a["id"]).name: a["id"]
           for a in world.dst.conn.compute.get_server(new.id).attached_volumes}
    for v in vols:
        assert world.sim.volume_sha256("dst", got[v.name]) == world.sim.volume_sha256("src", v.id)
    assert world.leftovers() == []


@pytest.mark.faults
def test_agent_killed_during_a_round_then_retried(world, tmp_path):
    name = "warm-fkill"
    server, vols = volume_vm(world, tmp_path, name)
    proc, out = start_import(world, tmp_path, name, os_migrate_workload_phase="precopy")
    try:
        wait_until("the sync to be under way",
                   lambda: pids(f"osm-agent serve .*{re.escape(str(world.sim.hosts_dir))}.*boot") or proc.poll() is not None,
                   timeout=300, interval=0.02)
        signal_all(pids(f"osm-agent serve .*{re.escape(str(world.sim.hosts_dir))}.*boot"))
        proc.wait(timeout=600)
    finally:
        stop_group(proc)
    assert world.src.conn.compute.get_server(server.id).status == "ACTIVE"
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc == 0, run
    assert world.leftovers() == []


@pytest.mark.faults
def test_a_cutover_failing_at_create_instance_restarts_the_source_and_keeps_the_volumes(world, tmp_path):
    name = "warm-fcut"
    server, vols = volume_vm(world, tmp_path, name)
    run = phase(world, tmp_path, name, "precopy")
    assert run.rc == 0, run
    # Failing while it readies the destination, before the stop: the source never stopped.
    world.sim.fault(kind="http", method="POST", path=r"^/compute/v2\.1/servers/[^/]+/os-volume_attachments$",
                    cloud="dst", nth=1, count=1, status=500)
    run = phase(world, tmp_path, name, "cutover")
    world.sim.clear_faults()
    assert run.rc != 0 and "failed in step prepare_cutover" in run.output, run
    assert world.src.conn.compute.get_server(server.id).status == "ACTIVE"
    assert "stop_source_server" not in run.output, "the stop comes after the preparation"
    assert_only_kept_volumes(world, name, [v.name for v in vols])
    world.sim.fault(kind="http", method="POST", path=r"^/compute/v2\.1/servers$", cloud="dst", nth=1, count=1, status=500)
    run = phase(world, tmp_path, name, "cutover")
    world.sim.clear_faults()
    assert run.rc != 0 and "failed in step import_workload_create_instance" in run.output
    assert world.src.conn.compute.get_server(server.id).status == "ACTIVE", "the cutover stopped it, so it starts it again"
    assert_only_kept_volumes(world, name, [v.name for v in vols])
    run = phase(world, tmp_path, name, "cutover")
    assert run.rc == 0, run
    assert world.src.conn.compute.get_server(server.id).status == "SHUTOFF"
    assert world.leftovers() == []
