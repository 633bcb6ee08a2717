"""The OpenStack simulator (osm-cloudsim) as a test fixture, and its two clouds through openstacksdk."""

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import openstack
import yaml

from lib.ansible import REPO


def binary():
    """The built simulator (`make build` puts it in target/release)."""
    path = Path(os.environ.get("OSM_CLOUDSIM", REPO / "target" / "release" / "osm-cloudsim"))
    if not path.exists():
        subprocess.run(["make", "-s", "build"], cwd=REPO, check=True)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_extents(fd):
    """The (start, end) byte ranges of a sparse file's data, from SEEK_DATA/SEEK_HOLE."""
    size = os.fstat(fd).st_size
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        pos = end


def used_blocks(f, block=4096):
    """The indexes of the file's non-zero blocks, read from its data extents only: a 1 GiB volume
    file holding 100 MiB is not read block by block through its holes."""
    fd = f.fileno()
    zero = bytes(block)
    used = []
    for start, end in data_extents(fd):
        start = start // block * block
        for off in range(start, end, 1 << 22):
            data = memoryview(os.pread(fd, min(1 << 22, end - off), off))
            used.extend((off + i) // block for i in range(0, len(data), block) if data[i:i + block] != zero[:len(data) - i])
    return used


def pick_blocks(used, fraction, seed):
    """`fraction` of the block indexes `used`, chosen by `seed`."""
    return random.Random(seed).sample(used, max(1, int(len(used) * fraction)))


def change_file_blocks(path, fraction, seed):
    """Rewrites `fraction` of a raw disk file's non-zero 4 KiB blocks with random bytes, as a guest
    writing to its disk would; returns the bytes changed."""
    with open(path, "r+b") as f:
        pick = pick_blocks(used_blocks(f), fraction, seed)
        rng = random.Random(seed)
        for i in pick:
            os.pwrite(f.fileno(), rng.randbytes(4096), i * 4096)
        os.fsync(f.fileno())
    return len(pick) * 4096


def wait_until(what, fn, timeout=120, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Sim:
    """One running simulator with clouds `src` and `dst`, state in `state_dir`."""

    supports_faults = True

    def __init__(self, state_dir, transition_ms=50, ssh_port=None, dirty_volumes=()):
        self.state_dir = Path(state_dir)
        self.transition_ms = transition_ms
        # Clouds whose new volumes read as garbage, as a backend that does not zero them leaves them.
        self.dirty_volumes = list(dirty_volumes)
        self.ssh_port = ssh_port or free_port()
        self.proc = None
        self._conns = {}
        # Conversion hosts' homes hold NBD sockets, whose paths must fit in 108 bytes: keep them short.
        self.hosts_dir = Path(tempfile.mkdtemp(prefix="osmh-", dir="/tmp"))

    @property
    def clouds_yaml(self):
        return self.state_dir / "clouds.yaml"

    def start(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.clouds_yaml.exists():
            self.clouds_yaml.unlink()
        log = open(self.state_dir / "cloudsim.log", "ab")
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--state-dir", str(self.state_dir), "--ssh-port", str(self.ssh_port),
             "--transition-ms", str(self.transition_ms), "--hosts-dir", str(self.hosts_dir),
             *[a for c in self.dirty_volumes for a in ("--dirty-volumes", c)]],
            stdout=log, stderr=subprocess.STDOUT)
        wait_until("cloudsim's clouds.yaml", lambda: self.clouds_yaml.exists() or self.proc.poll() is not None)
        if self.proc.poll() is not None:
            raise AssertionError(f"osm-cloudsim exited: {(self.state_dir / 'cloudsim.log').read_text()[-3000:]}")
        clouds = yaml.safe_load(self.clouds_yaml.read_text())["clouds"]
        auth_url = clouds["src"]["auth"]["auth_url"]
        self.base = auth_url.split("/src/")[0]
        return self

    def stop(self):
        """Stops the simulator (SIGTERM); returns its exit code (None if it had to be killed)."""
        code = self.proc.poll() if self.proc else None
        if self.proc and code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.hosts_dir, ignore_errors=True)
        return code

    @property
    def env(self):
        return {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)}

    def conn(self, cloud):
        if cloud not in self._conns:
            config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
            region = config.get_one(cloud=cloud)
            self._conns[cloud] = openstack.connection.Connection(config=region)
        return self._conns[cloud]

    def admin(self, path, method="GET", body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def fault(self, **spec):
        return self.admin("/_sim/faults", "POST", spec)

    def clear_faults(self):
        self.admin("/_sim/faults", "DELETE")

    def external_cidr(self, cloud):
        """The external network's range: loopback, so that a floating IP associated with a simulated
        conversion host is where its sshd listens."""
        return {"src": "127.60.0.0/16", "dst": "127.61.0.0/16"}[cloud]

    def volume_path(self, cloud, volume_id):
        return self.state_dir / "clouds" / cloud / "volumes" / volume_id

    def change_used_blocks(self, cloud, volume_id, fraction, seed):
        """Rewrites `fraction` of the volume's used blocks, as its guest would; returns the bytes."""
        return change_file_blocks(self.volume_path(cloud, volume_id), fraction, seed)

    def server_disk_path(self, cloud, server_id):
        """The root disk of a server booted from an image (what a guest writes to)."""
        return self.state_dir / "clouds" / cloud / "disks" / server_id

    def volume_sha256(self, cloud, volume_id):
        """The sha256 of the volume's bytes; its holes are hashed as zeros without being read (reading
        a sparse gigabyte costs more than hashing it)."""
        h = hashlib.sha256()
        zeros = bytes(1 << 22)
        with open(self.volume_path(cloud, volume_id), "rb") as f:
            fd = f.fileno()
            size = os.fstat(fd).st_size
            pos = 0
            # An empty extent at the end hashes the trailing hole with the same loop.
            for start, end in [*data_extents(fd), (size, size)]:
                for off in range(pos, start, len(zeros)):
                    h.update(zeros[:min(len(zeros), start - off)])
                for off in range(start, end, len(zeros)):
                    h.update(os.pread(fd, min(len(zeros), end - off), off))
                pos = end
        return h.hexdigest()

    def volume_content_digest(self, cloud, volume_id, block=1 << 20):
        """A digest of the volume's bytes that reads only the data extents of its sparse file: equal for
        two volumes exactly when their bytes are (the size and every non-zero block with its offset),
        without hashing the gigabytes of zeros that volume_sha256 hashes."""
        h = hashlib.sha256()
        with open(self.volume_path(cloud, volume_id), "rb") as f:
            fd = f.fileno()
            h.update(os.fstat(fd).st_size.to_bytes(8, "little"))
            done = -1
            for start, end in data_extents(fd):
                for b in range(max(start // block, done + 1), (end + block - 1) // block):
                    data = os.pread(fd, block, b * block)
                    if data.strip(b"\0"):
                        h.update(b.to_bytes(8, "little") + data)
                    done = b
        return h.hexdigest()

    def hosts(self):
        return self.admin("/_sim/hosts")
