#!/usr/bin/env python3
"""Runs upstream OS Migrate's own serialization code against the simulator, for the files osm must
read and write as upstream does. Upstream's code is used from a checkout you give; nothing of it is
copied into this repository.

  .venv/bin/python scripts/upstream_fixture.py UPSTREAM_CHECKOUT
      Seeds the servers of tests/lib/upstream.py in a fresh simulator, exports them with upstream's
      Server.from_sdk and filesystem.write_or_replace_resource (as its export_workload module does,
      migration_params from its export role's defaults), and writes the result to
      crates/workload/tests/data/upstream-1.0.5.yml: a real upstream export, nulls and all.

  .venv/bin/python scripts/upstream_fixture.py UPSTREAM_CHECKOUT --check FILE
      Loads FILE (one osm wrote) with upstream's loader (filesystem.load_resources_file), validates it
      as its validate_resource_files does, and runs its import deserializers against the simulator's
      destination cloud seeded with what the servers refer to: Server.dst_prerequisites_errors,
      Server.sdk_params, the block device mappings of both data_copy modes, and each floating IP's
      and port's references. Prints what fails; exit 1 if anything does.

UPSTREAM_CHECKOUT is a work tree of os-migrate/os-migrate (tag 1.0.5, or main), e.g. made with
`git -C <mirror> archive 1.0.5 | tar -x -C /tmp/upstream-1.0.5`. openstacksdk comes from .venv.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from lib import backend  # noqa: E402
from lib.scenario import CloudBase  # noqa: E402
from lib.upstream import seed  # noqa: E402

FIXTURE = REPO / "crates" / "workload" / "tests" / "data" / "upstream-1.0.5.yml"


class World:
    def __init__(self, sim, root):
        self.sim, self.root = sim, root
        self.src = CloudBase(sim, "src", root).build()
        self.dst = CloudBase(sim, "dst", root).build()


def upstream_modules(checkout):
    """Upstream's module_utils, importable under its collection name."""
    root = Path(tempfile.mkdtemp(prefix="upstream-"))
    (root / "ansible_collections" / "os_migrate").mkdir(parents=True)
    (root / "ansible_collections" / "os_migrate" / "os_migrate").symlink_to(Path(checkout).resolve())
    sys.path.insert(0, str(root))
    from ansible_collections.os_migrate.os_migrate.plugins.module_utils import (  # noqa: PLC0415
        const, filesystem, server, server_floating_ip, server_port, validation)
    return const, filesystem, server, server_floating_ip, server_port, validation


def export(mods, world, path):
    const, filesystem, server, *_ = mods
    conn = world.sim.conn("src")
    for name in ("up-app", "up-db", "up-scsi"):
        sdk = conn.compute.find_server(name, ignore_missing=False)
        srv = server.Server.from_sdk(conn, conn.compute.get_server(sdk["id"]))
        srv.update_migration_params({"boot_disk_copy": None})
        filesystem.write_or_replace_resource(str(path), srv)
    print(f"wrote {path} (os_migrate_version {const.OS_MIGRATE_VERSION})")


def check(mods, world, path):
    const, filesystem, server, server_floating_ip, server_port, validation = mods
    conn = world.sim.conn("dst")
    problems = []
    struct = filesystem.load_resources_file(str(path))
    problems += validation.get_errors_in_file_structs([struct])
    for data in struct["resources"]:
        srv = server.Server.from_data(data)
        name = srv.params()["name"]
        problems += [f"{name}: {e}" for e in srv.dst_prerequisites_errors(conn)]
        try:
            sdk_params = srv.sdk_params(conn)
            copy_params = dict(sdk_params)
            boot = [{"boot_index": 0, "uuid": "v", "source_type": "volume", "destination_type": "volume"}]
            has_boot = srv.migration_params()["boot_disk_copy"]
            srv.update_sdk_params_block_device_mapping_copy(copy_params, boot if has_boot else [])
            srv.migration_params()["data_copy"] = False
            srv.update_sdk_params_block_device_mapping_nocopy(dict(sdk_params))
            for p in srv.params()["ports"]:
                server_port.ServerPort.from_data(p).nova_sdk_params(conn)
            for f in srv.params()["floating_ips"]:
                fip = server_floating_ip.ServerFloatingIP.from_data(f)
                fip._refs_from_ser(conn)
                fip._to_sdk_params(fip._refs_from_ser(conn))
        except Exception as e:  # noqa: BLE001 (every failure of upstream's code is the finding)
            problems.append(f"{name}: {type(e).__name__}: {e}")
    for p in problems:
        print(p)
    print(f"{path}: {'passes' if not problems else 'fails'} upstream {const.OS_MIGRATE_VERSION}'s loader and deserializers")
    return not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("upstream")
    ap.add_argument("--check", type=Path)
    a = ap.parse_args()
    mods = upstream_modules(a.upstream)
    root = Path(tempfile.mkdtemp(prefix="upstream-world-"))
    sim = backend.start(root)
    try:
        world = World(sim, root)
        seed(world)
        if a.check:
            return 0 if check(mods, world, a.check) else 1
        out = root / "workloads.yml"
        export(mods, world, out)
        FIXTURE.write_text(out.read_text())
        return 0
    finally:
        sim.stop()


if __name__ == "__main__":
    os.environ.setdefault("OSM_CLOUDSIM", str(REPO / "target" / "release" / "osm-cloudsim"))
    sys.exit(main())
