"""Running real ansible-playbook against the collection in this checkout, and reading task results."""

import json
import os
import subprocess
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def ansible_env(tmp_path, extra=None):
    """Environment for ansible-playbook: the checkout as collection path, private temp dirs."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(REPO),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "1",
        "ANSIBLE_PYTHON_INTERPRETER": str(VENV_BIN / "python"),
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
    })
    if extra:
        env.update(extra)
    return env


class PlaybookRun:
    """The outcome of one ansible-playbook run: exit code, output, and the registered results."""

    def __init__(self, rc, output, results):
        self.rc = rc
        self.output = output
        self.results = results

    def failures(self):
        """The lines that say what failed (Ansible's fatal results and failed-task messages)."""
        lines = self.output.splitlines()
        keep = [i for i, l in enumerate(lines) if l.startswith(("fatal:", "failed:", "[ERROR]")) or '"msg":' in l]
        return "\n".join(lines[i][:3000] for i in keep)

    def __repr__(self):
        return f"PlaybookRun(rc={self.rc})\n--- failures ---\n{self.failures()}\n--- end of output ---\n{self.output[-3000:]}"


def run_tasks(tmp_path, tasks, registers=(), extra_vars=None, env=None, check=False, timeout=900, args=()):
    """Runs `tasks` (YAML text of a task list) in a play on localhost; each name in `registers` is a
    variable the tasks register, dumped to JSON after the play (also when a task failed, since the
    dump runs in an `always`)."""
    tmp_path = Path(tmp_path)
    out = tmp_path / "results.json"
    dump = "{" + ", ".join(f"'{r}': {r} | default(None)" for r in registers) + "}"
    play = textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - block:
        {tasks}
              always:
                - ansible.builtin.copy:
                    content: "{{{{ {dump} | to_json }}}}"
                    dest: "{out}"
                    mode: "0600"
                  check_mode: false
        """).format(tasks=textwrap.indent(textwrap.dedent(tasks), " " * 10), dump=dump, out=out)
    playbook = tmp_path / "play.yml"
    playbook.write_text(play)
    return run_playbook(tmp_path, playbook, extra_vars=extra_vars, env=env, check=check, timeout=timeout,
                        args=args, results_file=out)


def run_playbook(tmp_path, playbook, extra_vars=None, env=None, check=False, timeout=1800, args=(),
                 results_file=None, inventory="localhost,"):
    tmp_path = Path(tmp_path)
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, "-c", "local", str(playbook)]
    if extra_vars:
        vars_file = tmp_path / f"extra-vars-{abs(hash(json.dumps(extra_vars, sort_keys=True, default=str)))}.json"
        vars_file.write_text(json.dumps(extra_vars, default=str))
        cmd += ["-e", f"@{vars_file}"]
    if check:
        cmd.append("--check")
    cmd += list(args)
    proc = subprocess.run(cmd, cwd=tmp_path, env=ansible_env(tmp_path, env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    (tmp_path / f"{Path(playbook).stem}.out").write_text(proc.stdout)
    results = {}
    if results_file and Path(results_file).exists():
        results = json.loads(Path(results_file).read_text())
    return PlaybookRun(proc.returncode, proc.stdout, results)


def module_binaries():
    """The built module binaries (extensionless executables next to their sidecar docs)."""
    mods = REPO / "plugins" / "modules"
    return sorted(p for p in mods.iterdir() if p.is_file() and p.suffix == "" and os.access(p, os.X_OK))


def sidecar(module):
    return yaml.safe_load((REPO / "plugins" / "modules" / f"{module}.yml").read_text())
