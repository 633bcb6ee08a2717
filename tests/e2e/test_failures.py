"""Failure handling: a fault injected at each step of the import sequence. Whatever failed, the source
server keeps its volumes, no temporary resource is left in the source, the destination holds nothing of
the failed workload (unless the sync or the server creation failed with resume on: then the destination
volumes are kept and the next run's sync sends only what they lack), and the playbook's message names
the workload and the step.

The matrix in README.md ("What happens when a step fails") lists these cases."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lib.ansible import REPO, VENV_BIN, ansible_env
from lib.scenario import (boot_from_image, boot_from_volume, export, import_, make_fs_image, migration_vars,
                          upload_image, volume_from_image, wait_volume)
from lib.procs import kill_matching, signal_all, stop_group
from lib.sim import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("reclaim")]

SHORT = 12  # os_migrate_timeout for the stuck-status cases, in seconds


@pytest.fixture(autouse=True)
def only_with_faults(world):
    if not world.sim.supports_faults:
        pytest.skip("fault injection needs the simulator")
    world.sim.clear_faults()
    yield
    world.sim.clear_faults()


def source_vm(world, name, data_gib=1, random_boot=False, stop=True):
    """A volume-booted source server with one data volume; returns (server, boot, data)."""
    c = world.src.conn
    if random_boot:
        path = world.root / "random-1g.raw"
        if not path.exists():
            with open(path, "wb") as f:
                for _ in range(1024):
                    f.write(os.urandom(1 << 20))
        boot = volume_from_image(c, f"{name}-boot", upload_image(c, "random-1g", path))
    else:
        path = world.root / "fail-boot.raw"
        if not path.exists():
            make_fs_image(path, "ext4", size=64 << 20, files=4, seed=5)
        boot = volume_from_image(c, f"{name}-boot", upload_image(c, "fail-ext4", path))
    data = wait_volume(c, c.block_storage.create_volume(name=f"{name}-data", size=data_gib).id, "available")
    server = boot_from_volume(c, name, world.src, boot, [{"uuid": world.src.app_net.id}], extra_volumes=[data], stop=stop)
    return server, boot, data


def assert_recovered(world, name, server, volumes):
    """The source is intact and neither cloud holds anything of the workload."""
    src, dst = world.src.conn, world.dst.conn
    attached = sorted(a["id"] for a in src.compute.get_server(server.id).attached_volumes)
    assert attached == sorted(v.id for v in volumes), "the source server has its volumes attached again"
    assert dst.compute.find_server(name) is None, "no destination server"
    dst_vols = [v.name for v in dst.block_storage.volumes() if v.name.startswith(name)]
    assert dst_vols == [], f"destination volumes left: {dst_vols}"
    assert world.leftovers() == []


def failed_step(run, name, step):
    assert run.rc != 0, run
    assert f"Workload '{name}' failed in step {step}" in run.output, run.failures()


def import_failing(world, tmp_path, name, step, fault, **extra):
    """Imports `name` with `fault` injected, checks that it failed in `step`, clears the faults."""
    world.sim.fault(**fault)
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name], **extra)
    failed_step(run, name, step)
    world.sim.clear_faults()
    return run


def export_only(world, tmp_path, name):
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run


HTTP_CASES = [
    # (case, step the failure must be reported in, fault)
    ("prelim", "import_workload_prelim",
     dict(method="GET", path=r"^/compute/v2\.1/servers/detail$", query="prelim", cloud="dst", nth=1, count=20,
          status=500)),
    ("dst_check", "import_workload_dst_check",
     dict(method="GET", path=r"^/compute/v2\.1/flavors/detail$", cloud="dst", nth=1, count=20, status=500)),
    ("stop", "stop_source_server",
     dict(method="POST", path=r"^/compute/v2\.1/servers/[^/]+/action$", cloud="src", nth=1, count=1, status=500)),
    ("src_check", "import_workload_src_check",
     dict(method="GET", path=r"^/compute/v2\.1/servers/[0-9a-f-]+$", cloud="src", nth=1, count=20, status=500)),
    ("export_volumes", "import_workload_export_volumes",
     dict(method="POST", path=r"^/volume/v3/volumes$", cloud="src", nth=1, count=1, status=500)),
    ("transfer_volumes", "import_workload_transfer_volumes",
     dict(method="POST", path=r"^/volume/v3/volumes$", cloud="dst", nth=2, count=1, status=500)),
    ("create_instance", "import_workload_create_instance",
     dict(method="POST", path=r"^/compute/v2\.1/servers$", cloud="dst", nth=1, count=1, status=500)),
]


@pytest.mark.parametrize("case,step,fault", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_http_500_at_each_step(world, tmp_path, case, step, fault):
    name = f"f500-{case.replace('_', '-')}"
    stop = case == "stop"
    server, boot, data = source_vm(world, name, stop=not stop)
    export_only(world, tmp_path, name)
    run = import_failing(world, tmp_path, name, step, dict(kind="http", message=f"injected failure for {case}", **fault),
                         os_migrate_workload_stop_before_migration=stop, os_migrate_workload_resume=False)
    assert "HTTP 500" in run.output and f"injected failure for {case}" in run.output
    assert_recovered(world, name, server, [boot, data])


def test_a_failure_after_the_sync_keeps_the_volumes_and_the_retry_sends_only_what_differs(world, tmp_path):
    name = "f500-create-resume"
    server, boot, data = source_vm(world, name, random_boot=True)
    want = world.sim.volume_sha256("src", boot.id)
    export_only(world, tmp_path, name)
    import_failing(world, tmp_path, name, "import_workload_create_instance",
                   dict(kind="http", method="POST", path=r"^/compute/v2\.1/servers$", cloud="dst", nth=1, count=1, status=500))
    dst = world.dst.conn
    assert dst.compute.find_server(name) is None, "the half-made server is gone"
    kept = sorted(v.name for v in dst.block_storage.volumes() if v.name.startswith(name))
    assert kept == [f"{name}-boot", f"{name}-data"], "resume keeps the synced destination volumes"
    marked = " ".join(world.leftovers())
    assert all(f"dst volume {k} " in marked for k in kept), f"kept volumes carry the transfer mark: {marked}"

    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    state = yaml.safe_load((world.data_dir / "workload_logs" / f"{name}.state").read_text())
    rounds = next(v for v in state["volumes"] if v["role"] == "boot")["rounds"]
    assert len(rounds) == 2, rounds
    first, retry = rounds
    assert first["bytes_written"] >= 1 << 30, first
    assert retry["bytes_written"] == 0 and retry["chunks_equal"] == 1024, retry
    assert retry["bytes_on_wire"] < first["bytes_on_wire"] // 100, "the retry sent digests, not data"
    assert retry["root"] == first["root"] and retry["verified"]
    new = dst.compute.find_server(name)
    vols = {dst.block_storage.get_volume(a["id"]).name: a["id"] for a in dst.compute.get_server(new.id).attached_volumes}
    assert world.sim.volume_sha256("dst", vols[f"{name}-boot"]) == want
    assert world.leftovers() == []


def test_stop_stuck_powering_off_times_out_and_leaves_the_source_alone(world, tmp_path):
    name = "fstuck-stop"
    server, boot, data = source_vm(world, name, stop=False)
    export_only(world, tmp_path, name)
    run = import_failing(world, tmp_path, name, "stop_source_server",
                         dict(kind="stuck", resource="server", match={"id": server.id}, status="powering-off"),
                         os_migrate_workload_stop_before_migration=True, os_migrate_timeout=SHORT)
    assert "timed out" in run.output
    wait_until("the source server settles", lambda: world.src.conn.compute.get_server(server.id).status in ("ACTIVE", "SHUTOFF"))
    assert_recovered(world, name, server, [boot, data])


def test_image_stuck_saving_times_out_in_export(world, tmp_path):
    name = "fstuck-image"
    c = world.src.conn
    data = wait_volume(c, c.block_storage.create_volume(name=f"{name}-data", size=1).id, "available")
    server = boot_from_image(c, name, world.src, world.src.cirros, [{"uuid": world.src.app_net.id}], extra_volumes=[data])
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name], os_migrate_workloads_boot_disk_copy=True)
    assert run.rc == 0, run
    run = import_failing(world, tmp_path, name, "import_workload_export_volumes",
                         dict(kind="stuck", resource="image", match={"name": "^osm-"}, status="saving"),
                         os_migrate_timeout=SHORT)
    assert "timed out" in run.output and "image" in run.output
    assert_recovered(world, name, server, [data])


def assert_kept_then_retried(world, tmp_path, name, server, boot, data):
    """After a failure past the sync with resume on (the default): the half-made server is gone, the
    synced volumes are kept; a retry migrates, sending no data, and leaves nothing behind."""
    dst = world.dst.conn
    assert dst.compute.find_server(name) is None, "no destination server"
    kept = sorted(v.name for v in dst.block_storage.volumes() if v.name.startswith(name))
    assert kept == [f"{name}-boot", f"{name}-data"], kept
    want = world.sim.volume_sha256("src", boot.id)
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    state = yaml.safe_load((world.data_dir / "workload_logs" / f"{name}.state").read_text())
    for v in state["volumes"]:
        assert v["rounds"][-1]["bytes_written"] == 0 and v["verified"], v
    new = dst.compute.find_server(name)
    vols = {dst.block_storage.get_volume(a["id"]).name: a["id"] for a in dst.compute.get_server(new.id).attached_volumes}
    assert world.sim.volume_sha256("dst", vols[f"{name}-boot"]) == want
    assert sorted(a["id"] for a in world.src.conn.compute.get_server(server.id).attached_volumes) == sorted([boot.id, data.id])
    assert world.leftovers() == []


def test_server_stuck_building_times_out_in_create_instance(world, tmp_path):
    name = "fstuck-build"
    server, boot, data = source_vm(world, name)
    export_only(world, tmp_path, name)
    run = import_failing(world, tmp_path, name, "import_workload_create_instance",
                         dict(kind="stuck", resource="server", match={"name": f"^{name}$"}, cloud="dst", status="BUILD"),
                         os_migrate_timeout=SHORT)
    assert "timed out" in run.output
    assert_kept_then_retried(world, tmp_path, name, server, boot, data)


def test_server_error_in_create_instance(world, tmp_path):
    name = "ferror-build"
    server, boot, data = source_vm(world, name)
    export_only(world, tmp_path, name)
    run = import_failing(world, tmp_path, name, "import_workload_create_instance",
                         dict(kind="error", resource="server", match={"name": f"^{name}$"}, cloud="dst",
                              message="No valid host was found."))
    assert "No valid host was found." in run.output
    assert_kept_then_retried(world, tmp_path, name, server, boot, data)


# --- failures during the copy: the agent, the tunnel, the migrator's module process -----------------

def start_import(world, tmp_path, name, **extra):
    """ansible-playbook import_workloads in the background."""
    import json
    ev = migration_vars(world.sim, world.data_dir, os_migrate_workloads_filter=[name], **extra)
    vars_file = tmp_path / "bg-vars.json"
    vars_file.write_text(json.dumps(ev))
    out = open(tmp_path / "bg-import.out", "w")
    proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                             str(REPO / "playbooks" / "import_workloads.yml"), "-e", f"@{vars_file}"],
                            cwd=tmp_path, env=ansible_env(tmp_path, world.sim.env), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, tmp_path / "bg-import.out"


def copying(world, dst_volume_name, total, at_least=64 << 20):
    """A check that turns true once the destination volume's file holds some (at least `at_least`
    bytes), but not all, of the data. The volume is looked up once; then only its file is watched."""
    path = None

    def check():
        nonlocal path
        if path is None:
            v = next((v for v in world.dst.conn.block_storage.volumes() if v.name == dst_volume_name), None)
            if v is None:
                return False
            path = world.sim.volume_path("dst", v.id)
        if not path.exists():
            return False
        return at_least <= path.stat().st_blocks * 512 < total

    return check


def interrupt_copy_then_resume(world, tmp_path, name, kill, step="import_workload_transfer_volumes"):
    server, boot, data = source_vm(world, name, random_boot=True)
    want = world.sim.volume_sha256("src", boot.id)
    export_only(world, tmp_path, name)
    proc, out = start_import(world, tmp_path, name)
    try:
        under_way = copying(world, f"{name}-boot", 1 << 30)
        wait_until("the copy to be under way", lambda: under_way() or proc.poll() is not None,
                   timeout=300, interval=0.02)
        assert proc.poll() is None, f"the import ended before the copy could be interrupted: {out.read_text()[-3000:]}"
        kill()
        proc.wait(timeout=600)
    finally:
        stop_group(proc)
    text = out.read_text()
    assert proc.returncode != 0
    assert f"Workload '{name}' failed in step {step}" in text, text[-4000:]
    src = world.src.conn
    assert sorted(a["id"] for a in src.compute.get_server(server.id).attached_volumes) == sorted([boot.id, data.id])
    kept = [v for v in world.dst.conn.block_storage.volumes() if v.name == f"{name}-boot"]
    assert len(kept) == 1, "resume keeps the destination volume of the failed copy"
    state = yaml.safe_load((world.data_dir / "workload_logs" / f"{name}.state").read_text())
    assert state["status"] == "failed" and state["step"] == "transfer_volumes"

    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    log = (world.data_dir / "workload_logs" / f"{name}.log").read_text()
    assert "resuming transfer" in log and "syncing into the kept destination volume" in log
    # A disk of random data is data from end to end: its GiB takes a connection per 512 MiB.
    assert re.search(r"boot: syncing into the kept destination volume .* over 2 SSH connections \(of 4 at most", log), log
    state = yaml.safe_load((world.data_dir / "workload_logs" / f"{name}.state").read_text())
    retry = next(v for v in state["volumes"] if v["role"] == "boot")["rounds"][-1]
    assert retry["bytes_written"] <= (1 << 30) - (32 << 20), f"what the failed run wrote was not kept: {retry}"
    assert retry["verified"]
    new = world.dst.conn.compute.find_server(name)
    vols = {world.dst.conn.block_storage.get_volume(a["id"]).name: a["id"] for a in world.dst.conn.compute.get_server(new.id).attached_volumes}
    assert vols[f"{name}-boot"] == kept[0].id, "the resumed run reused the kept volume"
    assert world.sim.volume_sha256("dst", vols[f"{name}-boot"]) == want, "byte-identical after the resumed copy"
    assert world.leftovers() == []


def test_agent_killed_during_the_copy_then_resumed(world, tmp_path):
    interrupt_copy_then_resume(world, tmp_path, "fkill-agent",
                               lambda: kill_matching(f"osm-agent serve .*{re.escape(str(world.sim.hosts_dir))}.*boot"))


def test_tunnel_killed_during_the_copy_then_resumed(world, tmp_path):
    interrupt_copy_then_resume(world, tmp_path, "fkill-ssh",
                               lambda: kill_matching(rf"^ssh .* bridge --root {re.escape(str(world.sim.hosts_dir))}/"))


def module_process(tmp_path, module):
    """The pattern of this test's process of `module`: on the controller the module runs in place
    (plugins/plugin_utils/in_place.py), given its arguments' file under this test's Ansible local
    temporary directory."""
    return f"/plugins/modules/{module} {re.escape(str(tmp_path))}/ansible-local/"


def test_module_process_killed_during_the_copy_then_resumed(world, tmp_path):
    interrupt_copy_then_resume(world, tmp_path, "fkill-module",
                               lambda: kill_matching(module_process(tmp_path, "import_workload_transfer_volumes")))


def test_module_killed_while_waiting_for_a_snapshot_leaves_nothing(world, tmp_path):
    name = "fkill-export"
    server, boot, data = source_vm(world, name)
    export_only(world, tmp_path, name)
    world.sim.fault(kind="slow", resource="snapshot", match={"name": "^osm-"}, seconds=30)
    proc, out = start_import(world, tmp_path, name, os_migrate_workload_resume=False)
    try:
        wait_until("the snapshot to be created",
                   lambda: any(s.name.startswith("osm-") for s in world.src.conn.block_storage.snapshots()) or proc.poll() is not None,
                   timeout=300, interval=0.05)
        kill_matching(module_process(tmp_path, "import_workload_export_volumes"))
        world.sim.clear_faults()
        proc.wait(timeout=600)
    finally:
        stop_group(proc)
    text = out.read_text()
    assert f"Workload '{name}' failed in step import_workload_export_volumes" in text, text[-4000:]
    assert_recovered(world, name, server, [boot, data])


def test_a_new_server_with_the_name_of_a_failed_one_gets_its_own_transfer(world, tmp_path):
    """The state is the source server id's, not the name's: a failed run's transfer (its kept volumes)
    is never adopted by a later server of the same name, whose own data arrives."""
    name = "fident"
    old, old_boot, old_data = source_vm(world, name, random_boot=True)
    export_only(world, tmp_path, name)
    import_failing(world, tmp_path, name, "import_workload_create_instance",
                   dict(kind="http", method="POST", path=r"^/compute/v2\.1/servers$", cloud="dst", nth=1, count=1, status=500))
    logs = world.data_dir / "workload_logs"
    failed = yaml.safe_load((logs / f"{name}.state").read_text())
    assert failed["status"] == "failed" and failed["source_id"] == old.id
    dst = world.dst.conn
    kept = sorted(v.id for v in dst.block_storage.volumes() if v.name.startswith(name))
    assert len(kept) == 2, "resume kept the failed run's synced volumes"

    # The operator deletes the source server and makes another of the same name, holding other data.
    src = world.src.conn
    src.compute.delete_server(old.id)
    wait_until("the old source server to go", lambda: src.compute.find_server(old.id) is None)
    for v in (old_boot, old_data):
        wait_volume(src, v.id, "available")
        src.block_storage.delete_volume(v.id)
    new, new_boot, _ = source_vm(world, name)
    assert new.id != old.id
    want = world.sim.volume_sha256("src", new_boot.id)
    assert want != world.sim.volume_sha256("dst", kept[0]) and want != world.sim.volume_sha256("dst", kept[1])
    # Its entry replaces the old one in workloads.yml (export refuses two servers of one name).
    wl = world.data_dir / "workloads.yml"
    doc = yaml.safe_load(wl.read_text())
    doc["resources"] = [r for r in doc["resources"] if r["_info"]["id"] != old.id]
    wl.write_text(yaml.safe_dump(doc))
    export_only(world, tmp_path, name)

    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    assert "set aside" in run.output, "the run says it did not resume"
    log = (logs / f"{name}.log").read_text()
    assert f"the state file was for source server '{old.id}'" in log and "starting afresh" in log
    assert "resuming transfer" not in log.split(f"source server '{old.id}'")[-1]
    aside = yaml.safe_load((logs / f"{name}.{old.id}.state").read_text())
    assert aside["transfer_id"] == failed["transfer_id"], "the old record is kept, as it was"
    state = yaml.safe_load((logs / f"{name}.state").read_text())
    assert state["source_id"] == new.id and state["transfer_id"] != failed["transfer_id"]
    assert state["dst_project_id"] == dst.current_project_id

    server = dst.compute.find_server(name)
    vols = {dst.block_storage.get_volume(a["id"]).name: a["id"] for a in dst.compute.get_server(server.id).attached_volumes}
    assert not set(vols.values()) & set(kept), "the new server did not adopt the old transfer's volumes"
    assert world.sim.volume_sha256("dst", vols[f"{name}-boot"]) == want, "the new server's data arrived"
    # The old transfer's volumes are still marked, so os_migrate_leftovers finds them; nothing else is left.
    left = world.leftovers()
    assert sorted(l.split()[3] for l in left) == kept, left
    for v in kept:
        dst.block_storage.delete_volume(v)
        wait_until("a leftover volume to go", lambda v=v: dst.block_storage.find_volume(v) is None)
    assert world.leftovers() == []


def sshd_sessions(host_dir):
    """The sshd processes serving the sessions of a simulated conversion host: the descendants of its
    listening sshd (whose pid file is in the host's directory) that are sshd themselves."""
    listener = int((Path(host_dir) / "etc" / "sshd.pid").read_text())
    parent, comm = {}, {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            parent[int(p.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            comm[int(p.name)] = stat[stat.index("(") + 1:stat.rindex(")")]

    def under(pid):
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == listener:
                return True
        return False
    return [p for p in parent if comm[p].startswith("sshd") and under(p)]


def test_a_frozen_sshd_ends_the_step_in_bounded_time_and_cleanup_runs(world, tmp_path):
    name = "fsilent"
    server, boot, data = source_vm(world, name, random_boot=True)
    export_only(world, tmp_path, name)
    dst_host = next(h for h in world.sim.hosts()["hosts"] if h["cloud"] == "dst" and h["status"] == "ACTIVE")
    silence = 10
    proc, out = start_import(world, tmp_path, name, os_migrate_conversion_host_ssh_silence_timeout=silence,
                             os_migrate_workload_resume=False)
    stopped = []
    try:
        under_way = copying(world, f"{name}-boot", 1 << 30)
        wait_until("the copy to be under way", lambda: under_way() or proc.poll() is not None,
                   timeout=300, interval=0.02)
        assert proc.poll() is None, f"the import ended before the copy could be frozen: {out.read_text()[-3000:]}"
        # The sshd serving the sync's session stops answering, as on a host that hangs; the host
        # still accepts new sessions, which cleanup uses.
        stopped = sshd_sessions(dst_host["dir"])
        assert stopped, "the destination host serves the sync"
        stopped = signal_all(stopped, signal.SIGSTOP)
        assert stopped, "the sync's sshd sessions were still there to freeze"
        frozen_at = time.monotonic()
        proc.wait(timeout=600)
        took = time.monotonic() - frozen_at
    finally:
        signal_all(stopped)
        stop_group(proc)
    text = out.read_text()
    assert f"Workload '{name}' failed in step import_workload_transfer_volumes" in text, text[-4000:]
    assert f"did not answer for {silence} s while running" in text and dst_host["address"] in text, text[-4000:]
    # The step ended after the silence, and cleanup (source and destination) ran within the bound too.
    assert took < 150, f"{took:.0f} s from the freeze to the end of the playbook"
    assert_recovered(world, name, server, [boot, data])
