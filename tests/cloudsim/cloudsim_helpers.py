"""Helpers for the cloudsim fidelity tests (a module of its own, so that `import conftest`
never picks up another directory's conftest).

The `sim` fixture (conftest.py) starts the `osm-cloudsim` binary (from $OSM_CLOUDSIM, else target/release/osm-cloudsim,
else built with `cargo build --release -p osm-cloudsim`) in a temporary state directory with fast
transitions, points OS_CLIENT_CONFIG_FILE at its clouds.yaml, and stops it (SIGTERM) at the end.
`sim.osc(cloud, *args)` runs python-openstackclient from this virtualenv and returns its JSON.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(sys.executable).parent
TRANSITION_MS = 50


def binary():
    if os.environ.get("OSM_CLOUDSIM"):
        return os.environ["OSM_CLOUDSIM"]
    candidates = [REPO / "target" / "release" / "osm-cloudsim"]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.insert(0, (REPO / os.environ["CARGO_TARGET_DIR"]) / "release" / "osm-cloudsim")
    for c in candidates:
        if c.exists():
            return str(c)
    subprocess.run(["cargo", "build", "--release", "-p", "osm-cloudsim"], cwd=REPO, check=True)
    for c in candidates:
        if c.exists():
            return str(c)
    pytest.fail("osm-cloudsim was built but not found in " + ", ".join(map(str, candidates)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, fn, timeout=60, interval=0.1):
    """Polls fn until it returns a truthy value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class OscError(Exception):
    def __init__(self, args, proc):
        super().__init__(f"openstack {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        self.stderr = proc.stderr
        self.returncode = proc.returncode


class Cloudsim:
    def __init__(self, binary, state_dir):
        self.binary = binary
        self.state_dir = pathlib.Path(state_dir)
        self.ssh_port = free_port()
        self.proc = None
        self.log = None

    def start(self):
        yaml_path = self.state_dir / "clouds.yaml"
        if yaml_path.exists():
            yaml_path.unlink()
        self.log = open(self.state_dir / "cloudsim.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--state-dir", str(self.state_dir), "--listen", "127.0.0.1:0",
             "--ssh-port", str(self.ssh_port), "--transition-ms", str(TRANSITION_MS), "--verbose"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_until("clouds.yaml", lambda: yaml_path.exists() or self.proc.poll() is not None, timeout=30)
        assert self.proc.poll() is None, (self.state_dir / "cloudsim.log").read_text()
        self.clouds = yaml.safe_load(yaml_path.read_text())["clouds"]
        auth_url = self.clouds["src"]["auth"]["auth_url"]
        self.base_url = auth_url[: auth_url.index("/src/")]
        self.env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(yaml_path))
        for k in list(self.env):
            # Ambient OS_* settings would override the cloud picked with --os-cloud.
            if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE":
                del self.env[k]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=30)
            assert code == 0, f"osm-cloudsim exited with {code}"
        if self.log:
            self.log.close()

    def osc(self, cloud, *args, fmt=True, check=True):
        """Runs `openstack --os-cloud CLOUD ARGS -f json` and returns the parsed output."""
        argv = [str(BIN_DIR / "openstack"), "--os-cloud", cloud, *args]
        if fmt:
            argv += ["-f", "json"]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            if check:
                raise OscError(args, proc)
            return proc
        if not fmt:
            return proc.stdout
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + "/_sim" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def data_file(self, cloud, kind, ident):
        return self.state_dir / "clouds" / cloud / kind / ident
