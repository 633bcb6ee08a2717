"""Helpers for the cloudsim fidelity tests (a module of its own, so that `import conftest`
never picks up another directory's conftest).

The `sim` fixture (conftest.py) starts the `osm-cloudsim` binary (from $OSM_CLOUDSIM, else target/release/osm-cloudsim,
else built by `make build`) in a temporary state directory with fast
transitions and stops it (SIGTERM) at the end.
`sim.osc(cloud, *args)` runs python-openstackclient from this virtualenv and returns its JSON.
"""

import json
import os
import pathlib
import subprocess
import sys

import yaml

import lib.sim
from lib.sim import wait_until  # noqa: F401 (the tests import it from here)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(sys.executable).parent
TRANSITION_MS = 50


def binary():
    return str(lib.sim.binary())


class OscError(Exception):
    def __init__(self, args, proc):
        super().__init__(f"openstack {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        self.stderr = proc.stderr
        self.returncode = proc.returncode


class Cloudsim(lib.sim.Sim):
    """The simulator of lib.sim, with python-openstackclient at hand."""

    def __init__(self, binary, state_dir):
        super().__init__(state_dir, transition_ms=TRANSITION_MS)

    def start(self):
        super().start()
        self.clouds = yaml.safe_load(self.clouds_yaml.read_text())["clouds"]
        self.base_url = self.base
        self.osc_env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml))
        for k in list(self.osc_env):
            # Ambient OS_* settings would override the cloud picked with --os-cloud.
            if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE":
                del self.osc_env[k]
        return self

    def stop(self):
        code = super().stop()
        assert code in (0, None), f"osm-cloudsim exited with {code}"

    def osc(self, cloud, *args, fmt=True, check=True):
        """Runs `openstack --os-cloud CLOUD ARGS -f json` and returns the parsed output."""
        argv = [str(BIN_DIR / "openstack"), "--os-cloud", cloud, *args]
        if fmt:
            argv += ["-f", "json"]
        proc = subprocess.run(argv, env=self.osc_env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            if check:
                raise OscError(args, proc)
            return proc
        if not fmt:
            return proc.stdout
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def admin(self, method, path, body=None):
        return super().admin("/_sim" + path, method, body)

    def data_file(self, cloud, kind, ident):
        return self.state_dir / "clouds" / cloud / kind / ident
