"""The collection as the Ansible ecosystem's own tools see it: galaxy-importer (what Galaxy and
Automation Hub run on upload), `ansible-doc -l`, `ansible-test sanity`, `ansible-lint --profile
production`, antsibull-changelog, and every module's documented EXAMPLES held to the module's options
(ansible-lint cannot read the options of a binary module)."""

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lib.ansible import REPO, VENV_BIN, ansible_env, run_playbook, run_tasks, sidecar

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.yml"))
SAMPLE = REPO / "crates" / "workload" / "tests" / "data" / "workloads-1.0.1.yml"


def tool(name):
    """A tool of the test virtualenv; missing, the test fails (make test installs them)."""
    path = VENV_BIN / name
    assert path.exists(), f"{name} is not installed in .venv: run scripts/bootstrap.sh test"
    return str(path)


def tool_env(tmp_path, extra=None):
    env = ansible_env(tmp_path, extra)
    env["NO_COLOR"] = "1"
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    printed = subprocess.run([str(REPO / "scripts" / "collection.sh"), str(out)], cwd=REPO, stdout=subprocess.PIPE,
                             text=True, check=True, timeout=600).stdout
    return REPO / printed.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """The tarball installed as ansible-galaxy installs it: <root>/ansible_collections/osm/workloads."""
    root = tmp_path_factory.mktemp("installed")
    subprocess.run([tool("ansible-galaxy"), "collection", "install", "-p", str(root), str(tarball)], check=True,
                   stdout=subprocess.PIPE, timeout=300, env=tool_env(root, {"ANSIBLE_COLLECTIONS_PATH": str(root)}))
    return root / "ansible_collections" / "osm" / "workloads"


def test_galaxy_importer_accepts_the_tarball_and_documents_every_module(tarball, tmp_path):
    # ansible-test in a container is off (no container engine in CI); tests/sanity runs it below.
    # Its ansible-lint pass is off too: test_ansible_lint_production runs the stricter profile.
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text("[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = False\n")
    proc = subprocess.run([str(VENV_BIN / "python"), "-m", "galaxy_importer.main", str(tarball)], cwd=tmp_path,
                          env=tool_env(tmp_path, {"GALAXY_IMPORTER_CONFIG": str(config)}),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout
    assert "Importer processing completed successfully" in proc.stdout, proc.stdout
    problems = [l for l in proc.stdout.splitlines() if l.startswith(("ERROR", "WARNING"))]
    assert not problems, proc.stdout

    result = json.loads((tmp_path / "importer_result.json").read_text())
    assert result["metadata"]["version"] == yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    docs = {c["content_name"]: c for c in result["docs_blob"]["contents"] if c["content_type"] == "module"}
    assert sorted(docs) == MODULES
    for m in MODULES:
        strings = docs[m]["doc_strings"]
        assert strings, f"Galaxy would show no documentation for {m}"
        assert strings["doc"]["short_description"] == sidecar(m)["DOCUMENTATION"]["short_description"]
        assert strings["doc"]["options"] and strings["return"] and strings["examples"].strip(), m
    roles = {c["content_name"] for c in result["docs_blob"]["contents"] if c["content_type"] == "role"}
    assert roles == {p.name for p in (REPO / "roles").iterdir()}


def test_ansible_doc_lists_every_module(tmp_path):
    proc = subprocess.run([tool("ansible-doc"), "-t", "module", "-l", "osm.workloads", "--json"], env=tool_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True, timeout=300)
    assert sorted(json.loads(proc.stdout)) == [f"osm.workloads.{m}" for m in MODULES]


def test_ansible_doc_documents_the_inventory_plugin(tmp_path):
    proc = subprocess.run([tool("ansible-doc"), "-t", "inventory", "osm.workloads.workloads", "--json"],
                          env=tool_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True,
                          timeout=300)
    doc = json.loads(proc.stdout)["osm.workloads.workloads"]["doc"]
    assert {"data_dir", "filter", "conversion_host_pairs", "pin_pairs"} <= set(doc["options"])


def test_ansible_doc_documents_the_strategy_plugin(tmp_path):
    proc = subprocess.run([tool("ansible-doc"), "-t", "strategy", "osm.workloads.lanes", "--json"],
                          env=tool_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True,
                          timeout=300)
    doc = json.loads(proc.stdout)["osm.workloads.lanes"]["doc"]
    assert "free" in " ".join(doc["description"])


def test_module_py_docs_are_the_sidecars():
    """plugins/modules/<module>.py is generated by the build from <module>.yml: never a second copy."""
    check = subprocess.run([sys.executable, str(REPO / "scripts" / "module_docs.py"), "--check"],
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    for m in MODULES:
        doc = sidecar(m)
        py = runpy.run_path(str(REPO / "plugins" / "modules" / f"{m}.py"))
        assert yaml.safe_load(py["DOCUMENTATION"]) == doc["DOCUMENTATION"], m
        assert yaml.safe_load(py["RETURN"]) == doc["RETURN"], m
        assert py["EXAMPLES"].strip() == doc["EXAMPLES"].strip(), m


def test_module_reference_in_docs_is_generated_from_the_module_docs():
    check = subprocess.run([str(VENV_BIN / "python"), str(REPO / "scripts" / "module_reference.py"), "--check"],
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_committed_module_py_docs_are_current():
    """`make build` regenerates them; a clean tree afterwards means the committed copies were current."""
    proc = subprocess.run(["git", "status", "--porcelain", "--", "plugins/modules/*.py"], cwd=REPO,
                          stdout=subprocess.PIPE, text=True, check=True, timeout=60)
    assert proc.stdout == "", f"regenerated module docs differ from the committed ones: commit them\n{proc.stdout}"


def test_ansible_runs_the_binary_beside_the_documentation(tmp_path):
    """An exact name match wins in ansible-core's plugin loader: the task runs the extensionless
    binary (a documentation-only .py would return nothing and fail). A task environment has Ansible
    run it its own way (plugins/plugin_utils/in_place.py), copying the binary it found."""
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {SAMPLE}
          register: read
          environment:
            OSM_PROBE: "1"
        """, registers=["read"], args=["-vvv"])
    assert run.rc == 0, run
    assert run.results["read"]["names"] == ["app-01", "db-01"]
    sent = [l for l in run.output.splitlines() if l.startswith("<localhost> PUT") and "AnsiballZ_read_workloads" in l]
    assert sent and all("files/osm-modules TO" in l for l in sent), sent


def ansible_test_home():
    """HOME for ansible-test: its sanity virtualenvs are kept there between runs (minutes to build)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "osm" / "ansible-test"


def offline_get_pip(home):
    """ansible-test bootstraps pip in its virtualenvs with a get-pip script from a host that only the
    package index is reachable beside; its cache slot gets a stand-in (tests/lib/get_pip_offline.py)."""
    import ansible_test  # noqa: PLC0415 (only to find the pip version this ansible-test asks for)
    source = (Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
    version = re.search(r"pip='([0-9.]+)'", source)
    assert version, "cannot find the pip version ansible-test bootstraps"
    cached = home / ".ansible" / "test" / "cache" / f"get_pip_{version.group(1).replace('.', '_')}.py"
    cached.parent.mkdir(parents=True, exist_ok=True)
    stand_in = (REPO / "tests" / "lib" / "get_pip_offline.py").read_text()
    if not cached.exists() or cached.read_text() != stand_in:
        cached.write_text(stand_in)


def test_ansible_test_sanity(installed, tmp_path):
    """On the collection as it ships (the installed tarball), with the repository's tests/sanity (the
    tarball carries no tests/)."""
    shutil.copytree(REPO / "tests" / "sanity", installed / "tests" / "sanity", dirs_exist_ok=True)
    home = ansible_test_home()
    offline_get_pip(home)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = tool_env(tmp_path, {"HOME": str(home)})
    proc = subprocess.run([tool("ansible-test"), "sanity", "--local", "--python", python, "--color", "no"],
                          cwd=installed, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-8000:]


def test_sanity_ignores_say_why():
    for line in (REPO / "tests" / "sanity" / "ignore-2.19.txt").read_text().splitlines():
        entry, _, reason = line.partition(" # ")
        assert reason.strip(), f"no reason given: {line}"
        path, check = entry.split()
        assert check == "validate-modules:missing-gplv3-license", f"only the license check is waived: {line}"
        # A module (its sidecar beside it) or a Python plugin of the collection.
        python_plugin = path.startswith(("plugins/inventory/", "plugins/strategy/"))
        assert (REPO / path).with_suffix(".yml").exists() or (python_plugin and (REPO / path).exists()), \
            f"no such plugin: {line}"


def test_ansible_lint_production(tmp_path):
    proc = subprocess.run([tool("ansible-lint"), "--profile", "production", "--nocolor", "-f", "pep8"], cwd=REPO,
                          env=tool_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-8000:]


def test_changelog_lints_and_records_this_version(tmp_path):
    proc = subprocess.run([tool("antsibull-changelog"), "lint"], cwd=REPO, env=tool_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    changelog = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
    assert version in changelog["releases"]


PLACEHOLDERS = {"str": "x", "path": "/x", "raw": "x", "int": 1, "float": 1.0, "bool": True, "dict": {}, "list": []}


def argspec(module):
    out = subprocess.run([str(REPO / "plugins" / "modules" / module), "--print-argspec"], stdout=subprocess.PIPE,
                         text=True, check=True, timeout=60).stdout
    return json.loads(out)


def check_args(module, args, tmp_path):
    """The module's own validation of `args` (`--check-args`: names, aliases, types, required,
    choices, exclusive options), with each templated value replaced by a value of the option's type:
    Jinja is Ansible's to render, the option names and literal values are the example's."""
    spec = argspec(module)["options"]
    names = {a: n for n, o in spec.items() for a in [n, *o.get("aliases", [])]}
    concrete = {}
    for key, value in args.items():
        if isinstance(value, str) and "{{" in value and key in names:
            value = PLACEHOLDERS[spec[names[key]]["type"]]
        concrete[key] = value
    path = tmp_path / f"{module}-args.json"
    path.write_text(json.dumps(concrete))
    proc = subprocess.run([str(REPO / "plugins" / "modules" / module), "--check-args", str(path)],
                          stdout=subprocess.PIPE, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout)


def example_tasks(module):
    tasks = yaml.safe_load(sidecar(module)["EXAMPLES"])
    assert isinstance(tasks, list) and tasks, f"{module}: EXAMPLES is a list of tasks"
    return tasks


@pytest.mark.parametrize("module", MODULES)
def test_examples_use_the_modules_real_options(module, tmp_path):
    called = set()
    for task in example_tasks(module):
        assert task.get("name"), f"{module}: every example task has a name"
        for key in (k for k in task if k.startswith("osm.workloads.")):
            called.add(key)
            rc, res = check_args(key.split(".")[-1], task[key] or {}, tmp_path)
            assert rc == 0, f"{module} example {task['name']!r}: {res['msg']}"
    assert f"osm.workloads.{module}" in called, f"{module}: the EXAMPLES call the module by its FQCN"


def test_a_wrong_option_in_an_example_is_caught(tmp_path):
    rc, res = check_args("os_server_action", {"cloud": "src", "server": "{{ name }}", "acton": "stop"}, tmp_path)
    assert rc != 0 and "acton" in res["msg"]
    rc, res = check_args("os_server_action", {"cloud": "src", "server": "web", "action": "halt"}, tmp_path)
    assert rc != 0 and "halt" in res["msg"]


def test_examples_pass_ansible_playbook_syntax_check(tmp_path):
    tasks = [t for m in MODULES for t in example_tasks(m)]
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Every module's EXAMPLES", "hosts": "localhost",
                                         "gather_facts": False, "tasks": tasks}], sort_keys=False))
    run = run_playbook(tmp_path, playbook, args=["--syntax-check"])
    assert run.rc == 0, run.output
