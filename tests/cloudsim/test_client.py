"""The `openstack` crate against the simulator: every call the workflow needs, in a full
create/use/delete cycle (crates/openstack/examples/cloud_smoke.rs), in both clouds."""

import subprocess

import pytest

from cloudsim_helpers import REPO_ROOT


@pytest.mark.parametrize("cloud", ["src", "dst"])
def test_client_full_cycle(sim, cloud):
    proc = subprocess.run(["cargo", "run", "-q", "-p", "osm-openstack", "--example", "cloud_smoke", "--",
                           str(sim.clouds_yaml), cloud], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout[-2000:]
