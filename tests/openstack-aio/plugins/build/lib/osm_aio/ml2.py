"""An ML2 mechanism driver for osm's test bed: binds every port without agents (so ports go ACTIVE
and Nova boots), and keeps conversion hosts' sshd listening on their loopback floating IPs.

Registered as `osm_aio` (entry point neutron.ml2.mechanism_drivers); `mechanism_drivers = osm_aio`.
"""

import ipaddress

from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib import constants
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

from osm_aio import hosts

LOG = logging.getLogger(__name__)


class OsmAioMechanismDriver(api.MechanismDriver):

    def initialize(self):
        for event in (events.AFTER_CREATE, events.AFTER_UPDATE, events.AFTER_DELETE):
            registry.subscribe(self._floating_ips_changed, resources.FLOATING_IP, event)
        registry.subscribe(self._floating_ips_changed, resources.PORT, events.AFTER_DELETE)

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OTHER, {},
                                status=constants.PORT_STATUS_ACTIVE)
            return

    def _floating_ips_changed(self, resource, event, trigger, payload=None):
        """Recomputes {instance: [loopback floating IPs]} from the database (after the commit) and
        hands it to the conversion hosts."""
        try:
            ctx = payload.context.elevated()
            l3 = directory.get_plugin(plugin_constants.L3)
            core = directory.get_plugin()
            fips = [f for f in l3.get_floatingips(ctx) if f.get("port_id")
                    and ipaddress.ip_address(f["floating_ip_address"]).is_loopback]
            port_ids = sorted({f["port_id"] for f in fips})
            devices = {}
            if port_ids:
                for p in core.get_ports(ctx, filters={"id": port_ids}, fields=["id", "device_id"]):
                    devices[p["id"]] = p.get("device_id")
            mapping = {}
            for f in fips:
                dev = devices.get(f["port_id"])
                if dev:
                    mapping.setdefault(dev, []).append(f["floating_ip_address"])
            hosts.set_floating(mapping)
        except Exception:  # noqa: BLE001 (a test bed hook must not fail the API call)
            LOG.exception("osm_aio: updating conversion hosts' floating IPs failed")
