"""Speed: benchmarks list whole projects, so a big listing must stay fast."""

import time


from cloudsim_helpers import wait_until


def test_listing_500_servers_with_detail_is_fast(sim):
    """500 servers with detail come back in under a second (the state lock is not a bottleneck)."""
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
    start = time.monotonic()
    r = c.session.get(endpoint + "/servers/detail", headers=headers)
    took = time.monotonic() - start
    servers = r.json()["servers"]
    assert len(servers) == 500
    assert all(s["status"] == "ACTIVE" and s["addresses"]["bulk"] for s in servers)
    assert took < 1.0, f"listing took {took:.3f}s"
