"""Conversion host lifecycle: deploy twice (the second run changes nothing), import through the
deployed hosts, delete (nothing of the conversion hosts is left in either project)."""

from pathlib import Path

import pytest

from lib import backend
from lib.ansible import REPO, run_playbook
from lib.scenario import (CloudBase, boot_from_volume, conversion_image, conversion_vars, deploy_conversion_hosts,
                          export, import_, volume_from_image)

CONV = "os_migrate_conv"


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    sim = backend.start(root)
    try:
        yield sim, root, CloudBase(sim, "src", root).build(), CloudBase(sim, "dst", root).build()
    finally:
        sim.stop()


def recap_changed(run):
    recap = run.output.split("PLAY RECAP")[-1]
    return sum(int(part.split("=")[1]) for part in recap.split() if part.startswith("changed="))


def conversion_resources(sim, cloud):
    c = sim.conn(cloud)
    found = []
    found += [f"server {s.name}" for s in c.compute.servers() if s.name.startswith("os_migrate_conv")]
    found += [f"network {n.name}" for n in c.network.networks() if n.name == CONV]
    found += [f"subnet {s.name}" for s in c.network.subnets() if s.name == CONV]
    found += [f"router {r.name}" for r in c.network.routers() if r.name == CONV]
    found += [f"security group {g.name}" for g in c.network.security_groups() if g.name == CONV]
    found += [f"keypair {k.name}" for k in c.compute.keypairs() if k.name == CONV]
    found += [f"floating ip {f.floating_ip_address}" for f in c.network.ips() if (f.description or "").startswith("osm conversion host")]
    return found


def test_deploy_twice_import_delete(bare, tmp_path):
    sim, root, src, dst = bare
    data_dir = tmp_path / "data"
    first = deploy_conversion_hosts(tmp_path, sim, data_dir)
    assert first.rc == 0, first
    for cloud in ("src", "dst"):
        have = conversion_resources(sim, cloud)
        for kind in ("server", "network", "subnet", "router", "security group", "keypair", "floating ip"):
            assert any(h.startswith(kind) for h in have), f"{cloud}: no {kind} deployed: {have}"
    key = data_dir / "conversion" / "ssh.key"
    assert key.stat().st_mode & 0o777 == 0o600
    known = (data_dir / "known_hosts").read_text().splitlines()
    assert len(known) == 2, "both host keys recorded"

    second = deploy_conversion_hosts(tmp_path, sim, data_dir)
    assert second.rc == 0, second
    assert recap_changed(second) == 0, second.output.split("PLAY RECAP")[-1]
    assert (data_dir / "known_hosts").read_text().splitlines() == known

    c = src.conn
    boot = volume_from_image(c, "ch-boot", src.cirros)
    boot_from_volume(c, "ch-server", src, boot, [{"uuid": src.app_net.id}])
    assert export(tmp_path, sim, data_dir, os_migrate_workloads_filter=["ch-server"]).rc == 0
    run = import_(tmp_path, sim, data_dir, os_migrate_workloads_filter=["ch-server"])
    assert run.rc == 0, run
    assert dst.conn.compute.find_server("ch-server").status == "ACTIVE"

    ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst", **conversion_vars(sim, data_dir)}
    gone = run_playbook(tmp_path, REPO / "playbooks" / "delete_conversion_hosts.yml", extra_vars=ev, env=sim.env)
    assert gone.rc == 0, gone
    for cloud in ("src", "dst"):
        assert conversion_resources(sim, cloud) == [], f"left in {cloud}"
    assert (data_dir / "known_hosts").read_text().strip() == "", "their host keys are forgotten"
    again = run_playbook(tmp_path, REPO / "playbooks" / "delete_conversion_hosts.yml", extra_vars=ev, env=sim.env)
    assert again.rc == 0, again
    assert recap_changed(again) == 0, "deleting what is gone changes nothing"


def test_deploy_check_mode_creates_nothing(bare, tmp_path):
    sim, root, src, dst = bare
    conversion_image(sim, root)
    data_dir = tmp_path / "data"
    ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst", **conversion_vars(sim, data_dir)}
    (data_dir / "conversion").mkdir(parents=True)
    run = run_playbook(tmp_path, REPO / "playbooks" / "deploy_conversion_hosts.yml", extra_vars=ev, env=sim.env, check=True)
    assert "server os_migrate_conv_src" in run.output
    for cloud in ("src", "dst"):
        assert conversion_resources(sim, cloud) == []
    assert not Path(data_dir / "known_hosts").exists()
