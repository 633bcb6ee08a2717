"""Import end to end: real ansible-playbook, the simulator (or the real test bed), real sshd conversion
hosts, real filesystems. Each scenario checks the destination server, its volumes' content (sha256) and
that neither cloud holds leftovers."""

import hashlib
import re

import pytest
import yaml

from lib.scenario import (boot_from_image, boot_from_volume, export, import_, make_fs_image, upload_image,
                          volume_from_image, wait_server, wait_volume)


def image_file(world, name, fs, seed, size=96 << 20):
    path = world.root / name
    if not path.exists():
        make_fs_image(path, fs, size=size, files=6, seed=seed)
    return path


def edit_workload(data_dir, name, change):
    """Changes one entry of workloads.yml as an operator would."""
    path = data_dir / "workloads.yml"
    doc = yaml.safe_load(path.read_text())
    for r in doc["resources"]:
        if r["params"]["name"] == name:
            change(r)
    path.write_text(yaml.safe_dump(doc, sort_keys=True))


def migrate(world, tmp_path, name, edit=None, **extra):
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name])
    assert run.rc == 0, run
    if edit:
        edit_workload(world.data_dir, name, edit)
    return import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[name], **extra)


def dst_server(world, name):
    s = world.dst.conn.compute.find_server(name)
    assert s is not None, f"no destination server {name}"
    return world.dst.conn.compute.get_server(s.id)


def dst_volumes(world, server):
    return {world.dst.conn.block_storage.get_volume(a["id"]).name: a["id"] for a in server.attached_volumes}


def prefix_sha256(path, length):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def assert_clean(world):
    assert world.leftovers() == []


def test_volume_boot_with_two_extra_volumes(world, tmp_path):
    src = world.src.conn
    boot_img = upload_image(src, "debian-ext4", image_file(world, "boot.raw", "ext4", 1))
    data_img = upload_image(src, "data-xfs", image_file(world, "data.raw", "xfs", 2))
    boot = volume_from_image(src, "vb-boot", boot_img)
    d1 = volume_from_image(src, "vb-data1", data_img)
    d2 = wait_volume(src, src.block_storage.create_volume(name="vb-data2", size=1).id, "available")
    server = boot_from_volume(src, "vb-server", world.src, boot, [{"uuid": world.src.app_net.id}], extra_volumes=[d1, d2])
    sums = {v.name: world.sim.volume_sha256("src", v.id) for v in (boot, d1, d2)}

    run = migrate(world, tmp_path, "vb-server")
    assert run.rc == 0, run
    wl = yaml.safe_load((world.data_dir / "workloads.yml").read_text())
    entry = next(r for r in wl["resources"] if r["params"]["name"] == "vb-server")
    assert entry["_migration_params"]["boot_disk_copy"] is True

    new = dst_server(world, "vb-server")
    assert new.status == "ACTIVE"
    vols = dst_volumes(world, new)
    assert set(vols) == {"vb-boot", "vb-data1", "vb-data2"}
    for name, vid in vols.items():
        assert world.sim.volume_sha256("dst", vid) == sums[name], name
    assert world.dst.conn.block_storage.get_volume(vols["vb-boot"]).is_bootable
    assert_clean(world)
    after = src.compute.get_server(server.id)
    assert sorted(a["id"] for a in after.attached_volumes) == sorted(v.id for v in (boot, d1, d2))
    log = (world.data_dir / "workload_logs" / "vb-server.log").read_text()
    assert log.count("verified, root ") == 3, log
    assert "MiB on the wire" in log and "chunks already equal" in log
    # The source cleanup logs as itself, not under the step before it (the state keeps that one).
    assert re.search(r"\[src_cleanup\] source cleanup: \d+ removed", log), log
    state = yaml.safe_load((world.data_dir / "workload_logs" / "vb-server.state").read_text())
    assert state["status"] == "done"
    assert all(v["progress"]["percent"] == 100.0 for v in state["volumes"])
    assert "workload_logs/vb-server.log" in run.output


def test_image_boot_without_boot_copy(world, tmp_path):
    src = world.src.conn
    data = volume_from_image(src, "ib-data", upload_image(src, "data-ext4", image_file(world, "d2.raw", "ext4", 3)))
    boot_from_image(src, "ib-server", world.src, world.src.cirros, [{"uuid": world.src.app_net.id}], extra_volumes=[data])
    run = migrate(world, tmp_path, "ib-server")
    assert run.rc == 0, run
    new = dst_server(world, "ib-server")
    assert new.image.id == world.dst.cirros.id, "boots from the destination's image of the same name"
    vols = dst_volumes(world, new)
    assert list(vols) == ["ib-data"]
    assert world.sim.volume_sha256("dst", vols["ib-data"]) == world.sim.volume_sha256("src", data.id)
    assert_clean(world)


def test_image_boot_with_boot_disk_copy(world, tmp_path):
    src = world.src.conn
    server = boot_from_image(src, "ibc-server", world.src, world.src.cirros, [{"uuid": world.src.app_net.id}])
    run = migrate(world, tmp_path, "ibc-server", edit=lambda r: r["_migration_params"].update(boot_disk_copy=True))
    assert run.rc == 0, run
    new = dst_server(world, "ibc-server")
    assert not new.image or not new.image.id, "boots from the copied volume"
    vols = dst_volumes(world, new)
    assert len(vols) == 1
    (boot_id,) = vols.values()
    size = (world.root / "cirros.raw").stat().st_size
    src_sha = prefix_sha256(world.root / "cirros.raw", size)
    assert prefix_sha256(world.sim.volume_path("dst", boot_id), size) == src_sha
    assert src.compute.get_server(server.id).status == "SHUTOFF"
    assert_clean(world)


def nics(server):
    """(network, MAC, fixed IP) per address of a server, in its `addresses` order: Nova's NIC order."""
    return [(net, a["OS-EXT-IPS-MAC:mac_addr"], a["addr"])
            for net, addrs in server.addresses.items() for a in addrs if a.get("OS-EXT-IPS:type") == "fixed"]


@pytest.mark.parametrize("mode", ["nova", "neutron"])
def test_port_creation_modes(world, tmp_path, mode):
    src = world.src.conn
    name = f"pm-{mode}"
    last = 60 if mode == "nova" else 61
    # Two NICs whose order is not their networks' name order: the guest's eth0 must stay eth0.
    server = boot_from_image(src, name, world.src, world.src.cirros,
                             [{"uuid": world.src.db_net.id, "fixed_ip": f"192.168.20.{last}"},
                              {"uuid": world.src.app_net.id, "fixed_ip": f"192.168.10.{last}"}],
                             security_groups=("web",))
    src_nics = nics(src.compute.get_server(server.id))
    assert [n for n, _, _ in src_nics] == ["db-net", "app-net"]
    run = migrate(world, tmp_path, name, edit=lambda r: r["_migration_params"].update(port_creation_mode=mode))
    assert run.rc == 0, run
    new = dst_server(world, name)
    dst_nics = nics(new)
    assert [(n, ip) for n, _, ip in dst_nics] == [(n, ip) for n, _, ip in src_nics], "NIC order and fixed IPs kept"
    ports = list(world.dst.conn.network.ports(device_id=new.id))
    assert len(ports) == 2
    for port in ports:
        sg_names = {world.dst.conn.network.get_security_group(g).name for g in port.security_group_ids}
        assert sg_names == {"web"}
    if mode == "neutron":
        assert [m for _, m, _ in dst_nics] == [m for _, m, _ in src_nics], "neutron mode keeps the MAC addresses"
        assert all(not p.name.startswith("osm-") and not p.tags for p in ports)
    assert_clean(world)


@pytest.mark.parametrize("mode", ["auto", "new", "existing", "skip"])
def test_floating_ip_modes(world, tmp_path, mode):
    src, dst = world.src.conn, world.dst.conn
    name = f"fip-{mode}"
    server = boot_from_image(src, name, world.src, world.src.cirros, [{"uuid": world.src.app_net.id}], stop=False)
    port = next(src.network.ports(device_id=server.id))
    fip = src.network.create_ip(floating_network_id=world.src.public.id, port_id=port.id)
    src.compute.stop_server(server)
    wait_server(src, server.id, "SHUTOFF")
    wanted = None
    if mode == "existing":
        wanted = dst.network.create_ip(floating_network_id=world.dst.public.id).floating_ip_address

    def edit(r):
        r["_migration_params"]["floating_ip_mode"] = mode
        if wanted:
            r["params"]["floating_ips"][0]["params"]["floating_ip_address"] = wanted

    run = migrate(world, tmp_path, name, edit=edit)
    assert run.rc == 0, run
    new = dst_server(world, name)
    fips = list(dst.network.ips(port_id=next(dst.network.ports(device_id=new.id)).id))
    if mode == "skip":
        assert fips == []
    else:
        assert len(fips) == 1
        if mode == "existing":
            assert fips[0].floating_ip_address == wanted
        else:
            assert fips[0].floating_ip_address != fip.floating_ip_address  # another cloud's range
        assert not fips[0].tags
    assert_clean(world)


def test_data_copy_false_reuses_a_destination_volume(world, tmp_path):
    src, dst = world.src.conn, world.dst.conn
    boot = volume_from_image(src, "dc-boot", world.src.cirros)
    boot_from_volume(src, "dc-server", world.src, boot, [{"uuid": world.src.app_net.id}])
    ready = volume_from_image(dst, "dc-ready", world.dst.cirros)
    before = world.sim.volume_sha256("dst", ready.id)

    def edit(r):
        r["_migration_params"]["data_copy"] = False
        r["_migration_params"]["boot_volume"] = {"uuid": ready.id}

    run = migrate(world, tmp_path, "dc-server", edit=edit)
    assert run.rc == 0, run
    new = dst_server(world, "dc-server")
    assert [a["id"] for a in new.attached_volumes] == [ready.id]
    assert world.sim.volume_sha256("dst", ready.id) == before, "nothing copied onto a reused volume"
    log = (world.data_dir / "workload_logs" / "dc-server.log").read_text()
    assert "syncing" not in log and "exporting" not in log, "a data_copy false workload copies nothing"
    assert_clean(world)


def test_server_already_in_destination_is_skipped(world, tmp_path):
    src, dst = world.src.conn, world.dst.conn
    boot_from_image(src, "dup-server", world.src, world.src.cirros, [{"uuid": world.src.app_net.id}])
    existing = boot_from_image(dst, "dup-server", world.dst, world.dst.cirros, [{"uuid": world.dst.app_net.id}], stop=False)
    run = migrate(world, tmp_path, "dup-server")
    assert run.rc == 0, run
    recap = run.output.split("PLAY RECAP")[-1]
    assert "failed=0" in recap
    assert [s.id for s in dst.compute.servers(name="^dup-server$")] == [existing.id]
    assert "already exists in the destination" in run.output
    assert_clean(world)


def test_stop_before_migration(world, tmp_path):
    src = world.src.conn
    server = boot_from_image(src, "stop-server", world.src, world.src.cirros, [{"uuid": world.src.app_net.id}], stop=False)
    assert src.compute.get_server(server.id).status == "ACTIVE"
    run = migrate(world, tmp_path, "stop-server", os_migrate_workload_stop_before_migration=True)
    assert run.rc == 0, run
    assert src.compute.get_server(server.id).status == "SHUTOFF"
    assert dst_server(world, "stop-server").status == "ACTIVE"
    assert_clean(world)


def test_running_source_fails_in_src_check_and_creates_nothing(world, tmp_path):
    src, dst = world.src.conn, world.dst.conn
    data = wait_volume(src, src.block_storage.create_volume(name="run-data", size=1).id, "available")
    server = boot_from_image(src, "run-server", world.src, world.src.cirros, [{"uuid": world.src.app_net.id}],
                             extra_volumes=[data], stop=False)
    volumes_before = {v.id for v in dst.block_storage.volumes()}
    run = migrate(world, tmp_path, "run-server")
    assert run.rc != 0
    assert "Workload 'run-server' failed in step import_workload_src_check" in run.output
    assert "is ACTIVE, not SHUTOFF" in run.output
    assert dst.compute.find_server("run-server") is None
    assert {v.id for v in dst.block_storage.volumes()} == volumes_before
    assert src.compute.get_server(server.id).status == "ACTIVE"
    assert [a["id"] for a in src.compute.get_server(server.id).attached_volumes] == [data.id]
    assert_clean(world)


def test_missing_destination_network_fails_in_dst_check(world, tmp_path):
    src, dst = world.src.conn, world.dst.conn
    net = src.network.create_network(name="only-in-src")
    src.network.create_subnet(name="only-in-src-subnet", network_id=net.id, ip_version=4, cidr="10.99.0.0/24")
    boot_from_image(src, "net-server", world.src, world.src.cirros, [{"uuid": net.id}])
    volumes_before = {v.id for v in dst.block_storage.volumes()}
    run = migrate(world, tmp_path, "net-server")
    assert run.rc != 0
    assert "failed in step import_workload_dst_check" in run.output
    assert "network 'only-in-src' not found" in run.output
    assert "subnet 'only-in-src-subnet' not found" in run.output, "every missing reference is listed"
    assert dst.compute.find_server("net-server") is None
    assert {v.id for v in dst.block_storage.volumes()} == volumes_before
    assert_clean(world)
