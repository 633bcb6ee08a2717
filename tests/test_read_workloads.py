"""read_workloads through real ansible-playbook."""

import shutil

from lib.ansible import REPO, run_tasks

SAMPLE = REPO / "crates" / "workload" / "tests" / "data" / "workloads-1.0.1.yml"


def workloads(tmp_path, text=None):
    path = tmp_path / "workloads.yml"
    if text is None:
        shutil.copy(SAMPLE, path)
    else:
        path.write_text(text)
    return path


def test_reads_a_good_file(tmp_path):
    path = workloads(tmp_path)
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {path}
          register: all
        """, registers=["all"])
    assert run.rc == 0, run
    r = run.results["all"]
    assert r["changed"] is False
    assert r["names"] == ["app-01", "db-01"]
    assert r["total"] == 2
    assert r["workloads"][0]["params"]["flavor_ref"]["name"] == "m1.small"
    assert r["workloads"][1]["_migration_params"]["port_creation_mode"] == "neutron"


def test_filter_exact_and_regex(tmp_path):
    path = workloads(tmp_path)
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {path}
            os_migrate_workloads_filter: [db-01]
          register: exact
        - osm.workloads.read_workloads:
            path: {path}
            filters: [{{regex: '^app'}}]
          register: regex
        - osm.workloads.read_workloads:
            path: {path}
            filters: []
          register: nothing
        """, registers=["exact", "regex", "nothing"])
    assert run.rc == 0, run
    assert run.results["exact"]["names"] == ["db-01"]
    assert run.results["regex"]["names"] == ["app-01"]
    assert run.results["nothing"]["names"] == []


def test_check_mode(tmp_path):
    path = workloads(tmp_path)
    before = path.read_bytes()
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {path}
          register: checked
        """, registers=["checked"], check=True)
    assert run.rc == 0, run
    assert run.results["checked"]["names"] == ["app-01", "db-01"]
    assert run.results["checked"]["changed"] is False
    assert path.read_bytes() == before


def test_bad_option_fails_naming_it(tmp_path):
    path = workloads(tmp_path)
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {path}
            fliters: [db-01]
          register: bad
          ignore_errors: true
        """, registers=["bad"])
    r = run.results["bad"]
    assert r["failed"] is True
    assert "fliters" in r["msg"] and "filters (os_migrate_workloads_filter), path" in r["msg"]


def test_malformed_file_names_resource_and_key(tmp_path):
    text = SAMPLE.read_text().replace("    name: db-01\n", "    name: db-01\n    flavor_ref: null\n", 1)
    text = text.replace("    flavor_ref:\n      domain_name: '%auth%'\n      name: m1.small\n      project_name: '%auth%'\n    floating_ips: []", "    floating_ips: []", 1)
    path = workloads(tmp_path, text)
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {path}
          register: bad
          ignore_errors: true
        """, registers=["bad"])
    r = run.results["bad"]
    assert r["failed"] is True
    assert "resource 'db-01' (resources[1])" in r["msg"], r["msg"]
    assert "params.flavor_ref" in r["msg"], r["msg"]


def test_missing_file_is_reported(tmp_path):
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {tmp_path}/nope.yml
          register: bad
          ignore_errors: true
        """, registers=["bad"])
    assert run.results["bad"]["failed"] is True
    assert "nope.yml" in run.results["bad"]["msg"]


def test_secrets_given_to_a_module_never_appear_in_its_output(tmp_path):
    # The password is also a piece of the error message (the unreachable auth URL's host and port),
    # so the message shows it unless masking replaces it wherever it appears, as Ansible does.
    secret = "127.0.0.1:9"
    run = run_tasks(tmp_path, f"""
        - osm.workloads.os_workloads_info:
            auth:
              auth_url: http://{secret}/v3
              username: alice
              password: "{secret}"
              project_name: p
          register: failed_auth
          ignore_errors: true
        """, registers=["failed_auth"], args=("-vvv",))
    r = run.results["failed_auth"]
    assert r["failed"] is True
    assert "********" in r["msg"], r["msg"]
    assert secret not in run.output and secret not in str(r)
