"""Fixtures of the end-to-end suite: a simulator with two clouds, their base resources, and deployed
conversion hosts (real sshd processes on 127.0.0.x), shared by the tests of a module."""

import pytest

from lib.scenario import CloudBase, deploy_conversion_hosts, leftovers, reclaim_since, resources
from lib import backend


@pytest.fixture(scope="module")
def clouds(tmp_path_factory):
    """Both clouds with their base resources, no conversion hosts."""
    root = tmp_path_factory.mktemp("clouds")
    sim = backend.start(root)
    try:
        src = CloudBase(sim, "src", root).build()
        dst = CloudBase(sim, "dst", root).build()
        yield World(sim, root, root / "data", src, dst)
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Both clouds with their base resources and deployed conversion hosts."""
    root = tmp_path_factory.mktemp("world")
    sim = backend.start(root)
    try:
        data_dir = root / "data"
        src = CloudBase(sim, "src", root).build()
        dst = CloudBase(sim, "dst", root).build()
        run = deploy_conversion_hosts(root, sim, data_dir)
        assert run.rc == 0, run
        yield World(sim, root, data_dir, src, dst)
    finally:
        sim.stop()


@pytest.fixture
def reclaim(world):
    """Deletes the servers and volumes a test created in either cloud once it ends, so that a module's
    disk use is one test's, not the sum of all (a file of 1 GiB random volumes filled CI's disk)."""
    before = resources(world.sim)
    yield
    reclaim_since(world.sim, before)


class World:
    def __init__(self, sim, root, data_dir, src, dst):
        self.sim = sim
        self.root = root
        self.data_dir = data_dir
        self.src = src
        self.dst = dst

    def leftovers(self):
        return leftovers(self.sim)
