"""An sshd-backed conversion host driven through openstacksdk, reached with real ssh."""

import os
import subprocess

import pytest

from cloudsim_helpers import wait_until


@pytest.fixture(scope="module")
def conn(sim):
    c = sim.conn("src")
    yield c
    c.close()


@pytest.fixture(scope="module")
def sshkey(tmp_path_factory):
    d = tmp_path_factory.mktemp("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    return d / "id"


def ssh(sim, key, known_hosts, addr, command, check=True):
    argv = ["ssh", "-i", str(key), "-p", str(sim.ssh_port), "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            f"root@{addr}", command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def keyscan(sim, addr, path):
    out = subprocess.run(["ssh-keyscan", "-p", str(sim.ssh_port), "-t", "ed25519", addr],
                         capture_output=True, text=True, timeout=30).stdout
    assert "ssh-ed25519" in out
    with open(path, "a") as f:
        f.write(out)


def sshd_running(config_path):
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return str(config_path) in out


def test_conversion_host_over_ssh(sim, conn, sshkey, tmp_path):
    flavor = conn.compute.create_flavor(name="conv.flavor", ram=512, vcpus=1, disk=1)
    image = conn.image.create_image(name="conv-image", data=b"conversion host image", disk_format="raw",
                                    container_format="bare", visibility="private",
                                    osm_sim_conversion_host="true")
    image = wait_until("image active", lambda: (i := conn.image.get_image(image.id)).status == "active" and i)
    assert image.properties["osm_sim_conversion_host"] == "true"
    conn.compute.create_keypair(name="conv-key", public_key=sshkey.with_suffix(".pub").read_text())
    net = conn.network.create_network(name="conv-net")
    subnet = conn.network.create_subnet(network_id=net.id, cidr="10.20.0.0/24", ip_version=4, name="conv-subnet")
    server = conn.compute.create_server(name="conv-host", flavor_id=flavor.id, image_id=image.id,
                                        key_name="conv-key", networks=[{"uuid": net.id}])
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=0.2)
    addr = server.access_ipv4
    assert addr.startswith("127.")
    assert addr in [a["addr"] for a in server.addresses["conv-net"]]
    host_dir = sim.hosts_dir / server.id

    known_hosts = tmp_path / "known_hosts"
    keyscan(sim, addr, known_hosts)
    out = ssh(sim, sshkey, known_hosts, addr, 'echo "$HOME"; echo "$OSM_DEV_ROOT"; whoami').stdout.split()
    assert out == [str(host_dir / "home"), str(host_dir), "root"]
    assert oct(os.stat(host_dir / "home").st_mode & 0o777) == "0o700"

    # Attach: the device appears by serial inside the host.
    volume = conn.block_storage.create_volume(size=1, name="conv-vol")
    volume = conn.block_storage.wait_for_status(volume, "available", wait=60, interval=0.2)
    serial = "virtio-" + volume.id[:20]
    conn.compute.create_volume_attachment(server, volume=volume)
    conn.block_storage.wait_for_status(volume, "in-use", wait=60, interval=0.2)
    listing = ssh(sim, sshkey, known_hosts, addr, 'ls "$OSM_DEV_ROOT/dev/disk/by-id"').stdout.split()
    assert listing == [serial]
    # Data written through the host lands in the volume's file.
    ssh(sim, sshkey, known_hosts, addr,
        f'printf osm-was-here | dd of="$OSM_DEV_ROOT/dev/disk/by-id/{serial}" bs=1M seek=3 conv=notrunc status=none')
    with open(sim.data_file("src", "volumes", volume.id), "rb") as f:
        f.seek(3 << 20)
        assert f.read(12) == b"osm-was-here"

    # A session open while the host gains a floating IP survives (sshd reloads, not restarts).
    session = subprocess.Popen(
        ["ssh", "-i", str(sshkey), "-p", str(sim.ssh_port), "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{addr}", "echo started; sleep 120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert session.stdout.readline().strip() == "started"

    # A floating IP on a loopback external network reaches the same sshd.
    ext = conn.network.create_network(name="conv-public", is_router_external=True)
    conn.network.create_subnet(network_id=ext.id, cidr="127.99.0.0/24", ip_version=4, is_dhcp_enabled=False)
    router = conn.network.create_router(name="conv-router", external_gateway_info={"network_id": ext.id})
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)
    port = next(conn.network.ports(device_id=server.id))
    fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
    assert fip.floating_ip_address.startswith("127.99.0.")
    keyscan(sim, fip.floating_ip_address, known_hosts)
    out = ssh(sim, sshkey, known_hosts, fip.floating_ip_address, 'echo "$OSM_DEV_ROOT"').stdout.strip()
    assert out == str(host_dir)

    # Detach: the device goes away before the volume is available.
    conn.compute.delete_volume_attachment(server, volume)
    conn.block_storage.wait_for_status(volume, "available", wait=60, interval=0.2)
    assert ssh(sim, sshkey, known_hosts, addr, 'ls "$OSM_DEV_ROOT/dev/disk/by-id"').stdout.split() == []

    # Delete: sshd and its sessions stop, the host directory goes.
    config = host_dir / "etc" / "sshd_config"
    assert sshd_running(config)
    assert session.poll() is None, "the session was cut by the floating IP association"
    conn.network.delete_ip(fip)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60, interval=0.2)
    wait_until("sshd to stop", lambda: not sshd_running(config), timeout=20)
    session.wait(timeout=20)
    assert session.returncode != 0
    assert not host_dir.exists()
    assert ssh(sim, sshkey, known_hosts, addr, "true", check=False).returncode != 0
    conn.block_storage.delete_volume(volume)


def test_two_hosts_do_not_share_files(sim, sshkey, tmp_path):
    """A host in each cloud: separate addresses, homes and device directories."""
    hosts = []
    for cloud in ("src", "dst"):
        c = sim.conn(cloud)
        flavor = c.compute.find_flavor("conv.flavor") or c.compute.create_flavor(name="conv.flavor", ram=512, vcpus=1, disk=1)
        image = c.image.create_image(name=f"h-{cloud}", data=b"x", disk_format="raw", container_format="bare",
                                     osm_sim_conversion_host="true")
        wait_until("image active", lambda: c.image.get_image(image.id).status == "active")
        if not c.compute.find_keypair("conv-key2"):
            c.compute.create_keypair(name="conv-key2", public_key=sshkey.with_suffix(".pub").read_text())
        server = c.compute.create_server(name=f"h-{cloud}", flavor_id=flavor.id, image_id=image.id,
                                         key_name="conv-key2", networks="none")
        server = c.compute.wait_for_server(server, wait=60, interval=0.2)
        hosts.append((c, server))
    known_hosts = tmp_path / "kh"
    homes = []
    for c, server in hosts:
        keyscan(sim, server.access_ipv4, known_hosts)
        ssh(sim, sshkey, known_hosts, server.access_ipv4, 'mkdir -p "$HOME/.osm" && echo mine > "$HOME/.osm/marker"')
        homes.append(ssh(sim, sshkey, known_hosts, server.access_ipv4, 'echo "$HOME"').stdout.strip())
    assert hosts[0][1].access_ipv4 != hosts[1][1].access_ipv4
    assert homes[0] != homes[1]
    for c, server in hosts:
        c.compute.delete_server(server)
        c.compute.wait_for_delete(server, wait=60, interval=0.2)

