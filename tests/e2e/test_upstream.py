"""An upstream OS Migrate operator's migration with osm, end to end (real ansible-playbook, the simulator,
real sshd conversion hosts): their variables file, inventory and clouds conventions; their files both
ways (a real upstream 1.0.5 export imported; osm's export held to upstream's loader); data_copy false
without conversion hosts; a server on virtio-scsi."""

import stat

import pytest
import yaml

from lib import backend
from lib.ansible import REPO, run_playbook
from lib.scenario import (CloudBase, boot_from_image, boot_from_volume, conversion_image, export, import_,
                          upload_image, volume_from_image, wait_server, wait_volume)
from lib.upstream import loader_errors, remap_ids, seed

FIXTURE = REPO / "crates" / "workload" / "tests" / "data" / "upstream-1.0.5.yml"


def entries(path):
    return {r["params"]["name"]: r for r in yaml.safe_load(path.read_text())["resources"]}


def attachments(conn, server_id):
    return {a.volume_id: a for a in conn.compute.volume_attachments(server_id)}


def test_a_real_upstream_export_imports_and_osm_writes_what_upstream_reads(world, tmp_path):
    src, dst = world.src.conn, world.dst.conn
    servers = seed(world)
    sums = {v.name: world.sim.volume_sha256("src", v.id) for v in src.block_storage.volumes()
            if v.name.startswith("up-")}
    (world.data_dir / "workloads.yml").write_text(remap_ids(FIXTURE.read_text(), src))
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[{"regex": "^up-"}])
    assert run.rc == 0, run

    app = dst.compute.get_server(dst.compute.find_server("up-app").id)
    assert app.status == "ACTIVE" and app.image.id == world.dst.cirros.id
    port = next(dst.network.ports(device_id=app.id))
    (fip,) = list(dst.network.ips(port_id=port.id))
    assert (fip.dns_name, fip.dns_domain, fip.description) == ("app", "example.org.", "app address")
    assert fip.qos_policy_id == dst.network.find_qos_policy("up-gold").id

    db = dst.compute.get_server(dst.compute.find_server("up-db").id)
    devices = {dst.block_storage.get_volume(v).name: a.device for v, a in attachments(dst, db.id).items()}
    assert devices == {"up-db-boot": "/dev/vda", "up-db-data1": "/dev/vdb", "up-db-data2": "/dev/vdc"}
    for name in devices:
        vid = dst.block_storage.find_volume(name).id
        assert world.sim.volume_sha256("dst", vid) == sums[name], name

    scsi = dst.compute.get_server(dst.compute.find_server("up-scsi").id)
    atts = attachments(dst, scsi.id)
    by_name = {dst.block_storage.get_volume(v).name: (v, a) for v, a in atts.items()}
    boot_id, boot_att = by_name["up-scsi-boot"]
    assert boot_att.device == "/dev/sda" and by_name["up-scsi-data"][1].device == "/dev/sdb"
    boot = dst.block_storage.get_volume(boot_id)
    assert boot.volume_image_metadata["hw_disk_bus"] == "scsi"
    assert boot.volume_image_metadata["hw_scsi_model"] == "virtio-scsi"
    # As upstream, the migrated boot volume goes with the server; the data volume does not.
    assert boot_att.delete_on_termination is True
    assert by_name["up-scsi-data"][1].delete_on_termination is False
    assert world.leftovers() == []

    # The other way: what osm exports of the same servers passes upstream 1.0.5's loader checks.
    out = tmp_path / "osm-data"
    run = export(tmp_path, world.sim, out, os_migrate_workloads_filter=[{"regex": "^up-"}])
    assert run.rc == 0, run
    written = (out / "workloads.yml").read_text()
    assert loader_errors(written) == []
    e = entries(out / "workloads.yml")
    fip = e["up-app"]["params"]["floating_ips"][0]["params"]
    assert fip["qos_policy_ref"]["name"] == "up-gold" and fip["dns_name"] == "app"
    assert len(e["up-db"]["_migration_params"]["additional_volumes"]) == 2
    assert e["up-scsi"]["_migration_params"]["use_nbdkit_direct"] is False
    for name in ("up-app", "up-db", "up-scsi"):
        ours, theirs = e[name], entries(FIXTURE)[name]
        assert sorted(ours["params"]) == sorted(theirs["params"]), name
        assert set(theirs["_migration_params"]) <= set(ours["_migration_params"]), name
    assert servers


def test_a_local_ephemeral_disk_is_refused_unless_recreated(world, tmp_path):
    """Upstream's #510: a flavor's ephemeral disk is on the hypervisor, out of reach of any API, so its
    data cannot move; the destination check says which disk would be lost, and local_disks: recreate
    accepts a new, empty one (swap is recreated empty without asking: it holds nothing)."""
    src, dst = world.src.conn, world.dst.conn
    flavors = {c: c.compute.find_flavor("m1.eph") or c.compute.create_flavor(
        name="m1.eph", vcpus=1, ram=512, disk=1, ephemeral=2, swap=256) for c in (src, dst)}
    s = src.compute.create_server(name="eph-server", flavor_id=flavors[src].id, image_id=world.src.cirros.id,
                                  networks=[{"uuid": world.src.app_net.id}])
    wait_server(src, s.id, "ACTIVE")
    src.compute.stop_server(s)
    wait_server(src, s.id, "SHUTOFF")
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["eph-server"])
    assert run.rc == 0, run
    assert "its flavor has a local ephemeral disk" in " ".join(run.output.split())
    entry = entries(world.data_dir / "workloads.yml")["eph-server"]
    assert (entry["_info"]["flavor_ephemeral_gb"], entry["_info"]["flavor_swap_mb"]) == (2, 256)
    volumes_before = {v.id for v in dst.block_storage.volumes()}
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["eph-server"])
    assert run.rc != 0
    out = " ".join(run.output.split())
    assert "failed in step import_workload_dst_check" in out
    assert ("the source flavor 'm1.eph' gives the server a local ephemeral disk ephemeral0 of 2 GiB "
            "(/dev/vdb as Nova names it) whose data would be lost") in out
    assert "_migration_params.local_disks: recreate" in out
    assert dst.compute.find_server("eph-server") is None
    assert {v.id for v in dst.block_storage.volumes()} == volumes_before

    path = world.data_dir / "workloads.yml"
    doc = yaml.safe_load(path.read_text())
    for r in doc["resources"]:
        if r["params"]["name"] == "eph-server":
            r["_migration_params"]["local_disks"] = "recreate"
    path.write_text(yaml.safe_dump(doc))
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["eph-server"])
    assert run.rc == 0, run
    new = dst.compute.get_server(dst.compute.find_server("eph-server").id)
    assert new.status == "ACTIVE" and new.flavor.ephemeral == 2
    log = (world.data_dir / "workload_logs" / "eph-server.log").read_text()
    assert "the destination server gets a new, empty one (local_disks: recreate)" in log
    assert "swap disk of 256 MiB (/dev/vdc) of flavor 'm1.eph': recreated empty" in log
    assert world.leftovers() == []


def test_data_copy_false_needs_no_conversion_hosts(clouds, tmp_path):
    """Upstream's #602: no selected workload copies data, so no conversion host is looked for (none is
    deployed here). A server booted from an image boots from the given volume; a null additional volume
    ID is skipped."""
    w = clouds
    src, dst = w.src.conn, w.dst.conn
    data = wait_volume(src, src.block_storage.create_volume(name="nc-data", size=1).id, "available")
    boot_from_volume(src, "nc-bfv", w.src, volume_from_image(src, "nc-boot", w.src.cirros),
                     [{"uuid": w.src.app_net.id}], extra_volumes=[data])
    data2 = wait_volume(src, src.block_storage.create_volume(name="nc-data2", size=1).id, "available")
    boot_from_image(src, "nc-img", w.src, w.src.cirros, [{"uuid": w.src.app_net.id}], extra_volumes=[data2])
    ready_boot = volume_from_image(dst, "nc-ready-boot", w.dst.cirros)
    ready_img_boot = volume_from_image(dst, "nc-ready-img-boot", w.dst.cirros)
    ready_data = wait_volume(dst, dst.block_storage.create_volume(name="nc-ready-data", size=1).id, "available")
    data_dir = tmp_path / "data"
    run = export(tmp_path, w.sim, data_dir, os_migrate_workloads_filter=[{"regex": "^nc-"}])
    assert run.rc == 0, run
    path = data_dir / "workloads.yml"
    doc = yaml.safe_load(path.read_text())
    for r in doc["resources"]:
        mp = r["_migration_params"]
        mp["data_copy"] = False
        if r["params"]["name"] == "nc-bfv":
            mp["boot_volume"] = {"uuid": ready_boot.id}
            assert mp["additional_volumes"] == [{"uuid": None}]
        else:
            mp["boot_volume"] = {"uuid": ready_img_boot.id}
            mp["additional_volumes"] = [{"uuid": ready_data.id}]
    path.write_text(yaml.safe_dump(doc))
    run = import_(tmp_path, w.sim, data_dir, os_migrate_workloads_filter=[{"regex": "^nc-"}])
    assert run.rc == 0, run
    for side in ("source", "destination"):
        task = run.output.split(f"Find each pair's {side} conversion host and check SSH to it]")[1].split("TASK [")[0]
        assert "skipping: [localhost]" in task, task
    bfv = dst.compute.get_server(dst.compute.find_server("nc-bfv").id)
    assert [a["id"] for a in bfv.attached_volumes] == [ready_boot.id], "the null additional volume is skipped"
    img = dst.compute.get_server(dst.compute.find_server("nc-img").id)
    assert not img.image or not img.image.id, "boots from boot_volume.uuid though the source booted from an image"
    assert sorted(a["id"] for a in img.attached_volumes) == sorted([ready_img_boot.id, ready_data.id])
    log = (data_dir / "workload_logs" / "nc-bfv.log").read_text()
    assert "1 of the source's 1 additional volumes have no destination volume" in log
    assert w.leftovers() == []


@pytest.fixture(scope="module")
def upstream_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    sim = backend.start(root)
    try:
        yield sim, root, CloudBase(sim, "src", root).build(), CloudBase(sim, "dst", root).build()
    finally:
        sim.stop()


def test_an_upstream_vars_file_and_inventory_run_every_playbook(upstream_world, tmp_path):
    sim, root, src, dst = upstream_world
    clouds = yaml.safe_load(sim.clouds_yaml.read_text())["clouds"]
    data_dir = tmp_path / "data"
    conversion_image(sim, root)
    # The destination conversion host attaches volumes on virtio-scsi: the agent finds them as udev
    # names them there (scsi-0QEMU_QEMU_HARDDISK_<id>), or the import could not sync into them.
    upload_image(dst.conn, "osm-conv-scsi", root / "conv.raw",
                 properties={"osm_sim_conversion_host": "true", "hw_disk_bus": "scsi", "hw_scsi_model": "virtio-scsi"})
    boot_from_image(src.conn, "vf-app", src, src.cirros, [{"uuid": src.app_net.id}], stop=False)
    boot_from_image(src.conn, "vf-skip", src, src.cirros, [{"uuid": src.app_net.id}])
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"migrator": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    # An upstream operator's variables file (as in upstream's docs and e2e scenario), with only
    # what the simulator needs added (its conversion hosts' SSH port and login).
    upstream_vars = {
        "os_migrate_data_dir": str(data_dir),
        "os_migrate_src_auth": clouds["src"]["auth"],
        "os_migrate_dst_auth": clouds["dst"]["auth"],
        "os_migrate_src_validate_certs": False,
        "os_migrate_dst_validate_certs": False,
        "os_migrate_src_block_storage_api_version": 3,
        "os_migrate_src_conversion_image_name": "osm-conv",
        "os_migrate_dst_conversion_image_name": "osm-conv-scsi",
        "os_migrate_src_conversion_flavor_name": "m1.small",
        "os_migrate_dst_conversion_flavor_name": "m1.small",
        "os_migrate_src_conversion_external_network_name": "public",
        "os_migrate_dst_conversion_external_network_name": "public",
        "os_migrate_conversion_subnet_cidr": "192.168.77.0/24",
        "os_migrate_conversion_subnet_alloc_start": "192.168.77.10",
        "os_migrate_conversion_subnet_alloc_end": "192.168.77.99",
        "os_migrate_conversion_router_ip": "192.168.77.1",
        "os_migrate_src_conversion_net_mtu": 1400,
        "os_migrate_conversion_subnet_dns_nameservers": ["10.64.63.6"],
        "os_migrate_src_conversion_manage_fip": True,
        "os_migrate_dst_conversion_host_delete_fip": False,
        "os_migrate_conversion_host_ssh_key_type": "rsa",
        "os_migrate_conversion_host_ssh_key_bits": 2048,
        "os_migrate_src_conversion_host_pre_content_hook": f"touch {tmp_path}/pre-src",
        "os_migrate_dst_conversion_host_post_content_hook": f"touch {tmp_path}/post-dst",
        "os_migrate_conversion_host_content_install": False,
        "os_migrate_link_conversion_hosts": True,
        "os_migrate_workload_stop_before_migration": True,
        "os_migrate_workloads_filter": [{"regex": "^vf-(?!skip)"}],
        "os_migrate_workloads_boot_disk_copy": True,
        "os_migrate_workload_boot_volume_prefix": "os-migrate-",
        "os_migrate_timeout": 300,
        "os_migrate_conversion_host_ssh_user": "root",
        "os_migrate_conversion_host_ssh_port": sim.ssh_port,
    }

    def play(name):
        run = run_playbook(tmp_path, REPO / "playbooks" / f"{name}.yml", extra_vars=upstream_vars,
                           inventory=str(inventory), env={"OS_CLIENT_CONFIG_FILE": str(tmp_path / "none.yaml")})
        assert run.rc == 0, run
        assert "ok: [localhost]" in run.output, "runs on the migrator group's host"
        assert "[WARNING]: os_migrate_" not in run.output, "every variable is known"
        return run

    play("deploy_conversion_hosts")
    written = data_dir / "clouds.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    cfile = yaml.safe_load(written.read_text())["clouds"]
    assert cfile["src"]["auth"] == clouds["src"]["auth"] and cfile["dst"]["insecure"] is True
    assert cfile["src"]["block_storage_api_version"] == 3
    for c, mtu in ((src.conn, 1400), (dst.conn, None)):
        subnet = c.network.find_subnet("os_migrate_conv")
        assert subnet.cidr == "192.168.77.0/24" and subnet.gateway_ip == "192.168.77.1"
        assert subnet.allocation_pools == [{"start": "192.168.77.10", "end": "192.168.77.99"}]
        assert subnet.dns_nameservers == ["10.64.63.6"]
        if mtu:
            assert c.network.find_network("os_migrate_conv").mtu == mtu
    assert (tmp_path / "pre-src").exists() and (tmp_path / "post-dst").exists(), "upstream's content hooks ran"
    assert (data_dir / "conversion" / "ssh.key").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (data_dir / "conversion" / "ssh.key.pub").read_text().startswith("ssh-rsa ")

    play("export_workloads")
    exported = entries(data_dir / "workloads.yml")
    assert set(exported) == {"vf-app"}, "look-ahead in the filter"
    assert exported["vf-app"]["_migration_params"]["boot_disk_copy"] is True

    play("import_workloads")
    new = dst.conn.compute.get_server(dst.conn.compute.find_server("vf-app").id)
    assert new.status == "ACTIVE"
    names = [dst.conn.block_storage.get_volume(a["id"]).name for a in new.attached_volumes]
    assert names == ["os-migrate-vf-app"], "upstream's boot volume name"
    log = (data_dir / "workload_logs" / "vf-app.log").read_text()
    assert "syncing into the new destination volume" in log and "verified, root" in log

    dst_fip = next(f for f in dst.conn.network.ips() if (f.description or "").startswith("osm conversion host"))
    play("delete_conversion_hosts")
    kept = dst.conn.network.get_ip(dst_fip.id)
    assert kept.port_id is None, "os_migrate_dst_conversion_host_delete_fip: false keeps the address, released"
    assert not [f for f in src.conn.network.ips() if (f.description or "").startswith("osm conversion host")]
