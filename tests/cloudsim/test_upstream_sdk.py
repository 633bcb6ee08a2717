"""openstacksdk against cloudsim, call for call as upstream OS Migrate's workload export and import make
them (os-migrate/os-migrate 1.0.5 and main: plugins/module_utils/server*.py, reference.py,
volume_common.py, and the import_workload_* modules), through both of openstacksdk's layers: the proxies
(conn.compute.fetch_server_security_groups, conn.network.find_qos_policy, ...) and the cloud layer
(conn.get_server_by_id, conn.create_volume_snapshot, conn.attach_volume, ...). Upstream's own code is not
run here; each answer is checked for what upstream reads from it."""

import pytest

from cloudsim_helpers import wait_until

SRC, DST = "src", "dst"


@pytest.fixture(scope="module")
def src(sim):
    return sim.conn(SRC)


@pytest.fixture(scope="module")
def dst(sim):
    return sim.conn(DST)


@pytest.fixture(scope="module")
def base(sim, src, tmp_path_factory):
    """What a source server refers to: flavor, image, networks, a router to the external network, a
    security group with a rule, a keypair, a QoS policy."""
    c = src
    flavor = c.compute.create_flavor(name="up.small", vcpus=1, ram=256, disk=1)
    path = tmp_path_factory.mktemp("up") / "disk.raw"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    image = c.image.create_image(name="up-image", disk_format="raw", container_format="bare", data=open(path, "rb"),
                                 visibility="public", hw_disk_bus="scsi", hw_scsi_model="virtio-scsi")
    wait_until("image active", lambda: c.image.get_image(image.id).status == "active")
    public = c.network.create_network(name="up-public", is_router_external=True)
    c.network.create_subnet(name="up-public-subnet", network_id=public.id, ip_version=4, cidr="172.31.0.0/24",
                            enable_dhcp=False)
    net = c.network.create_network(name="up-net")
    subnet = c.network.create_subnet(name="up-subnet", network_id=net.id, ip_version=4, cidr="10.20.0.0/24")
    router = c.network.create_router(name="up-router", external_gateway_info={"network_id": public.id})
    c.network.add_interface_to_router(router, subnet_id=subnet.id)
    sg = c.network.create_security_group(name="up-web", description="web")
    c.network.create_security_group_rule(security_group_id=sg.id, direction="ingress", protocol="tcp",
                                         port_range_min=443, port_range_max=443, ethertype="IPv4",
                                         remote_ip_prefix="0.0.0.0/0")
    c.compute.create_keypair(name="up-key", public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmY7sGqDtgQ3B3QzQeS7RrQ7aF3lZ1kU7vS6lI0g1Zq up")
    qos = c.network.create_qos_policy(name="up-gold", description="gold")
    return dict(flavor=flavor, image=image, public=public, net=net, subnet=subnet, sg=sg, qos=qos)


@pytest.fixture(scope="module")
def server(src, base):
    """An image-booted server on virtio-scsi with a data volume, a floating IP with DNS and QoS."""
    c = src
    s = c.compute.create_server(name="up-server", flavor_id=base["flavor"].id, image_id=base["image"].id,
                                networks=[{"uuid": base["net"].id, "fixed_ip": "10.20.0.50"}], key_name="up-key",
                                security_groups=[{"name": "up-web"}])
    s = c.compute.wait_for_server(s, failures=["ERROR"], wait=120)
    vol = c.block_storage.create_volume(name="up-data", size=1)
    c.block_storage.wait_for_status(vol, "available")
    c.compute.create_volume_attachment(s, volume_id=vol.id)
    wait_until("data volume in-use", lambda: c.block_storage.get_volume(vol.id).status == "in-use")
    port = next(c.network.ports(device_id=s.id))
    fip = c.network.create_ip(floating_network_id=base["public"].id, port_id=port.id, dns_name="web01",
                              dns_domain="example.org.", qos_policy_id=base["qos"].id, description="web")
    return dict(server=s, volume=vol, port=port, fip=fip)


def test_export_reads_what_upstream_reads(src, base, server):
    """Server.from_sdk and its references, as upstream's export_workload module runs them."""
    c = src
    s = c.compute.find_server("up-server", ignore_missing=False)
    s = c.compute.get_server(s["id"])
    assert s.image["id"] == base["image"].id
    # Upstream falls back to the cloud layer when the proxy's server has no flavor ID (2.47+).
    cloud_server = c.get_server_by_id(s["id"])
    assert cloud_server["id"] == s.id and cloud_server["flavor"]
    flavor = c.compute.find_flavor(base["flavor"].id, ignore_missing=False)
    assert flavor["name"] == "up.small"
    image = c.image.find_image(base["image"].id, ignore_missing=False)
    assert image["name"] == "up-image" and image.owner_id == c.current_project_id
    # upstream's export stopped here against cloudsim before (404 on os-security-groups).
    groups = list(c.compute.fetch_server_security_groups(s).security_groups)
    assert [g["name"] for g in groups] == ["up-web"]
    assert groups[0]["id"] == base["sg"].id
    assert [(r["from_port"], r["to_port"], r["ip_protocol"]) for r in groups[0]["rules"]] == [(443, 443, "tcp")]
    sg = c.network.find_security_group(groups[0]["id"], ignore_missing=False)
    assert sg["name"] == "up-web" and sg.project_id == c.current_project_id
    ports = [p for p in c.network.ports(device_id=s["id"]) if p.get("device_owner", "").startswith("compute:")]
    assert len(ports) == 1
    p = ports[0]
    assert p["fixed_ips"][0]["ip_address"] == "10.20.0.50"
    assert p["binding_vnic_type"] == "normal" and p["mac_address"]
    assert c.network.find_subnet(p["fixed_ips"][0]["subnet_id"], ignore_missing=False)["name"] == "up-subnet"
    assert c.network.find_network(p["network_id"], ignore_missing=False)["name"] == "up-net"
    fips = list(c.network.ips(port_id=p.id))
    assert len(fips) == 1
    f = fips[0]
    assert (f["dns_name"], f["dns_domain"], f["description"]) == ("web01", "example.org.", "web")
    assert f["qos_policy_id"] == base["qos"].id and f["fixed_ip_address"] == "10.20.0.50"
    assert f["floating_network_id"] == base["public"].id and f["router_id"]
    assert c.network.find_qos_policy(f["qos_policy_id"], ignore_missing=False)["name"] == "up-gold"
    assert c.network.find_network(f["floating_network_id"], ignore_missing=False)["name"] == "up-public"
    attachments = list(c.compute.volume_attachments(s))
    assert [a["volume_id"] for a in attachments] == [server["volume"].id]
    v = c.block_storage.get_volume(attachments[0]["volume_id"])
    assert v["attachments"][0]["device"] == "/dev/sdb", "virtio-scsi disks are sd*"
    assert v.name == "up-data" and v.size == 1 and v.is_bootable is False
    # _fetch_project_name_and_domain_name for a resource of another project, and the auth info.
    project = c.identity.get_project(c.current_project_id)
    assert c.identity.get_domain(project.domain_id)["name"]
    assert c.current_user_id
    # The role's server listing (upstream's prelude filters by the authenticated project).
    assert "up-server" in [x.name for x in c.compute.servers(details=True, project_id=c.current_project_id)]
    assert "up-server" in [x["name"] for x in c.search_servers(filters={"project_id": c.current_project_id})]


def test_import_cloud_calls(sim, src, dst, base, server, tmp_path):
    """What upstream's import makes in the destination: prelim and dst_check lookups by name with
    project filters, a server created from a block device mapping, neutron-mode ports, floating IPs."""
    c = dst
    flavor = c.compute.create_flavor(name="up.small", vcpus=1, ram=256, disk=1)
    public = c.network.create_network(name="up-public", is_router_external=True)
    c.network.create_subnet(name="up-public-subnet", network_id=public.id, ip_version=4, cidr="172.31.1.0/24",
                            enable_dhcp=False)
    net = c.network.create_network(name="up-net")
    subnet = c.network.create_subnet(name="up-subnet", network_id=net.id, ip_version=4, cidr="10.20.0.0/24")
    router = c.network.create_router(name="up-router", external_gateway_info={"network_id": public.id})
    c.network.add_interface_to_router(router, subnet_id=subnet.id)
    c.network.create_security_group(name="up-web")
    qos = c.network.create_qos_policy(name="up-gold")
    c.compute.create_keypair(name="up-key", public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmY7sGqDtgQ3B3QzQeS7RrQ7aF3lZ1kU7vS6lI0g1Zq up")
    me = {"project_id": c.current_project_id}
    # prelim: is the server already there?
    assert list(c.compute.servers(details=False, name="^up-server$", **me)) == []
    # dst_check: every reference by name.
    assert c.compute.find_flavor("up.small", ignore_missing=False).id == flavor.id
    assert c.network.find_network("up-net", ignore_missing=False, **me).id == net.id
    assert c.network.find_subnet("up-subnet", ignore_missing=False, **me).id == subnet.id
    sg = c.network.find_security_group("up-web", ignore_missing=False, **me)
    assert c.network.find_qos_policy("up-gold", ignore_missing=False).id == qos.id
    assert c.compute.find_keypair("up-key", ignore_missing=False).name == "up-key"
    assert c.identity.find_project(sim.conn(DST).identity.get_project(c.current_project_id).name)
    assert c.identity.find_domain("Default") or c.identity.find_domain("default")
    # The data path in the destination (volume_common): volumes made with the cloud layer, attached
    # and detached with it, as upstream does on its conversion host.
    boot = c.create_volume(size=1, name="up-server-boot", bootable=True, wait=True, timeout=120)
    data = c.create_volume(size=1, name="up-data", wait=True, timeout=120)
    assert c.get_volume_by_id(boot.id)["status"] == "available"
    # create_instance: block_device_mapping as upstream's transfer module returns it (device names).
    bdm = [
        {"boot_index": 0, "delete_on_termination": True, "destination_type": "volume", "device_name": "sda",
         "source_type": "volume", "uuid": boot.id},
        {"boot_index": -1, "delete_on_termination": False, "destination_type": "volume", "device_name": "sdb",
         "source_type": "volume", "uuid": data.id},
    ]
    port = c.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.20.0.50"}],
                                 mac_address=server["port"].mac_address, binding_vnic_type="normal", binding_profile={})
    created = c.compute.create_server(name="up-server", flavor_id=flavor.id, block_device_mapping=bdm,
                                      networks=[{"port": port["id"]}], key_name="up-key",
                                      security_groups=[{"name": "up-web"}], metadata={}, tags=[])
    created = c.compute.wait_for_server(created, failures=["ERROR"], wait=120)
    assert created.status == "ACTIVE"
    atts = {a["volume_id"]: a for a in c.compute.volume_attachments(created)}
    assert atts[boot.id]["device"] == "/dev/sda" and atts[data.id]["device"] == "/dev/sdb"
    assert c.compute.find_server("up-server").id == created.id
    assert [x.id for x in c.compute.servers(details=False, name="^up-server$", **me)] == [created.id]
    # Floating IP: auto mode tries the same address, then allocates a new one with DNS and QoS.
    assert list(c.network.ips(floating_ip_address=server["fip"].floating_ip_address)) == []
    my_port = next(p for p in c.network.ports(device_id=created.id)
                   if "10.20.0.50" in [i["ip_address"] for i in p["fixed_ips"]])
    fip = c.network.create_ip(floating_network_id=public.id, port_id=my_port["id"], fixed_ip_address="10.20.0.50",
                              description="web", dns_name="web01", dns_domain="example.org.", qos_policy_id=qos.id)
    assert (fip.dns_name, fip.qos_policy_id, fip.port_id) == ("web01", qos.id, my_port["id"])
    spare = c.network.create_ip(floating_network_id=public.id)
    moved = c.network.update_ip(spare, port_id=None)
    assert moved.port_id is None
    # Nova leaves a port it was given as it is: upstream's neutron mode creates it with the project's
    # default group, whatever the server's security_groups say.
    assert sg.id not in my_port["security_group_ids"]
    # delete_on_termination of an attachment, after the fact (microversion 2.85), as osm sets it.
    c.compute.update_volume_attachment(created, boot.id, delete_on_termination=False)
    att = next(a for a in c.compute.volume_attachments(created) if a["volume_id"] == boot.id)
    assert att["delete_on_termination"] is False


def test_source_data_path_cloud_layer(src, base, server):
    """volume_common's source side: snapshot and volume of the boot disk, server image of an
    image-booted server, detach and attach of data volumes, and their cleanup."""
    c = src
    s = c.compute.get_server(server["server"].id)
    c.compute.stop_server(s)
    c.compute.wait_for_server(s, status="SHUTOFF", wait=120)
    vol = c.get_volume_by_id(server["volume"].id)
    c.detach_volume(server=s, volume=vol, wait=True, timeout=120)
    assert c.get_volume_by_id(vol.id)["status"] == "available"
    snap = c.create_volume_snapshot(force=True, wait=True, volume_id=vol.id, name="os-migrate-" + vol.id, timeout=120)
    copy = c.create_volume(wait=True, name="os-migrate-" + vol.id, snapshot_id=snap.id, size=snap.size, timeout=120)
    assert copy["snapshot_id"] == snap.id
    image = c.compute.create_server_image(name="os-migrate-up-server", server=s.id, wait=True, timeout=120)
    image = c.get_image_by_id(image.id)
    assert image.status == "active" and image.hw_disk_bus == "scsi", "the base image's properties"
    boot = c.create_volume(image=image.id, bootable=True, wait=True, name=image.name, timeout=120,
                           size=max(image.size // (1024 ** 3), image.min_disk, 1))
    assert boot["volume_image_metadata"]["hw_disk_bus"] == "scsi"
    c.attach_volume(server=s, volume=c.get_volume_by_id(vol.id), wait=True, timeout=120)
    assert c.get_volume_by_id(vol.id)["status"] == "in-use"
    c.delete_volume(copy.id, wait=True, timeout=120)
    c.delete_volume(boot.id, wait=True, timeout=120)
    c.delete_volume_snapshot(snap.id, wait=True, timeout=120)
    c.delete_image(image.id, wait=True, timeout=120)
    assert [i for i in c.image.images() if i.name == "os-migrate-up-server"] == []
