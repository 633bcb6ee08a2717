"""The strategy plugin osm.workloads.lanes, which import_workloads runs its lanes with: hosts move as
under the free strategy, and the controller waits for results instead of looking at every host every
millisecond. Real ansible-playbook runs of a small play on local hosts."""

import json
import subprocess
import textwrap

from lib.ansible import REPO, VENV_BIN, ansible_env

# The controller's own CPU time (not its workers'), written by a callback in the controller.
CALLBACK = '''
import json, os, resource
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "controller_cpu"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        r = resource.getrusage(resource.RUSAGE_SELF)
        with open(os.environ["CONTROLLER_CPU_OUT"], "w") as f:
            json.dump({"cpu_s": r.ru_utime + r.ru_stime}, f)
'''

# As import_workloads' lanes play: every workload is a host of the play, and only the lanes work.
# Lane h1 waits on a slow task while h2 goes through several quick ones: under a free strategy h2
# finishes all of them before h1's slow one ends; under linear it could not start its second.
PLAY = """
- hosts: all
  gather_facts: false
  strategy: STRATEGY
  tasks:
    - name: Work
      ansible.builtin.include_tasks: work.yml
      loop: "{{ range(0, 3) | list }}"
      when: inventory_hostname in groups.lanes
"""

WORK = """
- name: A step
  ansible.builtin.shell: |
    echo "$(date +%s.%N) {{ inventory_hostname }} start {{ item }}" >> LOG
    sleep {{ 3 if inventory_hostname == 'h1' else 0.2 }}
    echo "$(date +%s.%N) {{ inventory_hostname }} end {{ item }}" >> LOG
  changed_when: false
"""


def run(tmp_path, strategy):
    d = tmp_path / strategy.replace(".", "_")
    (d / "cb").mkdir(parents=True)
    (d / "cb" / "controller_cpu.py").write_text(CALLBACK)
    log = d / "steps.log"
    (d / "play.yml").write_text(PLAY.replace("STRATEGY", strategy))
    (d / "work.yml").write_text(WORK.replace("LOG", str(log)))
    (d / "inv.ini").write_text(textwrap.dedent(f"""\
        [lanes]
        h1
        h2
        [others]
        o[1:20]
        [all:vars]
        ansible_connection=local
        ansible_python_interpreter={VENV_BIN / 'python'}
        """))
    env = ansible_env(d, {"ANSIBLE_CALLBACK_PLUGINS": str(d / "cb"), "ANSIBLE_CALLBACKS_ENABLED": "controller_cpu",
                          "CONTROLLER_CPU_OUT": str(d / "cpu.json")})
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(d / "inv.ini"), str(d / "play.yml")],
                          cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    steps = {}
    for line in log.read_text().splitlines():
        at, host, what, item = line.split()
        steps[(host, what, int(item))] = float(at)
    return steps, json.loads((d / "cpu.json").read_text())["cpu_s"]


def test_lanes_move_independently_and_the_controller_waits_for_results(tmp_path):
    assert (REPO / "plugins" / "strategy" / "lanes.py").exists()
    steps, lanes_cpu = run(tmp_path, "osm.workloads.lanes")
    # As under free: the quick lane did all its steps while the slow lane was in its first.
    assert steps[("h2", "end", 2)] < steps[("h1", "end", 0)], steps
    assert len(steps) == 12, steps
    _, free_cpu = run(tmp_path, "free")
    # Over the same 9 s of waiting, the free strategy's controller looks at both hosts every
    # millisecond; this one only when something happened.
    assert lanes_cpu < free_cpu / 2, f"controller CPU: lanes {lanes_cpu:.2f} s, free {free_cpu:.2f} s"
