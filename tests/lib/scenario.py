"""Building migration scenarios in a cloud through the ordinary OpenStack APIs (openstacksdk), as an
operator would: flavors, images with real filesystems, networks, conversion hosts, source servers."""

import hashlib
import os
import random
import subprocess
from pathlib import Path

from lib.ansible import REPO, run_playbook
from lib.sim import wait_until

MIB = 1 << 20
GIB = 1 << 30


def make_fs_image(path, fs="ext4", size=64 * MIB, files=8, seed=1):
    """A raw disk image holding a real filesystem with random files; returns {name: sha256}. XFS needs
    at least 300 MiB."""
    if fs == "xfs":
        size = max(size, 320 * MIB)
    rnd = random.Random(seed)
    root = Path(str(path) + ".d")
    root.mkdir(parents=True, exist_ok=True)
    sums = {}
    for i in range(files):
        data = rnd.randbytes(rnd.randint(1, 2 * MIB))
        (root / f"file-{i}.bin").write_bytes(data)
        sums[f"file-{i}.bin"] = hashlib.sha256(data).hexdigest()
    with open(path, "wb") as f:
        f.truncate(size)
    if fs == "ext4":
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(path)], check=True)
    elif fs == "xfs":
        subprocess.run(["mkfs.xfs", "-q", "-f", "-p", _xfs_proto(root), str(path)], check=True)
    else:
        raise ValueError(fs)
    return sums


def _xfs_proto(root):
    """An mkfs.xfs protofile that copies the files of `root` into the new filesystem."""
    lines = ["/dev/null", "0 0", "d--755 0 0"]
    for p in sorted(Path(root).iterdir()):
        lines.append(f"{p.name} ---644 0 0 {p}")
    lines += ["$", "$"]
    proto = Path(str(root) + ".proto")
    proto.write_text("\n".join(lines) + "\n")
    return str(proto)


def upload_image(conn, name, path, properties=None, visibility="public"):
    existing = conn.image.find_image(name)
    if existing:
        return existing
    img = conn.image.create_image(name=name, disk_format="raw", container_format="bare", visibility=visibility,
                                  data=open(path, "rb"), **(properties or {}))
    return wait_until(f"image {name} active", lambda: (i := conn.image.get_image(img.id)).status == "active" and i)


def ensure_keypair_file(path):
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "osm-test", "-f", str(path)], check=True)
    return Path(str(path) + ".pub").read_text().strip()


class CloudBase:
    """The shared resources of one cloud: flavors, networks, router, security group, keypair, images."""

    def __init__(self, sim, cloud, workdir):
        self.sim = sim
        self.cloud = cloud
        self.conn = sim.conn(cloud)
        self.workdir = Path(workdir)

    def build(self, with_images=True):
        c = self.conn
        self.flavor = c.compute.find_flavor("m1.small") or c.compute.create_flavor(name="m1.small", vcpus=1, ram=512, disk=1)
        self.big_flavor = c.compute.find_flavor("m1.medium") or c.compute.create_flavor(name="m1.medium", vcpus=2, ram=1024, disk=2)
        self.public = c.network.find_network("public") or c.network.create_network(name="public", is_router_external=True)
        if not c.network.find_subnet("public-subnet"):
            c.network.create_subnet(name="public-subnet", network_id=self.public.id, ip_version=4,
                                    cidr=self.sim.external_cidr(self.cloud), enable_dhcp=False)
        # The project's own, where admin credentials list every project's (two projects of the real
        # bed share one Neutron); `public` alone is one network for both.
        mine = {"project_id": c.current_project_id}
        self.app_net = c.network.find_network("app-net", **mine) or c.network.create_network(name="app-net")
        # Real Neutron hands out addresses at random: the pools leave room for the fixed IPs that
        # the tests choose (below .100 and above .240).
        self.app_subnet = c.network.find_subnet("app-subnet", **mine) or c.network.create_subnet(
            name="app-subnet", network_id=self.app_net.id, ip_version=4, cidr="192.168.10.0/24",
            allocation_pools=[{"start": "192.168.10.100", "end": "192.168.10.240"}])
        self.db_net = c.network.find_network("db-net", **mine) or c.network.create_network(name="db-net")
        self.db_subnet = c.network.find_subnet("db-subnet", **mine) or c.network.create_subnet(
            name="db-subnet", network_id=self.db_net.id, ip_version=4, cidr="192.168.20.0/24",
            allocation_pools=[{"start": "192.168.20.100", "end": "192.168.20.240"}])
        router = c.network.find_router("app-router", **mine)
        if not router:
            router = c.network.create_router(name="app-router", external_gateway_info={"network_id": self.public.id})
            c.network.add_interface_to_router(router, subnet_id=self.app_subnet.id)
            c.network.add_interface_to_router(router, subnet_id=self.db_subnet.id)
        self.web_sg = c.network.find_security_group("web", **mine)
        if not self.web_sg:
            self.web_sg = c.network.create_security_group(name="web", description="web servers")
            c.network.create_security_group_rule(security_group_id=self.web_sg.id, direction="ingress", protocol="tcp",
                                                 port_range_min=80, port_range_max=80, ethertype="IPv4")
        pub = ensure_keypair_file(self.workdir / "app-key")
        if not c.compute.find_keypair("app-key"):
            c.compute.create_keypair(name="app-key", public_key=pub)
        if with_images:
            tiny = self.workdir / "cirros.raw"
            if not tiny.exists():
                make_fs_image(tiny, "ext4", size=16 * MIB, files=2, seed=7)
            self.cirros = upload_image(c, "cirros", tiny)
        return self


def conversion_vars(sim, data_dir):
    """Extra vars for the playbooks to use simulated conversion hosts."""
    return {
        "os_migrate_conversion_host_ssh_user": "root",
        "os_migrate_conversion_host_ssh_port": sim.ssh_port,
        "os_migrate_src_conversion_image_name": "osm-conv",
        "os_migrate_dst_conversion_image_name": "osm-conv",
        "os_migrate_src_conversion_flavor_name": "m1.small",
        "os_migrate_dst_conversion_flavor_name": "m1.small",
        "os_migrate_src_conversion_external_network_name": "public",
        "os_migrate_dst_conversion_external_network_name": "public",
        "os_migrate_data_dir": str(data_dir),
    }


def conversion_image(sim, workdir):
    """The conversion host image in both clouds: any image with the simulator's marker property."""
    path = Path(workdir) / "conv.raw"
    if not path.exists():
        with open(path, "wb") as f:
            f.truncate(MIB)
    for cloud in ("src", "dst"):
        upload_image(sim.conn(cloud), "osm-conv", path, properties={"osm_sim_conversion_host": "true"})


def deploy_conversion_hosts(tmp_path, sim, data_dir, extra=None):
    """Runs the deploy_conversion_hosts playbook against the simulator."""
    conversion_image(sim, tmp_path)
    ev = {"os_migrate_src_cloud": "src", "os_migrate_dst_cloud": "dst", **conversion_vars(sim, data_dir), **(extra or {})}
    return run_playbook(tmp_path, REPO / "playbooks" / "deploy_conversion_hosts.yml", extra_vars=ev, env=sim.env)


def wait_server(conn, server_id, status, timeout=120):
    return wait_until(f"server {server_id} {status}",
                      lambda: (s := conn.compute.get_server(server_id)).status == status and s, timeout=timeout)


def wait_volume(conn, volume_id, status, timeout=120):
    return wait_until(f"volume {volume_id} {status}",
                      lambda: (v := conn.block_storage.get_volume(volume_id)).status == status and v, timeout=timeout)


def volume_from_image(conn, name, image, size_gib=1):
    v = conn.block_storage.create_volume(name=name, size=size_gib, image_id=image.id)
    return wait_volume(conn, v.id, "available")


def boot_from_volume(conn, name, base, volume, networks, extra_volumes=(), key_name="app-key", security_groups=("default",), stop=True, **kw):
    bdm = [{"boot_index": 0, "uuid": volume.id, "source_type": "volume", "destination_type": "volume", "delete_on_termination": False}]
    s = conn.compute.create_server(name=name, flavor_id=base.flavor.id, block_device_mapping=bdm, networks=networks,
                                   key_name=key_name, security_groups=[{"name": g} for g in security_groups], **kw)
    s = wait_server(conn, s.id, "ACTIVE")
    for v in extra_volumes:
        conn.compute.create_volume_attachment(s, volume_id=v.id)
        wait_volume(conn, v.id, "in-use")
    if stop:
        conn.compute.stop_server(s)
        wait_server(conn, s.id, "SHUTOFF")
    return conn.compute.get_server(s.id)


def boot_from_image(conn, name, base, image, networks, extra_volumes=(), key_name="app-key", security_groups=("default",), stop=True, **kw):
    s = conn.compute.create_server(name=name, flavor_id=base.flavor.id, image_id=image.id, networks=networks,
                                   key_name=key_name, security_groups=[{"name": g} for g in security_groups], **kw)
    s = wait_server(conn, s.id, "ACTIVE")
    for v in extra_volumes:
        conn.compute.create_volume_attachment(s, volume_id=v.id)
        wait_volume(conn, v.id, "in-use")
    if stop:
        conn.compute.stop_server(s)
        wait_server(conn, s.id, "SHUTOFF")
    return conn.compute.get_server(s.id)


def migration_vars(sim, data_dir, **extra):
    """Extra vars for export_workloads and import_workloads against the simulator."""
    return {
        "os_migrate_src_cloud": "src",
        "os_migrate_dst_cloud": "dst",
        "os_migrate_conversion_keypair_private_path": str(Path(data_dir) / "conversion" / "ssh.key"),
        "os_migrate_timeout": 300,
        **conversion_vars(sim, data_dir),
        **extra,
    }


def export(tmp_path, sim, data_dir, **extra):
    return run_playbook(tmp_path, REPO / "playbooks" / "export_workloads.yml",
                        extra_vars=migration_vars(sim, data_dir, **extra), env=sim.env)


def import_(tmp_path, sim, data_dir, **extra):
    return run_playbook(tmp_path, REPO / "playbooks" / "import_workloads.yml",
                        extra_vars=migration_vars(sim, data_dir, **extra), env=sim.env)


def leftovers(sim):
    """Temporary resources of osm left in either cloud: anything named osm-* or carrying a transfer mark."""
    found = []
    for cloud in ("src", "dst"):
        c = sim.conn(cloud)
        for v in c.block_storage.volumes():
            if v.name.startswith("osm-") or "osm_transfer_id" in (v.metadata or {}):
                found.append(f"{cloud} volume {v.name} {v.id} {v.status}")
        for s in c.block_storage.snapshots():
            found.append(f"{cloud} snapshot {s.name} {s.id}")
        for i in c.image.images():
            if i.name.startswith("osm-") and i.name != "osm-conv":
                found.append(f"{cloud} image {i.name} {i.id}")
        for p in c.network.ports():
            if any(t.startswith("osm-transfer-") for t in (p.tags or [])) or (p.name or "").startswith("osm-"):
                found.append(f"{cloud} port {p.name} {p.id}")
        for f in c.network.ips():
            if any(t.startswith("osm-transfer-") for t in (f.tags or [])):
                found.append(f"{cloud} floating ip {f.floating_ip_address}")
        for s in c.compute.servers():
            if "osm_transfer_id" in (s.metadata or {}):
                found.append(f"{cloud} server {s.name} {s.id}")
    return found


def resources(sim):
    """The ids of the servers and of the volumes of each cloud, for `reclaim_since`."""
    return {c: ({s.id for s in sim.conn(c).compute.servers()}, {v.id for v in sim.conn(c).block_storage.volumes()})
            for c in ("src", "dst")}


def reclaim_since(sim, before):
    """Deletes the servers and volumes (with their snapshots) created in either cloud since `before`
    (from `resources`), so that the disk use of a module of tests stays one test's."""
    for cloud in ("src", "dst"):
        conn = sim.conn(cloud)
        servers, volumes = before[cloud]
        new_servers = [s for s in conn.compute.servers() if s.id not in servers]
        for s in new_servers:
            conn.compute.delete_server(s.id)
        for s in new_servers:
            wait_until(f"{cloud} server {s.name} deleted", lambda: conn.compute.find_server(s.id) is None)
        for v in conn.block_storage.volumes():
            if v.id in volumes:
                continue
            # A test that failed mid-copy can leave its temporary volume on a conversion host, which
            # outlives the test: detach it from there.
            for a in v.attachments or []:
                if a.get("server_id") in servers:
                    conn.compute.delete_volume_attachment(a["server_id"], v.id)
            # A boot volume deleted with its server (delete_on_termination) can vanish meanwhile.
            wait_until(f"{cloud} volume {v.name} detached or gone",
                       lambda: (cur := conn.block_storage.find_volume(v.id)) is None
                       or cur.status not in ("in-use", "detaching", "creating"))
            for snap in conn.block_storage.snapshots(volume_id=v.id):
                conn.block_storage.delete_snapshot(snap.id)
                wait_until(f"{cloud} snapshot {snap.id} deleted",
                           lambda: conn.block_storage.find_snapshot(snap.id) is None)
            conn.block_storage.delete_volume(v.id)
