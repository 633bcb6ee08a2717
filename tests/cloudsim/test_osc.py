"""python-openstackclient against cloudsim: each command's JSON output is checked."""

import hashlib
import os
import subprocess

import pytest

from cloudsim_helpers import BIN_DIR, OscError, wait_until

CLOUD = "src"


def show(sim, kind, ident, cloud=CLOUD):
    return sim.osc(cloud, *kind.split(), "show", ident)


def wait_status(sim, kind, ident, want, cloud=CLOUD, key="status"):
    def check():
        v = show(sim, kind, ident, cloud)
        assert str(v[key]).lower() != "error", v
        return v if v[key] == want else None
    return wait_until(f"{kind} {ident} {want}", check)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "disk.raw"
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))
        f.seek(6 << 20)
        f.write(b"tail of the disk")
    return path


@pytest.fixture(scope="module")
def flavor(sim):
    return sim.osc(CLOUD, "flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "osc.tiny")


@pytest.fixture(scope="module")
def image(sim, image_file):
    created = sim.osc(CLOUD, "image", "create", "--file", str(image_file), "--disk-format", "raw",
                      "--container-format", "bare", "--public", "--property", "os_distro=cirros", "osc-image")
    return wait_status(sim, "image", created["id"], "active")


@pytest.fixture(scope="module")
def network(sim):
    net = sim.osc(CLOUD, "network", "create", "osc-net")
    subnet = sim.osc(CLOUD, "subnet", "create", "--network", "osc-net", "--subnet-range", "192.168.50.0/24", "osc-subnet")
    return net, subnet


@pytest.fixture(scope="module")
def keypair(sim, tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    kp = sim.osc(CLOUD, "keypair", "create", "--public-key", str(d / "id.pub"), "osc-key")
    return kp, d / "id"


def test_token_catalog_project(sim):
    tok = sim.osc(CLOUD, "token", "issue")
    assert tok["id"] and tok["expires"] and tok["user_id"]
    project = sim.osc(CLOUD, "project", "show", "src-project")
    assert project["name"] == "src-project"
    assert project["domain_id"] == "default"
    assert project["enabled"] is True
    assert tok["project_id"] == project["id"]
    catalog = sim.osc(CLOUD, "catalog", "list")
    by_type = {e["Type"]: e for e in catalog}
    for t in ("identity", "compute", "volumev3", "block-storage", "image", "network"):
        assert t in by_type, catalog
    urls = [ep["url"] for ep in by_type["compute"]["Endpoints"]]
    assert all(u.startswith(sim.base_url + "/src/compute/v2.1") for u in urls), urls
    assert {ep["interface"] for ep in by_type["image"]["Endpoints"]} == {"public", "internal", "admin"}
    # dst is a separate cloud with its own project.
    dst = sim.osc("dst", "token", "issue")
    assert dst["project_id"] != tok["project_id"]


def test_wrong_password_is_401(sim):
    auth = sim.clouds["src"]["auth"]
    argv = [str(BIN_DIR / "openstack"), "--os-auth-url", auth["auth_url"], "--os-username", "src-user",
            "--os-password", "wrong", "--os-project-name", "src-project", "--os-user-domain-name", "Default",
            "--os-project-domain-name", "Default", "token", "issue"]
    env = {k: v for k, v in sim.env.items() if k != "OS_CLIENT_CONFIG_FILE"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "401" in proc.stderr, proc.stderr


def test_flavors(sim, flavor):
    assert flavor["name"] == "osc.tiny"
    assert (flavor["ram"], flavor["disk"], flavor["vcpus"]) == (256, 1, 1)
    assert flavor["os-flavor-access:is_public"] is True
    private = sim.osc(CLOUD, "flavor", "create", "--ram", "1024", "--disk", "10", "--vcpus", "2", "--private", "osc.private")
    assert private["os-flavor-access:is_public"] is False
    names = [f["Name"] for f in sim.osc(CLOUD, "flavor", "list")]
    assert "osc.tiny" in names and "osc.private" not in names
    names = [f["Name"] for f in sim.osc(CLOUD, "flavor", "list", "--all")]
    assert {"osc.tiny", "osc.private"} <= set(names)
    shown = sim.osc(CLOUD, "flavor", "show", "osc.private")
    assert shown["id"] == private["id"] and shown["ram"] == 1024


def test_images(sim, image, image_file):
    data = image_file.read_bytes()
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["disk_format"] == "raw" and image["container_format"] == "bare"
    assert image["visibility"] == "public"
    assert image["properties"]["os_distro"] == "cirros"
    listed = sim.osc(CLOUD, "image", "list")
    assert any(i["ID"] == image["id"] and i["Status"] == "active" for i in listed)
    stored = sim.data_file(CLOUD, "images", image["id"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    # The other cloud does not see it.
    assert not any(i["ID"] == image["id"] for i in sim.osc("dst", "image", "list"))


def test_network_subnet_port_security_group_router_floating_ip(sim, network):
    net, subnet = network
    assert net["name"] == "osc-net" and net["status"] == "ACTIVE"
    assert subnet["cidr"] == "192.168.50.0/24"
    assert subnet["gateway_ip"] == "192.168.50.1"
    assert subnet["allocation_pools"] == [{"start": "192.168.50.2", "end": "192.168.50.254"}]
    assert [n["Name"] for n in sim.osc(CLOUD, "network", "list", "--name", "osc-net")] == ["osc-net"]
    assert any(s["ID"] == subnet["id"] for s in sim.osc(CLOUD, "subnet", "list"))

    port = sim.osc(CLOUD, "port", "create", "--network", "osc-net", "--fixed-ip", "ip-address=192.168.50.40",
                   "--mac-address", "fa:16:3e:50:50:40", "osc-port")
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "192.168.50.40"}]
    assert port["mac_address"] == "fa:16:3e:50:50:40"
    assert port["status"] == "DOWN"
    with pytest.raises(OscError) as e:
        sim.osc(CLOUD, "port", "create", "--network", "osc-net", "--fixed-ip", "ip-address=192.168.50.40", "dup")
    assert "already allocated" in e.value.stderr
    ports = sim.osc(CLOUD, "port", "list", "--network", "osc-net")
    assert [p["Name"] for p in ports] == ["osc-port"]

    sg = sim.osc(CLOUD, "security", "group", "create", "--description", "ssh in", "osc-sg")
    assert sg["name"] == "osc-sg"
    assert len(sg["rules"]) == 2  # egress IPv4 and IPv6
    rule = sim.osc(CLOUD, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "--remote-ip", "0.0.0.0/0", "osc-sg")
    assert (rule["port_range_min"], rule["port_range_max"], rule["direction"]) == (22, 22, "ingress")
    groups = {g["Name"] for g in sim.osc(CLOUD, "security", "group", "list")}
    assert {"default", "osc-sg"} <= groups
    rules = sim.osc(CLOUD, "security", "group", "rule", "list", "osc-sg")
    assert len(rules) == 3

    ext = sim.osc(CLOUD, "network", "create", "--external", "osc-public")
    assert ext["router:external"] is True
    sim.osc(CLOUD, "subnet", "create", "--network", "osc-public", "--subnet-range", "127.66.0.0/24", "--no-dhcp", "osc-public-subnet")
    router = sim.osc(CLOUD, "router", "create", "osc-router")
    assert router["status"] == "ACTIVE"
    sim.osc(CLOUD, "router", "set", "--external-gateway", "osc-public", "osc-router", fmt=False)
    sim.osc(CLOUD, "router", "add", "subnet", "osc-router", "osc-subnet", fmt=False)
    router = sim.osc(CLOUD, "router", "show", "osc-router")
    assert router["external_gateway_info"]["network_id"] == ext["id"]
    assert router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"].startswith("127.66.0.")
    assert any(r["Name"] == "osc-router" for r in sim.osc(CLOUD, "router", "list"))

    fip = sim.osc(CLOUD, "floating", "ip", "create", "osc-public")
    assert fip["floating_ip_address"].startswith("127.66.0.")
    assert fip["status"] == "DOWN"
    sim.osc(CLOUD, "floating", "ip", "set", "--port", "osc-port", fip["id"], fmt=False)
    # `floating ip show` of OSC 7.2.1 fails on any Neutron ("Invalid formatter provided": its
    # port_details formatter is a plain function), so the association is checked with list.
    listed = sim.osc(CLOUD, "floating", "ip", "list", "--port", "osc-port", "--long")
    assert [(f["ID"], f["Fixed IP Address"], f["Port"], f["Status"]) for f in listed] == [
        (fip["id"], "192.168.50.40", port["id"], "ACTIVE")]
    assert any(f["ID"] == fip["id"] for f in sim.osc(CLOUD, "floating", "ip", "list"))
    sim.osc(CLOUD, "floating", "ip", "delete", fip["id"], fmt=False)
    sim.osc(CLOUD, "port", "delete", "osc-port", fmt=False)


def test_keypairs(sim, keypair):
    kp, _ = keypair
    assert kp["name"] == "osc-key"
    assert kp["type"] == "ssh"
    assert len(kp["fingerprint"].split(":")) == 16
    generated = sim.osc(CLOUD, "keypair", "create", "osc-generated", fmt=False)
    assert "PRIVATE KEY" in generated
    names = {k["Name"] for k in sim.osc(CLOUD, "keypair", "list")}
    assert {"osc-key", "osc-generated"} <= names
    sim.osc(CLOUD, "keypair", "delete", "osc-generated", fmt=False)
    assert "osc-generated" not in {k["Name"] for k in sim.osc(CLOUD, "keypair", "list")}


def test_server_from_image_lifecycle(sim, flavor, image, network, keypair, image_file):
    server = sim.osc(CLOUD, "server", "create", "--flavor", "osc.tiny", "--image", "osc-image", "--network", "osc-net",
                     "--key-name", "osc-key", "--property", "role=web", "--wait", "osc-vm")
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-STS:vm_state"] == "active"
    assert server["key_name"] == "osc-key"
    assert server["properties"] == {"role": "web"}
    assert server["flavor"]["original_name"] == "osc.tiny"
    assert image["id"] in server["image"]
    assert server["addresses"]["osc-net"][0].startswith("192.168.50.")
    listed = sim.osc(CLOUD, "server", "list")
    assert [(s["Name"], s["Status"]) for s in listed if s["ID"] == server["id"]] == [("osc-vm", "ACTIVE")]
    shown = sim.osc(CLOUD, "server", "show", "osc-vm")
    assert shown["OS-EXT-SRV-ATTR:instance_name"].startswith("instance-")
    assert shown["OS-EXT-AZ:availability_zone"] == "nova"
    assert shown["security_groups"] == [{"name": "default"}]

    sim.osc(CLOUD, "server", "stop", "osc-vm", fmt=False)
    v = wait_status(sim, "server", "osc-vm", "SHUTOFF")
    assert v["OS-EXT-STS:power_state"] == 4
    sim.osc(CLOUD, "server", "start", "osc-vm", fmt=False)
    wait_status(sim, "server", "osc-vm", "ACTIVE")

    vol = sim.osc(CLOUD, "volume", "create", "--size", "1", "osc-data")
    wait_status(sim, "volume", vol["id"], "available")
    att = sim.osc(CLOUD, "server", "add", "volume", "osc-vm", "osc-data")
    assert att["Device"] == "/dev/vdb"
    v = wait_status(sim, "volume", "osc-data", "in-use")
    assert v["attachments"][0]["server_id"] == server["id"]
    assert sim.osc(CLOUD, "server", "show", "osc-vm")["volumes_attached"][0]["id"] == vol["id"]
    sim.osc(CLOUD, "server", "remove", "volume", "osc-vm", "osc-data", fmt=False)
    v = wait_status(sim, "volume", "osc-data", "available")
    assert v["attachments"] == []

    snap = sim.osc(CLOUD, "server", "image", "create", "--name", "osc-vm-snap", "--wait", "osc-vm")
    assert snap["status"] == "active"
    assert snap["size"] == image_file.stat().st_size
    assert snap["properties"]["image_type"] == "snapshot"
    assert snap["properties"]["instance_uuid"] == server["id"]
    assert snap["properties"]["os_distro"] == "cirros"

    sim.osc(CLOUD, "server", "delete", "--wait", "osc-vm", fmt=False)
    assert not any(s["ID"] == server["id"] for s in sim.osc(CLOUD, "server", "list"))
    sim.osc(CLOUD, "volume", "delete", "osc-data", fmt=False)


def test_server_from_volume(sim, flavor, image, network):
    vol = sim.osc(CLOUD, "volume", "create", "--image", "osc-image", "--size", "1", "--bootable", "osc-boot")
    vol = wait_status(sim, "volume", vol["id"], "available")
    assert vol["bootable"] == "true"
    server = sim.osc(CLOUD, "server", "create", "--flavor", "osc.tiny", "--volume", "osc-boot", "--network", "osc-net",
                     "--wait", "osc-bfv")
    assert server["status"] == "ACTIVE"
    assert "booted from volume" in server["image"]
    assert server["volumes_attached"][0]["id"] == vol["id"]
    v = wait_status(sim, "volume", "osc-boot", "in-use")
    assert v["attachments"][0]["device"] == "/dev/vda"
    # Booting from an image into a new volume (OSC's --boot-from-volume).
    server2 = sim.osc(CLOUD, "server", "create", "--flavor", "osc.tiny", "--image", "osc-image", "--boot-from-volume", "1",
                      "--network", "osc-net", "--wait", "osc-bfv2")
    assert server2["status"] == "ACTIVE"
    root = server2["volumes_attached"][0]["id"]
    assert sim.osc(CLOUD, "volume", "show", root)["volume_image_metadata"]["image_id"] == image["id"]
    sim.osc(CLOUD, "server", "delete", "--wait", "osc-bfv", "osc-bfv2", fmt=False)
    v = wait_status(sim, "volume", "osc-boot", "available")
    assert v["attachments"] == []
    sim.osc(CLOUD, "volume", "delete", "osc-boot", root, fmt=False)


def test_volumes_and_snapshots(sim, image, image_file):
    data = image_file.read_bytes()
    vol = sim.osc(CLOUD, "volume", "create", "--size", "2", "--description", "plain", "--property", "a=b", "osc-vol")
    assert vol["status"] == "creating"
    assert vol["size"] == 2
    vol = wait_status(sim, "volume", vol["id"], "available")
    assert vol["properties"] == {"a": "b"}
    assert vol["type"] == "__DEFAULT__"
    assert vol["bootable"] == "false"
    listed = sim.osc(CLOUD, "volume", "list")
    assert any(v["ID"] == vol["id"] and v["Status"] == "available" and v["Size"] == 2 for v in listed)

    from_image = sim.osc(CLOUD, "volume", "create", "--image", "osc-image", "--size", "1", "osc-from-image")
    from_image = wait_status(sim, "volume", from_image["id"], "available")
    assert from_image["volume_image_metadata"]["image_name"] == "osc-image"
    assert from_image["volume_image_metadata"]["os_distro"] == "cirros"
    f = sim.data_file(CLOUD, "volumes", from_image["id"])
    raw = f.read_bytes()
    assert len(raw) == 1 << 30
    assert hashlib.sha256(raw[: len(data)]).hexdigest() == hashlib.sha256(data).hexdigest()
    assert os.stat(f).st_blocks * 512 < 16 << 20, "volume from image is not sparse"

    snap = sim.osc(CLOUD, "volume", "snapshot", "create", "--volume", "osc-from-image", "osc-snap")
    assert snap["status"] == "creating"
    snap = wait_status(sim, "volume snapshot", snap["id"], "available")
    assert snap["volume_id"] == from_image["id"]
    assert any(s["ID"] == snap["id"] and s["Status"] == "available" for s in sim.osc(CLOUD, "volume", "snapshot", "list"))
    from_snap = sim.osc(CLOUD, "volume", "create", "--snapshot", "osc-snap", "osc-from-snap")
    from_snap = wait_status(sim, "volume", from_snap["id"], "available")
    assert from_snap["snapshot_id"] == snap["id"]
    assert from_snap["size"] == 1
    raw2 = sim.data_file(CLOUD, "volumes", from_snap["id"]).read_bytes()
    assert hashlib.sha256(raw2[: len(data)]).hexdigest() == hashlib.sha256(data).hexdigest()

    # A volume with snapshots cannot be deleted (Cinder's 400).
    with pytest.raises(OscError) as e:
        sim.osc(CLOUD, "volume", "delete", "osc-from-image", fmt=False)
    assert "dependent snapshots" in e.value.stderr
    sim.osc(CLOUD, "volume", "snapshot", "delete", "osc-snap", fmt=False)
    wait_until("snapshot gone", lambda: not any(s["ID"] == snap["id"] for s in sim.osc(CLOUD, "volume", "snapshot", "list")))
    sim.osc(CLOUD, "volume", "delete", "osc-vol", "osc-from-image", "osc-from-snap", fmt=False)
    gone = {vol["id"], from_image["id"], from_snap["id"]}
    wait_until("volumes gone", lambda: not gone & {v["ID"] for v in sim.osc(CLOUD, "volume", "list")})
    assert not sim.data_file(CLOUD, "volumes", vol["id"]).exists()


def test_request_counts_and_injected_fault(sim):
    sim.admin("POST", "/requests/reset")
    sim.osc("dst", "server", "list", "--name", "^no-such-server$")
    counts = sim.admin("GET", "/requests")
    assert counts["dst"]["GET /compute/v2.1/servers/detail"] == 1, counts
    sim.admin("POST", "/faults", {"kind": "http", "method": "GET", "path": "^/compute/v2.1/servers/detail$", "cloud": "dst", "status": 503, "message": "nova is away"})
    with pytest.raises(OscError) as e:
        sim.osc("dst", "server", "list", "--name", "^no-such-server$")
    assert "nova is away" in e.value.stderr
    assert sim.osc("dst", "server", "list", "--name", "^no-such-server$") == []
    sim.admin("DELETE", "/faults")


@pytest.mark.parametrize("cloud", ["src-oidc", "src-mfa"])
def test_keystoneauth_federated_and_multifactor_login(sim, cloud):
    """keystoneauth's own v3oidcpassword (discovery document, password grant, OS-FEDERATION, rescope) and
    v3multifactor (password and TOTP in one request) accept the simulator's clouds.yaml entries: what osm's
    client does against the simulator is what the reference client does."""
    token = sim.osc(cloud, "token", "issue")
    project = sim.osc(cloud, "project", "show", token["project_id"])
    assert project["name"] == "src-project"
    assert isinstance(sim.osc(cloud, "server", "list"), list)
