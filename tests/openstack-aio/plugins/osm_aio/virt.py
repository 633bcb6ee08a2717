"""A Nova virt driver for osm's test bed: nova's fake driver, plus what osm needs of real hypervisors.

- An instance booted from an image gets a disk file `<instances_path>/<uuid>/disk` holding the image's
  bytes (raw), and createImage uploads that file to Glance, so server images have real data.
- An instance that is a conversion host (image property or metadata `osm_sim_conversion_host: "true"`)
  is backed by a real sshd on a loopback address of its own (see osm_aio.hosts), reported as its
  accessIPv4; attaching a Cinder (NFS) volume makes `dev/disk/by-id/virtio-<id[:20]>` of its
  directory point at the volume's file; detaching removes the link; stopping or deleting the instance
  stops its sshd (and deleting removes its directory).
- Cinder's NFS driver snapshots in-use volumes with Nova's help (assisted volume snapshots), as with
  libvirt: creating one needs nothing from us (Cinder made the qcow2 overlay); deleting one merges the
  files with qemu-img while the "guest" is stopped, as libvirt's blockRebase/blockCommit would.

Configured as `compute_driver = osm_aio.OsmAioDriver`: install.sh puts a module nova/virt/osm_aio.py that
imports it (nova loads drivers from nova.virt only).
"""

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

from oslo_config import cfg
from oslo_log import log as logging

from nova.compute import task_states
from nova.image import glance
from nova import objects
from nova.virt import fake
from nova.volume import cinder

from osm_aio import hosts

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

MARK = "osm_sim_conversion_host"


def _is_conversion_host(instance):
    sysmeta = instance.system_metadata or {}
    meta = instance.metadata or {}
    return str(sysmeta.get("image_" + MARK, "")).lower() == "true" or str(meta.get(MARK, "")).lower() == "true"


def _volume_file(connection_info):
    """The local file of an NFS-backed Cinder volume (the bed exports a local directory)."""
    data = (connection_info or {}).get("data") or {}
    export = data.get("export") or ""
    name = data.get("name")
    if not name:
        return None
    directory = os.environ.get("OSM_AIO_VOLUMES_DIR") or export.split(":", 1)[-1]
    return os.path.join(directory, name)


def _volume_id(connection_info):
    ci = connection_info or {}
    return ci.get("serial") or (ci.get("data") or {}).get("volume_id")


def _loopback_fixed_ip(network_info):
    """The first IPv4 loopback fixed address of the instance's ports, if any."""
    for vif in network_info or []:
        for subnet in (vif.get("network") or {}).get("subnets") or []:
            for ip in subnet.get("ips") or []:
                addr = ip.get("address")
                if addr and (a := ipaddress.ip_address(addr)).version == 4 and a.is_loopback:
                    return addr
    return None


class OsmAioDriver(fake.FakeDriverWithoutFakeNodes):
    """FakeDriver with disks that hold data and sshd-backed conversion hosts."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self._image_api = glance.API()
        self._volume_api = cinder.API()

    # -- disks -------------------------------------------------------------------------------

    def _instance_dir(self, instance):
        return Path(CONF.instances_path) / instance.uuid

    def _disk(self, instance):
        return self._instance_dir(instance) / "disk"

    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        super().spawn(context, instance, image_meta, injected_files, admin_password, allocations,
                      network_info=network_info, block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
        mappings = (block_device_info or {}).get("block_device_mapping") or []
        boots_from_volume = any(str(m.get("boot_index")) == "0" for m in mappings) or not instance.image_ref
        if not boots_from_volume:
            d = self._instance_dir(instance)
            d.mkdir(parents=True, exist_ok=True)
            disk = self._disk(instance)
            if not disk.exists():
                tmp = d / "disk.part"
                self._image_api.download(context, instance.image_ref, dest_path=str(tmp))
                os.replace(tmp, disk)
        if _is_conversion_host(instance):
            # A port with a loopback fixed IP (a provider network the test made in 127.0.0.0/8) is
            # where the host's sshd listens, reached as a provider network's hosts are, by that
            # address; otherwise an address of the bed's own, reported as the accessIPv4.
            fixed = _loopback_fixed_ip(network_info)
            addr = hosts.create(instance.uuid, instance.key_data, fixed=fixed)
            if not fixed:
                instance.access_ip_v4 = addr
                instance.save()
            for m in mappings:
                self._link(instance, m.get("connection_info"))
            if power_on:
                hosts.start(instance.uuid)
            LOG.info("conversion host %s: sshd on %s:%s", instance.uuid, addr, hosts.ssh_port(), instance=instance)

    def snapshot(self, context, instance, image_id, update_task_state):
        if instance.uuid not in self.instances:
            from nova import exception  # noqa: PLC0415
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        disk = self._disk(instance)
        meta = {"disk_format": "raw", "container_format": "bare", "properties": {}}
        update_task_state(task_state=task_states.IMAGE_UPLOADING,
                          expected_state=task_states.IMAGE_PENDING_UPLOAD)
        if disk.exists():
            with open(disk, "rb") as f:
                self._image_api.update(context, image_id, meta, f, purge_props=False)
        else:
            self._image_api.update(context, image_id, meta, b"", purge_props=False)

    def destroy(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                destroy_secrets=True):
        super().destroy(context, instance, network_info, block_device_info=block_device_info,
                        destroy_disks=destroy_disks, destroy_secrets=destroy_secrets)
        if hosts.is_host(instance.uuid):
            hosts.remove(instance.uuid)
        if destroy_disks:
            shutil.rmtree(self._instance_dir(instance), ignore_errors=True)

    # -- power ---------------------------------------------------------------------------------

    def power_off(self, instance, timeout=0, retry_interval=0):
        super().power_off(instance, timeout, retry_interval)
        if hosts.is_host(instance.uuid):
            hosts.stop(instance.uuid)

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None,
                 share_info=None):
        super().power_on(context, instance, network_info, block_device_info=block_device_info,
                         accel_info=accel_info, share_info=share_info)
        if hosts.is_host(instance.uuid):
            hosts.start(instance.uuid)

    # -- volumes -------------------------------------------------------------------------------

    def _link(self, instance, connection_info):
        vid, path = _volume_id(connection_info), _volume_file(connection_info)
        if vid and path and hosts.is_host(instance.uuid):
            hosts.link_volume(instance.uuid, vid, path)

    def attach_volume(self, context, connection_info, instance, mountpoint, disk_bus=None, device_type=None,
                      encryption=None):
        super().attach_volume(context, connection_info, instance, mountpoint, disk_bus=disk_bus,
                              device_type=device_type, encryption=encryption)
        self._link(instance, connection_info)

    def detach_volume(self, context, connection_info, instance, mountpoint, encryption=None):
        super().detach_volume(context, connection_info, instance, mountpoint, encryption=encryption)
        vid = _volume_id(connection_info)
        if vid and hosts.is_host(instance.uuid):
            hosts.unlink_volume(instance.uuid, vid)

    def _volume_dir(self, context, instance, volume_id):
        if os.environ.get("OSM_AIO_VOLUMES_DIR"):
            return os.environ["OSM_AIO_VOLUMES_DIR"]
        bdm = objects.BlockDeviceMapping.get_by_volume_and_instance(context, volume_id, instance.uuid)
        return os.path.dirname(_volume_file(json.loads(bdm.connection_info)))

    def volume_snapshot_create(self, context, instance, volume_id, create_info):
        """Cinder already made the qcow2 overlay; the "guest" switches to it (recorded in the block
        device mapping's connection info, as libvirt's domain XML would hold it)."""
        status = "creating"
        try:
            bdm = objects.BlockDeviceMapping.get_by_volume_and_instance(context, volume_id, instance.uuid)
            ci = json.loads(bdm.connection_info)
            ci["data"]["name"] = create_info["new_file"]
            ci["data"]["format"] = "qcow2"
            bdm.connection_info = json.dumps(ci)
            bdm.save()
        except Exception:  # noqa: BLE001 (Cinder waits for a status either way)
            LOG.exception("assisted volume snapshot create failed for %s", volume_id)
            status = "error"
        self._volume_api.update_snapshot_status(context, create_info["snapshot_id"], status)

    def volume_snapshot_delete(self, context, instance, volume_id, snapshot_id, delete_info):
        """Merges the snapshot's file as libvirt would: blockRebase (pull the base into the active
        file) when there is no merge target, else blockCommit into the target."""
        status = "deleting"
        try:
            d = self._volume_dir(context, instance, volume_id)
            # The active file is the one the attachment's connection info names.
            bdm = objects.BlockDeviceMapping.get_by_volume_and_instance(context, volume_id, instance.uuid)
            ci = json.loads(bdm.connection_info)
            active = os.path.join(d, ci["data"]["name"])
            to_merge = delete_info.get("file_to_merge")
            target = delete_info.get("merge_target_file")
            if target is None:
                backing = ["-b", os.path.join(d, to_merge), "-F", "qcow2"] if to_merge else ["-b", ""]
                subprocess.run(["qemu-img", "rebase", "-f", "qcow2", *backing, active], check=True,
                               capture_output=True)
            else:
                top = os.path.join(d, to_merge)
                subprocess.run(["qemu-img", "commit", "-f", "qcow2", "-b", os.path.join(d, target), top],
                               check=True, capture_output=True)
                if os.path.realpath(top) != os.path.realpath(active):
                    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", os.path.join(d, target),
                                    "-F", "raw" if target.count(".") == 0 else "qcow2", active], check=True,
                                   capture_output=True)
        except Exception:  # noqa: BLE001 (Cinder waits for a status either way)
            LOG.exception("assisted volume snapshot delete failed for %s", snapshot_id)
            status = "error_deleting"
        self._volume_api.update_snapshot_status(context, snapshot_id, status)
