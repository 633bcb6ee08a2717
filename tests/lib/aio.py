"""The real-cloud test bed (tests/openstack-aio) as an end-to-end backend, with the interface of
lib.sim.Sim: `start()`, `stop()`, `clouds_yaml`, `env`, `conn(cloud)`, `ssh_port`,
`volume_sha256(cloud, volume_id)`, `external_cidr(cloud)`, `supports_faults`.

The bed is one OpenStack deployment (brought up by tests/openstack-aio/run-tests.sh or `bed.py up`).
Each `start()` makes two fresh projects, `osm-src-<hex>` and `osm-dst-<hex>`, with a member user each,
as clouds `src` and `dst`, so test modules do not see each other's servers; `stop()` deletes what
those projects own (servers, volumes, snapshots, images, floating IPs, routers, networks, security
groups) and then the users and projects. Flavors, and the external network that a scenario creates in
`src`, are visible to both projects (as in any two projects of one cloud): scenarios find them by name
instead of creating them twice.
"""

import hashlib
import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import openstack
import yaml

from lib.ansible import REPO
from lib.sim import change_file_blocks, pick_blocks, used_blocks

STATE = Path(os.environ.get("OSM_AIO_STATE", REPO / "build" / "openstack-aio" / "state"))
QCOW2_MAGIC = b"QFI\xfb"


class BedNotRunning(RuntimeError):
    pass


class Aio:
    """Two projects of the running test bed, as clouds `src` and `dst`."""

    supports_faults = False

    def __init__(self, root):
        self.root = Path(root) / "aio"
        self._conns = {}
        self._admin = None
        self.projects = {}
        self.users = {}
        info = STATE / "bed.json"
        if not info.exists() or not (STATE / "admin-clouds.yaml").exists():
            raise BedNotRunning(f"the OpenStack test bed is not up ({STATE}): run tests/openstack-aio/run-tests.sh, "
                                f"or build/openstack-aio/venv/bin/python tests/openstack-aio/bed.py up")
        self.bed = json.loads(info.read_text())
        self.ssh_port = int(self.bed["ssh_port"])
        # Where each conversion host's directory (home, dev/disk/by-id, sshd files) lives, as in the
        # simulator.
        self.hosts_dir = Path(self.bed["hosts_dir"])

    # -- the interface of lib.sim.Sim ------------------------------------------------------------

    @property
    def clouds_yaml(self):
        return self.root / "clouds.yaml"

    @property
    def env(self):
        return {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)}

    def admin(self):
        if self._admin is None:
            config = openstack.config.OpenStackConfig(config_files=[str(STATE / "admin-clouds.yaml")])
            self._admin = openstack.connection.Connection(config=config.get_one(cloud="aio-admin"))
        return self._admin

    def start(self, admin=False):
        """With `admin`, each project's user also holds the admin role there: an operator migrating
        with admin credentials, whose Neutron lists every project's resources."""
        self.root.mkdir(parents=True, exist_ok=True)
        a = self.admin()
        suffix = secrets.token_hex(3)
        member = a.identity.find_role("member")
        roles = [member] + ([a.identity.find_role("admin")] if admin else [])
        clouds = {}
        auth_url = a.session.get_endpoint(service_type="identity", interface="public")
        for cloud in ("src", "dst"):
            name = f"osm-{cloud}-{suffix}"
            project = a.identity.create_project(name=name, domain_id="default",
                                                description=f"osm e2e {cloud} ({self.root})")
            password = secrets.token_urlsafe(16)
            user = a.identity.create_user(name=name, password=password, domain_id="default",
                                          default_project_id=project.id)
            for role in roles:
                a.identity.assign_project_role_to_user(project, user, role)
            self.projects[cloud], self.users[cloud] = project, user
            clouds[cloud] = {
                "auth": {"auth_url": auth_url, "username": name, "password": password, "project_name": name,
                         "user_domain_name": "Default", "project_domain_name": "Default"},
                "region_name": "RegionOne",
                "identity_api_version": 3,
                "interface": "public",
            }
        self.clouds_yaml.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
        os.chmod(self.clouds_yaml, 0o600)
        return self

    def stop(self):
        """Deletes what the two projects own, then the users and projects."""
        problems = []
        try:
            self._cleanup(problems)
        finally:
            a = self.admin()
            for cloud in ("dst", "src"):
                for what, fn in (("user", lambda: self.users.get(cloud) and a.identity.delete_user(self.users[cloud])),
                                 ("project", lambda: self.projects.get(cloud)
                                  and a.identity.delete_project(self.projects[cloud]))):
                    try:
                        fn()
                    except Exception as e:  # noqa: BLE001
                        problems.append(f"{cloud} {what}: {e}")
            for c in self._conns.values():
                c.close()
            self._conns.clear()
        if problems:
            (self.root / "cleanup-problems.txt").write_text("\n".join(problems) + "\n")

    def conn(self, cloud):
        if cloud not in self._conns:
            config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
            self._conns[cloud] = openstack.connection.Connection(config=config.get_one(cloud=cloud))
        return self._conns[cloud]

    def external_cidr(self, cloud):
        """One deployment, one external network: `src` creates `public` with this range and `dst`
        finds it. Loopback, so that a floating IP of a conversion host is where its sshd listens."""
        return self.bed.get("external_cidr", "127.70.0.0/16")

    def volume_path(self, cloud, volume_id):
        """The file holding the volume's current data (Cinder NFS: `volume-<id>`, or the active
        qcow2 overlay named in `volume-<id>.info` once the volume has had snapshots)."""
        d = Path(self.bed["volumes_dir"])
        info = d / f"volume-{volume_id}.info"
        if info.exists():
            active = json.loads(info.read_text()).get("active")
            if active:
                return d / active
        return d / f"volume-{volume_id}"

    def volume_sha256(self, cloud, volume_id):
        path = self.volume_path(cloud, volume_id)
        with open(path, "rb") as f:
            qcow2 = f.read(4) == QCOW2_MAGIC
        if qcow2:
            with tempfile.TemporaryDirectory(dir=self.root) as tmp:
                raw = Path(tmp) / "raw"
                subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(path), str(raw)], check=True)
                return _sha256(raw)
        return _sha256(path)

    def change_used_blocks(self, cloud, volume_id, fraction, seed):
        """Rewrites `fraction` of the volume's used blocks, as its guest would; returns the bytes. A
        volume that had snapshots lives in a qcow2 overlay (Cinder NFS): its blocks are found in a
        raw copy and written through qemu-io, each with a pattern byte of its own."""
        path = self.volume_path(cloud, volume_id)
        with open(path, "rb") as f:
            qcow2 = f.read(4) == QCOW2_MAGIC
        if not qcow2:
            return change_file_blocks(path, fraction, seed)
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            raw = Path(tmp) / "raw"
            subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(path), str(raw)], check=True)
            with open(raw, "rb") as f:
                pick = pick_blocks(used_blocks(f), fraction, seed)
        script = "".join(f"write -P {1 + k % 255} {i * 4096} 4096\n" for k, i in enumerate(pick))
        subprocess.run(["qemu-io", "-f", "qcow2", str(path)], input=script + "quit\n", text=True,
                       check=True, capture_output=True)
        return len(pick) * 4096

    # -- cleanup ---------------------------------------------------------------------------------

    def _cleanup(self, problems):
        def attempt(what, fn):
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 (clean up as much as possible)
                problems.append(f"{what}: {e}")
                return None

        conns = {cloud: self.conn(cloud) for cloud in self.projects}
        for cloud, c in conns.items():
            for s in list(c.compute.servers()):
                attempt(f"{cloud} server {s.name}", lambda s=s: c.compute.delete_server(s, force=False))
        for cloud, c in conns.items():
            _wait(lambda c=c: not list(c.compute.servers()), 120)
        for cloud, c in conns.items():
            for s in list(c.block_storage.snapshots()):
                attempt(f"{cloud} snapshot {s.id}", lambda s=s: c.block_storage.delete_snapshot(s))
            _wait(lambda c=c: not list(c.block_storage.snapshots()), 120)
            for v in list(c.block_storage.volumes()):
                if v.status in ("in-use", "attaching", "detaching", "reserved", "error_deleting"):
                    attempt(f"{cloud} volume {v.id} reset", lambda v=v: self._force_detach(v))
                attempt(f"{cloud} volume {v.id}", lambda v=v: c.block_storage.delete_volume(v))
            _wait(lambda c=c: not [v for v in c.block_storage.volumes() if v.status != "error_deleting"], 120)
            pid = self.projects[cloud].id
            for i in list(c.image.images(owner=pid)):
                attempt(f"{cloud} image {i.name}", lambda i=i: c.image.delete_image(i))
            for f in list(c.network.ips(project_id=pid)):
                attempt(f"{cloud} floating ip {f.floating_ip_address}", lambda f=f: c.network.delete_ip(f))
            for r in list(c.network.routers(project_id=pid)):
                for port in c.network.ports(device_id=r.id):
                    if port.device_owner == "network:router_interface":
                        attempt(f"{cloud} router interface {port.id}",
                                lambda r=r, port=port: c.network.remove_interface_from_router(r, port_id=port.id))
                attempt(f"{cloud} router {r.name}", lambda r=r: c.network.delete_router(r))
            for k in list(c.compute.keypairs()):
                attempt(f"{cloud} keypair {k.name}", lambda k=k: c.compute.delete_keypair(k))
        for cloud in ("dst", "src"):
            if cloud not in conns:
                continue
            c, pid = conns[cloud], self.projects[cloud].id
            for port in list(c.network.ports(project_id=pid)):
                if not (port.device_owner or "").startswith("network:"):
                    attempt(f"{cloud} port {port.id}", lambda port=port: c.network.delete_port(port))
            for n in list(c.network.networks(project_id=pid)):
                attempt(f"{cloud} network {n.name}", lambda n=n: c.network.delete_network(n))
            for g in list(c.network.security_groups(project_id=pid)):
                if g.name != "default":
                    attempt(f"{cloud} security group {g.name}", lambda g=g: c.network.delete_security_group(g))

    def _force_detach(self, volume):
        a = self.admin()
        a.block_storage.reset_volume_status(volume, status="available", attach_status="detached",
                                            migration_status=None)


def purge(root):
    """Deletes what earlier, interrupted runs left: every `osm-src-*`/`osm-dst-*` project with its
    resources (their users get a new password so that the cleanup can act as them)."""
    probe = Aio(root)
    a = probe.admin()
    groups = {}
    for project in a.identity.projects():
        parts = project.name.split("-")
        if len(parts) == 3 and parts[0] == "osm" and parts[1] in ("src", "dst"):
            groups.setdefault(parts[2], {})[parts[1]] = project
    for suffix, projects in groups.items():
        bed = Aio(Path(root) / suffix)
        bed.root.mkdir(parents=True, exist_ok=True)
        clouds = {}
        auth_url = a.session.get_endpoint(service_type="identity", interface="public")
        for cloud, project in projects.items():
            user = a.identity.find_user(project.name)
            bed.projects[cloud] = project
            if not user:
                continue
            bed.users[cloud] = user
            password = secrets.token_urlsafe(16)
            a.identity.update_user(user, password=password)
            clouds[cloud] = {"auth": {"auth_url": auth_url, "username": project.name, "password": password,
                                      "project_name": project.name, "user_domain_name": "Default",
                                      "project_domain_name": "Default"},
                             "region_name": "RegionOne", "identity_api_version": 3, "interface": "public"}
        bed.projects = {c: p for c, p in bed.projects.items() if c in clouds} or bed.projects
        bed.clouds_yaml.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
        os.chmod(bed.clouds_yaml, 0o600)
        if clouds:
            bed.stop()
        else:
            for project in projects.values():
                a.identity.delete_project(project)
    return sorted(groups)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wait(fn, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if fn():
                return True
        except Exception:  # noqa: BLE001
            pass
        time.sleep(1)
    return False
