"""Big projects: benchmarks list whole projects (their speed is measured by `make bench`, export)."""

from cloudsim_helpers import wait_until


def test_listing_500_servers_with_detail(sim):
    """500 servers boot concurrently and come back, with their addresses, in one detailed listing."""
    c = sim.conn("dst")
    flavor = c.compute.create_flavor(name="bulk", ram=64, vcpus=1, disk=0)
    image = c.image.create_image(name="bulk", data=b"x", disk_format="raw", container_format="bare")
    net = c.network.create_network(name="bulk")
    c.network.create_subnet(network_id=net.id, cidr="10.30.0.0/22", ip_version=4)
    endpoint = c.compute.get_endpoint()
    headers = {"OpenStack-API-Version": "compute 2.96"}
    for i in range(500):
        body = {"server": {"name": f"bulk-{i:03}", "flavorRef": flavor.id, "imageRef": image.id,
                           "networks": [{"uuid": net.id}]}}
        r = c.session.post(endpoint + "/servers", json=body, headers=headers)
        assert r.status_code == 202, r.text
    wait_until("500 ACTIVE", lambda: not c.session.get(endpoint + "/servers?status=BUILD", headers=headers).json()["servers"],
               timeout=120, interval=0.5)
    r = c.session.get(endpoint + "/servers/detail", headers=headers)
    # The simulator is shared with other tests of this worker: count this test's servers.
    servers = [s for s in r.json()["servers"] if s["name"].startswith("bulk-")]
    assert len(servers) == 500
    assert all(s["status"] == "ACTIVE" and s["addresses"]["bulk"] for s in servers)
