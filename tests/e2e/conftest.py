"""Fixtures of the end-to-end suite: a simulator with two clouds, their base resources, and deployed
conversion hosts (real sshd processes on 127.0.0.x), shared by the tests of a module."""

import pytest

from lib.scenario import CloudBase, deploy_conversion_hosts, leftovers
from lib import backend
from lib.sim import wait_until


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
    before = {c: _inventory(world.sim.conn(c)) for c in ("src", "dst")}
    yield
    for cloud in ("src", "dst"):
        conn = world.sim.conn(cloud)
        servers, volumes = before[cloud]
        new_servers = [s for s in conn.compute.servers() if s.id not in servers]
        for s in new_servers:
            conn.compute.delete_server(s.id)
        for s in new_servers:
            wait_until(f"{cloud} server {s.name} deleted", lambda: conn.compute.find_server(s.id) is None)
        for v in conn.block_storage.volumes():
            if v.id in volumes:
                continue
            wait_until(f"{cloud} volume {v.name} detached",
                       lambda: conn.block_storage.get_volume(v.id).status not in ("in-use", "detaching", "creating"))
            for snap in conn.block_storage.snapshots(volume_id=v.id):
                conn.block_storage.delete_snapshot(snap.id)
                wait_until(f"{cloud} snapshot {snap.id} deleted",
                           lambda: conn.block_storage.find_snapshot(snap.id) is None)
            conn.block_storage.delete_volume(v.id)


def _inventory(conn):
    return ({s.id for s in conn.compute.servers()}, {v.id for v in conn.block_storage.volumes()})


class World:
    def __init__(self, sim, root, data_dir, src, dst):
        self.sim = sim
        self.root = root
        self.data_dir = data_dir
        self.src = src
        self.dst = dst

    def leftovers(self):
        return leftovers(self.sim)
