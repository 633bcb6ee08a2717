"""The collection tarball: built by `make collection`, under Galaxy's limit, installable, runnable."""

import subprocess
import tarfile

from lib.ansible import REPO, VENV_BIN, ansible_env, module_binaries, run_tasks

SAMPLE = REPO / "crates" / "workload" / "tests" / "data" / "workloads-1.0.1.yml"


def test_tarball_installs_and_runs(tmp_path):
    # A directory of its own: the execution environment test builds into build/ at the same time.
    out = subprocess.run([str(REPO / "scripts" / "collection.sh"), str(tmp_path / "dist")], cwd=REPO,
                         stdout=subprocess.PIPE, text=True, check=True, timeout=600).stdout.strip().splitlines()[-1]
    tarball = REPO / out
    assert tarball.stat().st_size < 20_000_000
    with tarfile.open(tarball) as t:
        names = set(t.getnames())
    for m in module_binaries():
        assert f"plugins/modules/{m.name}" in names
        assert f"plugins/modules/{m.name}.yml" in names
    assert "files/osm-agent" in names
    assert not any(n.startswith(("crates/", "target/", "tests/", ".venv/")) for n in names)

    install = tmp_path / "collections"
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-p", str(install), str(tarball)],
                   check=True, timeout=300, env=ansible_env(tmp_path, {"ANSIBLE_COLLECTIONS_PATH": str(install)}),
                   stdout=subprocess.PIPE)
    assert (install / "ansible_collections" / "osm" / "workloads" / "plugins" / "modules" / "read_workloads").exists()
    run = run_tasks(tmp_path, f"""
        - osm.workloads.read_workloads:
            path: {SAMPLE}
          register: installed
        """, registers=["installed"], env={"ANSIBLE_COLLECTIONS_PATH": str(install)})
    assert run.rc == 0, run
    assert run.results["installed"]["names"] == ["app-01", "db-01"]
