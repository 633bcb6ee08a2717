"""The action every osm.workloads module runs under (plugins/plugin_utils/in_place.py): on the controller
itself, the module's executable runs where the collection keeps it, without Ansible's temporary
directory, copy, chmod and rm; anywhere else Ansible runs it its own way. Real ansible-playbook runs."""

import json
import os

from lib.ansible import REPO, module_binaries, run_tasks

TASK = """
- name: A module of the collection
  osm.workloads.os_migrate_workload_queue:
    action: init
    data_dir: "{data_dir}"
    pairs: [a]
    per_pair: 1
    workloads: []
  register: made
  {extra}
"""


def queue(tmp_path, extra=""):
    data_dir = tmp_path / "data"
    run = run_tasks(tmp_path, TASK.format(data_dir=data_dir, extra=extra), registers=["made"], args=("-vvv",))
    assert run.rc == 0, run
    made = run.results["made"]
    # The module really ran: the queue it made is on disk, named by the run id it returned.
    queue_file = data_dir / "queue" / f"{made['run_id']}.json"
    assert json.loads(queue_file.read_text())
    return run


def task_output(run, name):
    """The -vvv output of the task `name`, up to the next task."""
    return run.output.split(f"TASK [{name}]", 1)[1].split("TASK [", 1)[0]


def test_a_module_on_the_controller_runs_in_place(tmp_path):
    run = queue(tmp_path)
    out = task_output(run, "A module of the collection")
    # Ansible's own way shows each step at -vvv: mkdir of its temporary directory, the module copied
    # there as AnsiballZ_<name> (PUT), chmod, the run and rm. None of them happened for the module.
    assert "EXEC /bin/sh" not in out and " PUT " not in out, out
    # The arguments' file (credentials, for the import's modules) is gone with the module.
    local = tmp_path / "ansible-local"
    assert not list(local.rglob("osm-module-*")), list(local.rglob("*"))


def test_a_task_environment_gets_ansibles_own_way(tmp_path):
    # An environment for the task is Ansible's to apply (it writes it into the module's command line).
    run = queue(tmp_path, extra='environment: {OSM_PROBE: "1"}')
    out = task_output(run, "A module of the collection")
    assert "OSM_PROBE=1" in out and "AnsiballZ_os_migrate_workload_queue" in out, out


def test_a_failure_in_place_is_the_modules_own(tmp_path):
    run = run_tasks(tmp_path, """
        - name: A wrong option
          osm.workloads.os_migrate_workload_queue:
            action: init
            data_dir: "{d}"
            no_such_option: 1
          register: made
          ignore_errors: true
        """.format(d=tmp_path / "data"), registers=["made"], args=("-vvv",))
    made = run.results["made"]
    assert made["failed"] is True
    assert "no_such_option" in made["msg"]
    assert "EXEC /bin/sh" not in task_output(run, "A wrong option")


def test_every_module_has_the_action():
    action = REPO / "plugins" / "action"
    modules = sorted(p.name for p in module_binaries())
    assert modules
    for m in modules:
        link = action / f"{m}.py"
        assert link.is_symlink() and os.readlink(link) == "../plugin_utils/in_place.py", link
    assert sorted(p.stem for p in action.iterdir()) == modules
