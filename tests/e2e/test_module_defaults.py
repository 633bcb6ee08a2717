"""openstack.cloud habits that operators bring: `module_defaults` for the action group
`osm.workloads.openstack`, and the common options `wait`, `timeout`, `sdk_log_path` and `sdk_log_level`."""

import yaml

from lib.ansible import run_tasks
from lib.scenario import boot_from_image


def test_group_defaults_set_the_connection_and_the_request_log(clouds, tmp_path):
    w = clouds
    boot_from_image(w.src.conn, "md-web", w.src, w.src.cirros, [{"uuid": w.src.app_net.id}], stop=False)
    log = tmp_path / "sdk.log"
    run = run_tasks(tmp_path, f"""
        - name: Every osm.workloads.openstack module below talks to the source cloud
          module_defaults:
            group/osm.workloads.openstack:
              cloud: src
              wait: true
              timeout: 300
              sdk_log_path: {log}
              sdk_log_level: DEBUG
          block:
            - name: List (timeout and wait are accepted, with no effect)
              osm.workloads.os_workloads_info:
                filters: [md-web]
              register: listed
            - name: Stop and wait
              osm.workloads.os_server_action:
                server: md-web
                action: stop
              register: stopped
            - name: Export
              osm.workloads.export_workload:
                path: {tmp_path}/workloads.yml
                name: md-web
              register: exported
        """, registers=["listed", "stopped", "exported"], env=w.sim.env)
    assert run.rc == 0, run
    assert run.results["listed"]["names"] == ["md-web"]
    assert run.results["stopped"]["status"] == "SHUTOFF"
    assert run.results["exported"]["exported"] == ["md-web"]

    text = log.read_text()
    assert "/auth/tokens -> 201" in text, text
    assert "/action -> 202" in text and 'body: {"os-stop":null}' in text, text
    password = yaml.safe_load(w.sim.clouds_yaml.read_text())["clouds"]["src"]["auth"]["password"]
    assert password not in text


def test_wait_false_is_refused_where_the_module_must_wait(tmp_path):
    run = run_tasks(tmp_path, """
        - name: A conversion host cannot be returned before it is ACTIVE
          osm.workloads.os_conversion_host:
            cloud: src
            name: conv
            state: absent
            wait: false
          register: host
          ignore_errors: true
        - name: Leftovers are removed one after the other
          osm.workloads.os_migrate_leftovers:
            cloud: src
            state: absent
            wait: false
          register: leftovers
          ignore_errors: true
        """, registers=["host", "leftovers"])
    assert run.rc == 0, run
    for name in ("host", "leftovers"):
        res = run.results[name]
        assert res["failed"] and "option 'wait': false is not supported here" in res["msg"], res
