"""Export through real ansible-playbook against the simulator: what is serialized, filters,
idempotency, names that are data, and upstream files."""

import shutil

import pytest
import yaml

from lib.ansible import REPO
from lib.scenario import (boot_from_image, boot_from_volume, export, volume_from_image, wait_server, wait_volume)
from lib.upstream import loader_errors

SAMPLE = REPO / "crates" / "workload" / "tests" / "data" / "workloads-1.0.1.yml"
NASTY = "web 01; $(id)"


def entries(data_dir):
    wl = yaml.safe_load((data_dir / "workloads.yml").read_text())
    return {r["params"]["name"]: r for r in wl["resources"]}


def test_export_scenario(clouds, tmp_path):
    w = clouds
    c = w.src.conn
    data_dir = tmp_path / "data"

    web = boot_from_image(c, "exp-web", w.src, w.src.cirros, [{"uuid": w.src.app_net.id}], security_groups=("web", "default"),
                          metadata={"role": "web"})
    boot = volume_from_image(c, "exp-vol-boot", w.src.cirros)
    x1 = wait_volume(c, c.block_storage.create_volume(name="exp-vol-x1", size=1, description="first").id, "available")
    x2 = wait_volume(c, c.block_storage.create_volume(name="exp-vol-x2", size=2).id, "available")
    vol = boot_from_volume(c, "exp-vol", w.src, boot, [{"uuid": w.src.app_net.id}], extra_volumes=[x1, x2])

    port = c.network.create_port(network_id=w.src.db_net.id, fixed_ips=[
        {"subnet_id": w.src.db_subnet.id, "ip_address": "192.168.20.50"},
        {"subnet_id": w.src.db_subnet.id, "ip_address": "192.168.20.51"}])
    multi = boot_from_image(c, "exp-multi", w.src, w.src.cirros,
                            [{"uuid": w.src.app_net.id, "fixed_ip": "192.168.10.77"}, {"port": port.id}])
    fip = c.network.create_ip(floating_network_id=w.src.public.id, port_id=port.id, fixed_ip_address="192.168.20.50")

    # A server in ERROR is exported too; the real test bed cannot be told to fail a boot.
    expected = {"exp-web", "exp-vol", "exp-multi", NASTY}
    if w.sim.supports_faults:
        w.sim.fault(kind="error", resource="server", match={"name": "^exp-broken$"}, message="No valid host was found.")
        broken = c.compute.create_server(name="exp-broken", flavor_id=w.src.flavor.id, image_id=w.src.cirros.id,
                                         networks=[{"uuid": w.src.app_net.id}])
        wait_server(c, broken.id, "ERROR")
        expected.add("exp-broken")
    nasty = boot_from_image(c, NASTY, w.src, w.src.cirros, [{"uuid": w.src.app_net.id}])

    run = export(tmp_path, w.sim, data_dir, os_migrate_workloads_filter=[{"regex": "^exp-"}, NASTY])
    assert run.rc == 0, run
    text = (data_dir / "workloads.yml").read_text()
    e = entries(data_dir)
    assert set(e) == expected
    assert (data_dir / "workloads.yml").stat().st_mode & 0o777 == 0o600, "user data carries secrets: 0600"

    s = e["exp-web"]
    assert s["type"] == "openstack.compute.Server"
    assert s["params"]["flavor_ref"]["name"] == "m1.small"
    assert s["params"]["image_ref"] == {"name": "cirros", "project_name": "%auth%", "domain_name": "%auth%"}
    assert s["params"]["metadata"] == {"role": "web"}
    assert s["params"]["key_name"] == "app-key"
    assert sorted(r["name"] for r in s["params"]["security_group_refs"]) == ["default", "web"]
    assert len(s["params"]["ports"]) == 1
    p = s["params"]["ports"][0]
    assert p["type"] == "openstack.network.ServerPort"
    assert p["params"]["network_ref"] == {"name": "app-net", "project_name": "%auth%", "domain_name": "%auth%"}
    assert p["params"]["fixed_ips_refs"][0]["subnet_ref"]["name"] == "app-subnet"
    assert p["params"]["mac_address"].startswith("fa:16:3e")
    assert p["_info"]["device_owner"].startswith("compute:")
    assert s["_info"]["id"] == web.id and s["_info"]["status"] == "SHUTOFF"
    assert s["_migration_params"]["boot_disk_copy"] is False
    assert s["_migration_params"]["floating_ip_mode"] == "auto"
    assert s["_migration_params"]["port_creation_mode"] == "nova"

    v = e["exp-vol"]
    assert v["params"]["image_ref"] is None
    assert v["_migration_params"]["boot_disk_copy"] is True
    vols = {x["params"]["name"]: x for x in v["params"]["volumes"]}
    assert set(vols) == {"exp-vol-boot", "exp-vol-x1", "exp-vol-x2"}
    assert vols["exp-vol-boot"]["_info"]["is_bootable"] is True
    assert vols["exp-vol-boot"]["params"]["volume_image_metadata"]["image_name"] == "cirros"
    assert vols["exp-vol-x1"]["params"]["description"] == "first"
    assert vols["exp-vol-x2"]["_info"]["size"] == 2
    assert vols["exp-vol-x2"]["params"]["volume_type"] == "__DEFAULT__"
    assert vols["exp-vol-boot"]["_info"]["attachments"][0]["server_id"] == vol.id
    # The device name is the cloud's choice (cloudsim: /dev/vda; Nova's fake driver: /dev/sda).
    device = c.block_storage.get_volume(boot.id).attachments[0]["device"]
    assert device in ("/dev/vda", "/dev/sda")
    assert vols["exp-vol-boot"]["_info"]["attachments"][0]["device"] == device

    m = e["exp-multi"]
    nets = [x["params"]["network_ref"]["name"] for x in m["params"]["ports"]]
    by_net = {x["params"]["network_ref"]["name"]: x for x in m["params"]["ports"]}
    assert [f["ip_address"] for f in by_net["app-net"]["params"]["fixed_ips_refs"]] == ["192.168.10.77"]
    assert [f["ip_address"] for f in by_net["db-net"]["params"]["fixed_ips_refs"]] == ["192.168.20.50", "192.168.20.51"]
    assert len(m["params"]["floating_ips"]) == 1
    f = m["params"]["floating_ips"][0]
    assert f["params"]["floating_ip_address"] == fip.floating_ip_address
    assert f["params"]["fixed_ip_address"] == "192.168.20.50"
    assert f["params"]["floating_network_ref"]["name"] == "public"
    assert f["_info"]["port_id"] == port.id

    if "exp-broken" in expected:
        assert e["exp-broken"]["_info"]["status"] == "ERROR"
    assert e[NASTY]["params"]["name"] == NASTY

    for secret in ("password", "token"):
        assert secret not in text.lower(), f"no {secret} in the workloads file"
    creds = yaml.safe_load(w.sim.clouds_yaml.read_text())["clouds"]["src"]["auth"]["password"]
    assert creds not in text

    again = export(tmp_path, w.sim, data_dir, os_migrate_workloads_filter=[{"regex": "^exp-"}, NASTY])
    assert again.rc == 0, again
    assert "changed=0" in again.output.split("PLAY RECAP")[-1]
    assert (data_dir / "workloads.yml").read_text() == text, "a second export leaves the file byte for byte"

    assert nets == ["app-net", "db-net"], "ports in NIC order"

    # an operator's edit of the migration parameters survives a re-export
    edited = text.replace("port_creation_mode: nova", "port_creation_mode: neutron", 1)
    (data_dir / "workloads.yml").write_text(edited)
    assert export(tmp_path, w.sim, data_dir, os_migrate_workloads_filter=["exp-web"]).rc == 0
    assert (data_dir / "workloads.yml").read_text() == edited


def test_filters_select_subsets(clouds, tmp_path):
    w = clouds
    c = w.src.conn
    for name in ("flt-a1", "flt-a2", "flt-b1"):
        boot_from_image(c, name, w.src, w.src.cirros, [{"uuid": w.src.app_net.id}])
    d1 = tmp_path / "exact"
    assert export(tmp_path, w.sim, d1, os_migrate_workloads_filter=["flt-a2", "flt-b"]).rc == 0
    assert set(entries(d1)) == {"flt-a2"}
    d2 = tmp_path / "regex"
    assert export(tmp_path, w.sim, d2, os_migrate_workloads_filter=[{"regex": "a[0-9]$"}]).rc == 0
    assert set(entries(d2)) == {"flt-a1", "flt-a2"}


def test_upstream_file_entries_are_kept_and_readable(clouds, tmp_path):
    w = clouds
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(SAMPLE, data_dir / "workloads.yml")
    boot_from_image(w.src.conn, "up-new", w.src, w.src.cirros, [{"uuid": w.src.app_net.id}])
    run = export(tmp_path, w.sim, data_dir, os_migrate_workloads_filter=["up-new"])
    assert run.rc == 0, run
    e = entries(data_dir)
    assert set(e) == {"app-01", "db-01", "up-new"}
    original = {r["params"]["name"]: r for r in yaml.safe_load(SAMPLE.read_text())["resources"]}
    # Every value is kept; the keys upstream's deserializers index are added (null where unset).
    port = e["app-01"]["params"]["ports"][0]
    assert {k: v for k, v in port["params"].items() if v is not None} == original["app-01"]["params"]["ports"][0]["params"]
    assert port["params"]["mac_address"] is None and port["_info"] == original["app-01"]["params"]["ports"][0]["_info"]
    assert e["db-01"]["_migration_params"]["port_creation_mode"] == "neutron"
    # Written as upstream 1.0.5 reads it (its loader wants its own version exactly).
    written = (data_dir / "workloads.yml").read_text()
    assert yaml.safe_load(written)["os_migrate_version"] == "1.0.5"
    assert loader_errors(written) == []
