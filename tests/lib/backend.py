"""Which OpenStack the end-to-end suite runs against.

`OSM_E2E_BACKEND=cloudsim` (default) starts the simulator; `OSM_E2E_BACKEND=openstack` uses the real
control plane of tests/openstack-aio (see its README), brought up by `make test-openstack`.
Both backends offer the same interface as `lib.sim.Sim`: `start()`, `stop()`, `clouds_yaml`, `env`,
`conn(cloud)`, `ssh_port`, `volume_sha256(cloud, volume_id)`, `external_cidr(cloud)`, and
`supports_faults` (only the simulator can inject faults; tests that need it skip otherwise).
"""

import os

from lib.sim import Sim


def name():
    return os.environ.get("OSM_E2E_BACKEND", "cloudsim")


def start(root, admin=False, **sim_options):
    """The backend, started; `sim_options` (e.g. transition_ms) apply to the simulator only. With
    `admin`, the credentials of `src` and `dst` hold the admin role in their projects, as the
    simulator's always do (Neutron then lists and makes every project's resources)."""
    if name() == "openstack":
        from lib.aio import Aio  # noqa: PLC0415 (only present with the real test bed)
        return Aio(root).start(admin=admin)
    return Sim(root / "sim", **sim_options).start()
