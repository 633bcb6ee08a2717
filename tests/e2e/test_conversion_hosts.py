"""Conversion host lifecycle: deploy twice (the second run changes nothing), import through the
deployed hosts, delete (nothing of the conversion hosts is left in either project). Blast radius:
with admin credentials another project's same-named network, router and security group are neither
used nor changed nor deleted; the security groups open SSH to the migrator and the link only; hosts
on a provider network are reached by their fixed address; an SSH user who cannot open attached
volumes is refused at deploy."""

import os
import pwd
import subprocess
import uuid
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
    # Admin credentials, as the blast-radius tests need (the simulator's always are).
    sim = backend.start(root, admin=True)
    try:
        yield sim, root, CloudBase(sim, "src", root).build(), CloudBase(sim, "dst", root).build()
    finally:
        sim.stop()


def recap_changed(run):
    recap = run.output.split("PLAY RECAP")[-1]
    return sum(int(part.split("=")[1]) for part in recap.split() if part.startswith("changed="))


def conversion_resources(sim, cloud):
    """The conversion hosts' resources in the project of the credentials (which are admin: Neutron lists
    every project's)."""
    c = sim.conn(cloud)
    mine = {"project_id": c.current_project_id}
    found = []
    found += [f"server {s.name}" for s in c.compute.servers() if s.name.startswith("os_migrate_conv")]
    found += [f"network {n.name}" for n in c.network.networks(**mine) if n.name == CONV]
    found += [f"subnet {s.name}" for s in c.network.subnets(**mine) if s.name == CONV]
    found += [f"router {r.name}" for r in c.network.routers(**mine) if r.name == CONV]
    found += [f"security group {g.name}" for g in c.network.security_groups(**mine) if g.name == CONV]
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


def ingress(conn, group_name):
    g = next(conn.network.security_groups(name=group_name, project_id=conn.current_project_id))
    return g, sorted((r.protocol, r.port_range_min, r.remote_ip_prefix) for r in conn.network.security_group_rules(security_group_id=g.id)
                     if r.direction == "ingress")


def test_admin_deploy_and_delete_keep_to_their_project(bare, tmp_path):
    sim, root, src, dst = bare
    c = sim.conn("src")
    other = uuid.uuid4().hex
    # Another project's resources of the conversion hosts' names, made by an admin.
    net = c.network.create_network(name=CONV, project_id=other, description="not osm's")
    sub = c.network.create_subnet(name=CONV, network_id=net.id, ip_version=4, cidr="10.77.0.0/24", project_id=other)
    router = c.network.create_router(name=CONV, project_id=other)
    group = c.network.create_security_group(name=CONV, project_id=other, description="not osm's")
    group_rules = sorted(r.id for r in c.network.security_group_rules(security_group_id=group.id))
    try:
        assert len(list(c.network.networks(name=CONV))) == 1, "an admin lists every project's networks"
        assert list(c.network.networks(name=CONV, project_id=c.current_project_id)) == [], "the project_id filter holds"
        data_dir = tmp_path / "data"
        run = deploy_conversion_hosts(tmp_path, sim, data_dir)
        assert run.rc == 0, run
        ours = list(c.network.networks(name=CONV, project_id=c.current_project_id))
        assert len(ours) == 1 and ours[0].id != net.id, "deploy made its own network"
        assert ours[0].description.startswith("osm conversion host"), ours[0].description
        server = c.compute.find_server("os_migrate_conv_src")
        assert {p.network_id for p in c.network.ports(device_id=server.id)} == {ours[0].id}
        assert list(c.network.ports(device_id=router.id)) == [], "the other project's router got no interface"

        # SSH and ICMP from the migrator and, on the source host, from the destination host; nothing else.
        dst_host = dst.conn.compute.find_server("os_migrate_conv_dst")
        dst_addr = dst_host.access_ipv4
        _, src_rules = ingress(c, CONV)
        _, dst_rules = ingress(dst.conn, CONV)
        me = "127.0.0.1/32"
        assert src_rules == sorted([("icmp", None, me), ("tcp", sim.ssh_port, me),
                                    ("icmp", None, f"{dst_addr}/32"), ("tcp", sim.ssh_port, f"{dst_addr}/32")]), src_rules
        assert dst_rules == [("icmp", None, me), ("tcp", sim.ssh_port, me)], dst_rules
        # Widened by the operator, then narrowed again by a deploy without it.
        wide = deploy_conversion_hosts(tmp_path, sim, data_dir, extra={"os_migrate_conversion_ssh_cidr": "10.0.0.0/8"})
        assert wide.rc == 0, wide
        assert ("tcp", sim.ssh_port, "10.0.0.0/8") in ingress(c, CONV)[1]
        narrow = deploy_conversion_hosts(tmp_path, sim, data_dir)
        assert narrow.rc == 0, narrow
        assert ingress(c, CONV)[1] == src_rules
        assert sorted(r.id for r in c.network.security_group_rules(security_group_id=group.id)) == group_rules

        ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst", **conversion_vars(sim, data_dir)}
        gone = run_playbook(tmp_path, REPO / "playbooks" / "delete_conversion_hosts.yml", extra_vars=ev, env=sim.env)
        assert gone.rc == 0, gone
        for cloud in ("src", "dst"):
            assert conversion_resources(sim, cloud) == [], f"left in {cloud}"
        # The other project's are untouched.
        assert c.network.get_network(net.id).description == "not osm's"
        assert c.network.get_subnet(sub.id).network_id == net.id
        assert c.network.get_router(router.id).name == CONV
        assert c.network.get_security_group(group.id).description == "not osm's"
        assert sorted(r.id for r in c.network.security_group_rules(security_group_id=group.id)) == group_rules
    finally:
        c.network.delete_router(router.id, ignore_missing=True)
        c.network.delete_subnet(sub.id, ignore_missing=True)
        c.network.delete_network(net.id, ignore_missing=True)
        c.network.delete_security_group(group.id, ignore_missing=True)


def test_provider_network_hosts_are_reached_by_their_fixed_address(bare, tmp_path):
    """Hosts on a shared provider network without floating IPs: deploy, link and delete through their
    fixed addresses (loopback ranges in the simulator, where their sshd listens)."""
    sim, root, src, dst = bare
    made = []
    # One name per side: on the real bed both projects are in one deployment and see both shared
    # networks.
    extra = {"os_migrate_conversion_manage_network": False, "os_migrate_src_conversion_net_name": "provider-src",
             "os_migrate_dst_conversion_net_name": "provider-dst", "os_migrate_conversion_manage_fip": False}
    try:
        for cloud, cidr in (("src", "127.62.0.0/24"), ("dst", "127.63.0.0/24")):
            c = sim.conn(cloud)
            net = c.network.create_network(name=f"provider-{cloud}", project_id=uuid.uuid4().hex, shared=True)
            made.append((c, net))
            # Neutron refuses DHCP on a loopback range.
            c.network.create_subnet(name=f"provider-{cloud}", network_id=net.id, ip_version=4, cidr=cidr,
                                    is_dhcp_enabled=False)
        data_dir = tmp_path / "data"
        run = deploy_conversion_hosts(tmp_path, sim, data_dir, extra=extra)
        assert run.rc == 0, run
        for cloud, prefix in (("src", "127.62.0."), ("dst", "127.63.0.")):
            c = sim.conn(cloud)
            server = c.compute.find_server(f"os_migrate_conv_{cloud}")
            assert not server.access_ipv4, server.access_ipv4
            fixed = [a["addr"] for a in server.addresses[f"provider-{cloud}"]]
            assert fixed and fixed[0].startswith(prefix), server.addresses
            assert f"at {fixed[0]}" in run.output, f"{cloud} host reached by its fixed address"
        ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst", **conversion_vars(sim, data_dir), **extra}
        gone = run_playbook(tmp_path, REPO / "playbooks" / "delete_conversion_hosts.yml", extra_vars=ev, env=sim.env)
        assert gone.rc == 0, gone
        for (c, net), cloud in zip(made, ("src", "dst")):
            assert c.network.get_network(net.id).name == f"provider-{cloud}", "the provider network stays"
    finally:
        for c, net in made:
            # What a failed deploy left on it first: a subnet with ports cannot go.
            for s in c.compute.servers(name="^os_migrate_conv_"):
                c.compute.delete_server(s.id)
                c.compute.wait_for_delete(s, wait=120)
            for p in c.network.ports(network_id=net.id):
                c.network.delete_port(p.id)
            for s in c.network.subnets(network_id=net.id):
                c.network.delete_subnet(s.id, ignore_missing=True)
            c.network.delete_network(net.id, ignore_missing=True)


NODISK = "osm-nodisk"


def login_user(name):
    """A real local account sshd lets in with a key (the simulated hosts' sshd runs here)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("creating a login user needs root")
        pytest.skip("creating a login user needs root")
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)
    # A locked account is refused even with a key; '*' allows no password but is not locked.
    subprocess.run(["usermod", "-p", "*", "-G", "", name], check=True)
    return name


def test_a_user_who_cannot_open_devices_is_refused_at_deploy(bare, tmp_path):
    sim, root, src, dst = bare
    user = login_user(NODISK)
    data_dir = tmp_path / "data"
    run = deploy_conversion_hosts(tmp_path, sim, data_dir)
    assert run.rc == 0, run
    # The simulated hosts' sshd reads authorized_keys as the user logging in: let the other user read it.
    os.chmod(sim.hosts_dir, 0o711)
    for cloud in ("src", "dst"):
        d = sim.hosts_dir / sim.conn(cloud).compute.find_server(f"os_migrate_conv_{cloud}").id
        for sub in ("", "home", "home/.ssh"):
            os.chmod(d / sub, 0o711)
        os.chmod(d / "home/.ssh/authorized_keys", 0o644)
    try:
        refused = deploy_conversion_hosts(tmp_path, sim, data_dir, extra={"os_migrate_conversion_host_ssh_user": user})
        assert refused.rc != 0, refused
        assert f'SSH user "{user}" cannot open the volumes osm attaches' in refused.output, refused.output[-3000:]
        assert f"usermod -aG disk {user}" in refused.output
        assert "Push the agent and link the conversion hosts" not in refused.output, "refused before anything else"
        subprocess.run(["usermod", "-G", "disk", user], check=True)
        allowed = deploy_conversion_hosts(tmp_path, sim, data_dir, extra={"os_migrate_conversion_host_ssh_user": user})
        assert "cannot open the volumes" not in allowed.output, allowed.output[-3000:]
        assert "Push the agent and link the conversion hosts" in allowed.output, "the check let the disk group in"

        # The import checks again before any workload starts: a user who left the group since the deploy
        # is refused, and no volume was detached, snapshotted or attached.
        subprocess.run(["usermod", "-G", "", user], check=True)
        c = src.conn
        boot = volume_from_image(c, "nodisk-boot", src.cirros)
        server = boot_from_volume(c, "nodisk-server", src, boot, [{"uuid": src.app_net.id}])
        assert export(tmp_path, sim, data_dir, os_migrate_workloads_filter=["nodisk-server"]).rc == 0
        run = import_(tmp_path, sim, data_dir, os_migrate_workloads_filter=["nodisk-server"],
                      os_migrate_conversion_host_ssh_user=user)
        assert run.rc != 0, run
        assert "cannot open the volumes osm attaches" in run.output and user in run.output, run.output[-3000:]
        assert "failed: [localhost] (item=default: os_migrate_conv_src)" in run.output, run.output[-3000:]
        assert "import_workload_prelim" not in run.output, "refused before any workload step"
        assert [a["server_id"] for a in c.block_storage.get_volume(boot.id).attachments] == [server.id]
        assert list(c.block_storage.snapshots()) == [], "nothing snapshotted"
        for cloud in ("src", "dst"):
            host = sim.conn(cloud).compute.find_server(f"os_migrate_conv_{cloud}")
            assert list(sim.conn(cloud).compute.volume_attachments(host)) == [], f"nothing attached in {cloud}"
    finally:
        subprocess.run(["usermod", "-G", "", user], check=False)
        ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst", **conversion_vars(sim, data_dir)}
        run_playbook(tmp_path, REPO / "playbooks" / "delete_conversion_hosts.yml", extra_vars=ev, env=sim.env)
