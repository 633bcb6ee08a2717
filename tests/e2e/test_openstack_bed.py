"""Scenarios of the real-cloud test bed (issue 8) that need no fault injection, so they run against both
backends: the conversion host contract as the deployed hosts keep it, and a failure that a real cloud
produces by itself (a MAC address already in use in the destination network, met by
import_workload_create_instance after the copy) with the cleanup of both sides, then the retry."""

import ipaddress
import subprocess

from lib.scenario import boot_from_volume, export, import_, volume_from_image, wait_volume


def ssh(world, address, command):
    """Runs `command` on a conversion host as the modules would log in (the deploy's key, root)."""
    key = world.data_dir / "conversion" / "ssh.key"
    r = subprocess.run(["ssh", "-i", str(key), "-p", str(world.sim.ssh_port), "-o", "BatchMode=yes",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        "-o", "ConnectTimeout=10", f"root@{address}", command],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"ssh root@{address}: {r.stderr}"
    return r.stdout


def test_conversion_hosts_answer_on_their_address_and_floating_ip(world):
    for cloud in ("src", "dst"):
        c = world.sim.conn(cloud)
        server = c.compute.get_server(c.compute.find_server(f"os_migrate_conv_{cloud}").id)
        assert server.status == "ACTIVE"
        assert ipaddress.ip_address(server.access_ipv4).is_loopback, server.access_ipv4
        ports = list(c.network.ports(device_id=server.id))
        fips = [f.floating_ip_address for p in ports for f in c.network.ips(port_id=p.id)]
        assert len(fips) == 1, fips
        assert ipaddress.ip_address(fips[0]) in ipaddress.ip_network(world.sim.external_cidr(cloud))
        homes = set()
        for address in (server.access_ipv4, fips[0]):
            user, home, dev_root = ssh(world, address, 'id -un; echo "$HOME"; echo "$OSM_DEV_ROOT"').split("\n")[:3]
            assert user == "root"
            assert home == f"{dev_root}/home"
            homes.add(home)
        assert len(homes) == 1, "one host behind both addresses"


def test_destination_failure_after_the_copy_is_cleaned_up_then_retried(world, tmp_path):
    src, dst = world.src.conn, world.dst.conn
    boot = volume_from_image(src, "mac-boot", world.src.cirros)
    data = wait_volume(src, src.block_storage.create_volume(name="mac-data", size=1).id, "available")
    server = boot_from_volume(src, "mac-server", world.src, boot, [{"uuid": world.src.app_net.id}], extra_volumes=[data])
    mac = next(src.network.ports(device_id=server.id)).mac_address
    sums = {v.id: world.sim.volume_sha256("src", v.id) for v in (boot, data)}
    # Someone in the destination holds the server's MAC address on the same network name.
    blocker = dst.network.create_port(network_id=world.dst.app_net.id, mac_address=mac, name="mac-blocker",
                                      fixed_ips=[{"subnet_id": world.dst.app_subnet.id, "ip_address": "192.168.10.250"}])
    volumes_before = {v.id for v in dst.block_storage.volumes()}
    ports_before = {p.id for p in dst.network.ports()}

    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["mac-server"])
    assert run.rc == 0, run
    text = (world.data_dir / "workloads.yml").read_text()
    assert "port_creation_mode: nova" in text
    (world.data_dir / "workloads.yml").write_text(text.replace("port_creation_mode: nova", "port_creation_mode: neutron"))
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["mac-server"])
    assert run.rc != 0
    assert "Workload 'mac-server' failed in step import_workload_create_instance" in run.output, run
    assert dst.compute.find_server("mac-server") is None
    # Resume is on (the default): the synced volumes stay, marked, for the retry; nothing else does.
    kept = {v.id for v in dst.block_storage.volumes()} - volumes_before
    assert len(kept) == 2, "the synced volumes are kept for the retry"
    assert all("osm_transfer_id" in dst.block_storage.get_volume(v).metadata for v in kept)
    assert {p.id for p in dst.network.ports()} == ports_before, "the ports made for the server are removed"
    assert len(world.leftovers()) == 2 and all(" volume " in f for f in world.leftovers())
    after = src.compute.get_server(server.id)
    assert after.status == "SHUTOFF"
    assert sorted(a["id"] for a in after.attached_volumes) == sorted(sums), "the source keeps its volumes"

    # The operator frees the address and runs the import again.
    dst.network.delete_port(blocker)
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["mac-server"])
    assert run.rc == 0, run
    new = dst.compute.get_server(dst.compute.find_server("mac-server").id)
    assert new.status == "ACTIVE"
    assert next(dst.network.ports(device_id=new.id)).mac_address == mac
    names = {dst.block_storage.get_volume(a["id"]).name: a["id"] for a in new.attached_volumes}
    assert set(names) == {"mac-boot", "mac-data"}
    assert set(names.values()) == kept, "the retry synced into the kept volumes"
    assert world.sim.volume_sha256("dst", names["mac-boot"]) == sums[boot.id]
    assert world.sim.volume_sha256("dst", names["mac-data"]) == sums[data.id]
    assert world.leftovers() == []
