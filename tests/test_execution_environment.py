"""The execution environment definitions are valid for ansible-builder, and the binaries they ship
run on UBI 9 (static: no glibc dependency). Building the image needs a container engine, which CI
does not have; `ansible-builder create` renders the whole build context without one."""

import subprocess

import yaml
from ansible_builder.ee_schema import validate_schema

from lib.ansible import REPO, VENV_BIN, ansible_env


def test_definition_validates_against_the_v3_schema():
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    validate_schema(ee)
    assert ee["version"] == 3
    assert "ubi9" in ee["images"]["base_image"]["name"]


def test_build_context_renders(tmp_path):
    tarball = subprocess.run([str(REPO / "scripts" / "collection.sh")], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             check=True).stdout.strip().splitlines()[-1]
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert ee["dependencies"]["galaxy"]["collections"][0]["name"] == tarball, "the EE installs the tarball make collection builds"
    ctx = tmp_path / "context"
    subprocess.run([str(VENV_BIN / "ansible-builder"), "create", "-f", str(REPO / "execution-environment.yml"),
                    "-c", str(ctx), "--output-filename", "Containerfile"], cwd=REPO, check=True, stdout=subprocess.PIPE)
    containerfile = (ctx / "Containerfile").read_text()
    assert "ubi9/python-311" in containerfile
    assert (ctx / "_build" / "build" / tarball.split("/")[-1]).exists()


def test_collection_declares_its_system_dependencies(tmp_path):
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"]["system"] == "bindep.txt"
    installed = tmp_path / "collections"
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-p", str(installed), str(REPO)],
                   check=True, stdout=subprocess.PIPE, env=ansible_env(tmp_path, {"ANSIBLE_COLLECTIONS_PATH": str(installed)}))
    out = subprocess.run([str(VENV_BIN / "ansible-builder"), "introspect", "--sanitize", str(installed)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    assert "openssh-clients [platform:rpm]" in out


def test_binaries_are_static():
    for binary in (REPO / "files" / "osm-modules", REPO / "files" / "osm-agent"):
        kind = subprocess.run(["file", "-L", str(binary)], stdout=subprocess.PIPE, text=True, check=True).stdout
        assert "statically linked" in kind or "static-pie linked" in kind, kind
        ldd = subprocess.run(["ldd", str(binary)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        assert "not a dynamic executable" in ldd or "statically linked" in ldd, ldd
