"""Upstream OS Migrate's side of file compatibility: the servers of the upstream fixture
(crates/workload/tests/data/upstream-1.0.5.yml, exported by upstream's own serialization code from
these servers; see scripts/upstream_fixture.py), and upstream 1.0.5's loader checks, reimplemented
here so that a test can hold osm's files to them without upstream's code."""

import copy

import yaml

from lib.scenario import (boot_from_image, boot_from_volume, upload_image, volume_from_image, wait_server,
                          wait_volume)

FIXTURE_VERSION = "1.0.5"

# Upstream 1.0.5's Server resource: params_from_sdk + params_from_refs (osm_resource's
# _validation_params_errors), and migration_param_defaults (_validation_migration_params_errors),
# with main's nbdkit keys (indexed by its transfer module).
SERVER_PARAMS = ["availability_zone", "config_drive", "description", "disk_config", "key_name", "metadata", "name",
                 "user_data", "scheduler_hints", "tags", "ports", "flavor_ref", "floating_ips", "image_ref",
                 "security_group_refs", "volumes"]
MIGRATION_PARAMS = ["boot_disk_copy", "floating_ip_mode", "boot_volume_params", "port_creation_mode", "data_copy",
                    "boot_volume", "additional_volumes", "use_nbdkit_direct", "nbdkit_socket_uri",
                    "nbdkit_export_name"]
# What upstream's deserializers index directly (KeyError when missing): a reference's three keys
# (reference._project_id_filters), a port's fixed IPs and network (ServerPort._refs_from_ser), a
# floating IP's network, QoS policy and addresses (ServerFloatingIP), a volume's ID (volume_common).
REF_KEYS = ["name", "project_name", "domain_name"]
PORT_PARAMS = ["fixed_ips_refs", "network_ref", "binding_profile", "binding_vnic_type", "mac_address"]
FIP_PARAMS = ["floating_network_ref", "qos_policy_ref", "floating_ip_address", "fixed_ip_address", "description",
              "dns_domain", "dns_name"]
VOLUME_PARAMS = ["availability_zone", "name", "description", "volume_type", "volume_image_metadata"]
VOLUME_INFO = ["attachments", "is_bootable", "id", "size"]
TYPES = {"ports": "openstack.network.ServerPort", "floating_ips": "openstack.network.ServerFloatingIP",
         "volumes": "openstack.network.ServerVolume"}


def loader_errors(text):
    """What upstream 1.0.5 refuses in a workloads file: its loader (filesystem.load_resources_file, an
    exact version), its validation (validation.get_errors_in_file_structs: known types, unique import
    identity, _info.id, every param and migration param) and the keys its import path indexes."""
    doc = yaml.safe_load(text)
    if doc is None:
        return ["empty file"]
    errors = []
    if doc.get("os_migrate_version") != FIXTURE_VERSION:
        errors.append(f"os_migrate_version {doc.get('os_migrate_version')!r} is not {FIXTURE_VERSION!r}")
    seen = set()
    for r in doc.get("resources") or []:
        name = (r.get("params") or {}).get("name")
        where = f"server {name!r}"
        if r.get("type") != "openstack.compute.Server":
            errors.append(f"{where}: type {r.get('type')!r}")
            continue
        if ("server", name) in seen:
            errors.append(f"{where}: duplicate import identity")
        seen.add(("server", name))
        params, info, mp = r.get("params", {}), r.get("_info", {}), r.get("_migration_params", {})
        if "id" not in info:
            errors.append(f"{where}: missing _info.id")
        errors += [f"{where}: missing params.{k}" for k in SERVER_PARAMS if k not in params]
        errors += [f"{where}: missing _migration_params.{k}" for k in MIGRATION_PARAMS if k not in mp]
        for k in ("boot_volume_params", "boot_volume"):
            if not isinstance(mp.get(k), dict):
                errors.append(f"{where}: _migration_params.{k} is not a mapping")
        if not all(isinstance(v, dict) and "uuid" in v for v in mp.get("additional_volumes") or []):
            errors.append(f"{where}: an additional_volumes entry without uuid")
        for ref in [params.get("flavor_ref"), params.get("image_ref"), *(params.get("security_group_refs") or [])]:
            errors += ref_errors(where, ref)
        for key, wanted in (("ports", PORT_PARAMS), ("floating_ips", FIP_PARAMS), ("volumes", VOLUME_PARAMS)):
            for i, sub in enumerate(params.get(key) or []):
                at = f"{where}: params.{key}[{i}]"
                if sub.get("type") != TYPES[key]:
                    errors.append(f"{at}: type {sub.get('type')!r}")
                sp = sub.get("params", {})
                errors += [f"{at}: missing params.{k}" for k in wanted if k not in sp]
                if key == "volumes":
                    errors += [f"{at}: missing _info.{k}" for k in VOLUME_INFO if k not in sub.get("_info", {})]
                if key == "ports":
                    errors += ref_errors(at, sp.get("network_ref"))
                    for f in sp.get("fixed_ips_refs") or []:
                        if "ip_address" not in f or "subnet_ref" not in f:
                            errors.append(f"{at}: a fixed_ips_refs entry without ip_address or subnet_ref")
                        errors += ref_errors(at, f.get("subnet_ref"))
                if key == "floating_ips":
                    errors += ref_errors(at, sp.get("floating_network_ref"))
                    errors += ref_errors(at, sp.get("qos_policy_ref"))
    return errors


def ref_errors(where, ref):
    if ref is None:
        return []
    return [f"{where}: a reference without {k}" for k in REF_KEYS if k not in ref]


def seed(world):
    """The servers the upstream fixture was exported from, in the source cloud of `world` (the e2e
    clouds fixture), and what the destination needs of them. Returns the source servers by name."""
    src, dst = world.src.conn, world.dst.conn
    for c in (src, dst):
        if not c.network.find_qos_policy("up-gold"):
            c.network.create_qos_policy(name="up-gold", description="gold")
    scsi_img = upload_image(src, "cirros-scsi", world.root / "cirros.raw",
                            properties={"hw_disk_bus": "scsi", "hw_scsi_model": "virtio-scsi"})
    servers = {}
    data = wait_volume(src, src.block_storage.create_volume(name="up-app-data", size=1).id, "available")
    app = boot_from_image(src, "up-app", world.src, world.src.cirros,
                          [{"uuid": world.src.app_net.id, "fixed_ip": "192.168.10.31"}], extra_volumes=[data],
                          security_groups=("web",), stop=False, metadata={"role": "app"})
    port = next(src.network.ports(device_id=app.id))
    src.network.create_ip(floating_network_id=world.src.public.id, port_id=port.id, dns_name="app",
                          dns_domain="example.org.", description="app address",
                          qos_policy_id=src.network.find_qos_policy("up-gold").id)
    src.compute.stop_server(app)
    servers["up-app"] = wait_server(src, app.id, "SHUTOFF")
    boot = volume_from_image(src, "up-db-boot", world.src.cirros)
    d1 = wait_volume(src, src.block_storage.create_volume(name="up-db-data1", size=1).id, "available")
    d2 = wait_volume(src, src.block_storage.create_volume(name="up-db-data2", size=1).id, "available")
    servers["up-db"] = boot_from_volume(src, "up-db", world.src, boot,
                                        [{"uuid": world.src.db_net.id, "fixed_ip": "192.168.20.31"}],
                                        extra_volumes=[d1, d2])
    sboot = volume_from_image(src, "up-scsi-boot", scsi_img)
    sdata = wait_volume(src, src.block_storage.create_volume(name="up-scsi-data", size=1).id, "available")
    servers["up-scsi"] = boot_from_volume(src, "up-scsi", world.src, sboot, [{"uuid": world.src.app_net.id}],
                                          extra_volumes=[sdata])
    return servers


def remap_ids(text, conn):
    """The fixture with the source IDs of this cloud's servers and volumes of the same names: a
    server's identity in a workloads file is its ID. Nothing else changes."""
    doc = yaml.safe_load(text)
    by_name = {s.name: s.id for s in conn.compute.servers()}
    volumes = {v.name: v.id for v in conn.block_storage.volumes()}
    out = copy.deepcopy(doc)
    for r in out["resources"]:
        sid = by_name[r["params"]["name"]]
        r["_info"]["id"] = sid
        for v in r["params"]["volumes"]:
            vid = volumes[v["params"]["name"]]
            v["_info"]["id"] = vid
            for a in v["_info"]["attachments"]:
                a.update({k: vid for k in ("id", "volume_id") if k in a})
                a["server_id"] = sid
    return yaml.safe_dump(out, sort_keys=True)
