"""Upstream OS Migrate's variables: the table the preflight reads (roles/common/files/upstream_variables.yml)
is complete for osm's roles and matches the user guide, and the preflight at the start of each playbook
refuses what osm does not honour and warns about typos, before anything touches a cloud."""

import re

import pytest
import yaml

from lib.ansible import REPO, run_playbook

TABLE = yaml.safe_load((REPO / "roles" / "common" / "files" / "upstream_variables.yml").read_text())
PLAYBOOKS = ["export_workloads", "import_workloads", "deploy_conversion_hosts", "delete_conversion_hosts",
             "os_migrate_leftovers"]
# Words that look like variables in osm's roles but are not: group and module names, name values,
# and the prefixes of names built with lookup('vars', 'os_migrate_' ~ side ~ ...).
NOT_VARIABLES = {"os_migrate_conv", "os_migrate_conv_src", "os_migrate_conv_dst", "os_migrate_conversion_hosts",
                 "os_migrate_workloads", "os_migrate_preflight", "os_migrate_conversion_",
                 "os_migrate_migrator", "os_migrate_lanes", "os_migrate_workload_queue",
                 "os_migrate_src_conversion_", "os_migrate_dst_conversion_"}


def osm_identifiers():
    text = "".join(p.read_text() for p in [*REPO.glob("roles/*/*/*.yml"), *REPO.glob("playbooks/*.yml")]
                   if p.name != "upstream_variables.yml")
    return set(re.findall(r"\bos_migrate_[a-z0-9_]+", text)) - NOT_VARIABLES


def test_every_variable_of_osm_is_known():
    known = set(TABLE["osm"]) | set(TABLE["upstream"])
    assert sorted(osm_identifiers() - known) == [], "add them to the osm list of upstream_variables.yml"
    assert sorted(set(TABLE["osm"]) - osm_identifiers()) == [], "no role uses them any more"
    assert not set(TABLE["osm"]) & set(TABLE["upstream"])


def test_every_entry_says_what_to_do():
    for name, e in TABLE["upstream"].items():
        assert e["status"] in ("honoured", "refused", "ignored", "other", "internal"), name
        if e["status"] in ("refused", "ignored", "other"):
            assert e.get("note"), f"{name}: a {e['status']} variable says why and what to use instead"
        if "osm" in e:
            assert e["osm"] in TABLE["osm"], f"{name}: {e['osm']} is not an osm variable"
        if e["status"] == "honoured" and "osm" not in e:
            assert name in osm_identifiers(), f"{name} is honoured, so a role of osm reads it"


def user_guide_table():
    """The rows of the user guide's table of upstream variables: {name: status}."""
    text = (REPO / "docs" / "user-guide.md").read_text()
    section = text.split("## 10. Upstream OS Migrate variables")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| (`os_migrate_[^|]+) \| (\w+) \|", line)
        if m:
            for name in re.findall(r"`(os_migrate_[a-z0-9_]+)`", m.group(1)):
                rows[name] = m.group(2)
    return rows


def test_the_user_guide_lists_every_upstream_variable_with_its_status():
    rows = user_guide_table()
    documented = {n: e["status"] for n, e in TABLE["upstream"].items() if e["status"] != "internal"}
    assert {n: rows.get(n) for n in documented} == documented
    assert sorted(set(rows) - set(documented)) == []


def run_book(tmp_path, name, extra_vars):
    return run_playbook(tmp_path, REPO / "playbooks" / f"{name}.yml", extra_vars=extra_vars,
                        env={"OS_CLIENT_CONFIG_FILE": str(tmp_path / "no-clouds.yaml")}, timeout=300)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_refused_upstream_variables_stop_every_playbook_first(playbook, tmp_path):
    run = run_book(tmp_path, playbook, {
        "os_migrate_data_dir": str(tmp_path / "data"),
        "os_migrate_conversion_rhsm_username": "ops",
        "os_migrate_link_conversion_hosts": False,
        "os_migrate_src_block_storage_api_version": "2",
        "os_migrate_reboot_conversion_hosts": False,
        "os_migrate_dst_block_storage_api_version": 3,
    })
    assert run.rc != 0
    out = run.output
    failed_task = out.split("fatal:")[0].rsplit("TASK [", 1)[1].split("]")[0]
    assert failed_task == "osm.workloads.common : Check the os_migrate_* variables", failed_task
    assert "upstream OS Migrate variables that osm does not honour" in out
    for refused in ("os_migrate_conversion_rhsm_username: osm does not register conversion hosts",
                    "os_migrate_link_conversion_hosts: osm's copy needs its link",
                    "os_migrate_src_block_storage_api_version: osm speaks Block Storage API v3 only"):
        assert refused in out, refused
    for accepted in ("os_migrate_reboot_conversion_hosts:", "os_migrate_dst_block_storage_api_version:"):
        assert accepted not in out, f"{accepted} has the value osm honours"
    assert not (tmp_path / "data").exists(), "nothing happened before the preflight"


def test_typos_and_other_playbooks_variables_are_warned_about(tmp_path):
    run = run_book(tmp_path, "export_workloads", {
        "os_migrate_data_dir": str(tmp_path / "data"),
        "os_migrate_workload_paralelism": 2,
        "os_migrate_networks_filter": [{"regex": ".*"}],
        "os_migrate_src_conversion_manage_fip": False,
    })
    out = " ".join(run.output.split())
    assert ("os_migrate_workload_paralelism is not a variable of osm or of upstream OS Migrate (did you mean "
            "os_migrate_workload_parallelism?)") in out
    assert "os_migrate_networks_filter has no effect in osm: a variable of upstream's other playbooks" in out
    assert "os_migrate_src_conversion_manage_fip is not" not in out and "manage_fip has no effect" not in out
    # The preflight passed; the export then fails on the cloud that is not there.
    assert "Check the os_migrate_* variables" in out and run.rc != 0
