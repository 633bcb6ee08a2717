"""Every module binary speaks Ansible's binary-module protocol, and its sidecar docs match its code."""

import ast
import json
import subprocess

import yaml

import pytest

from lib.ansible import REPO, VENV_BIN, ansible_env, module_binaries, sidecar

MODULES = [p.name for p in module_binaries()]


def test_modules_were_built():
    assert "read_workloads" in MODULES, "run `make build` first"


def call(module, args, tmp_path):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.run([str(REPO / "plugins" / "modules" / module), str(args_file)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, f"exactly one JSON object on stdout, got: {proc.stdout!r}"
    return proc.returncode, json.loads(lines[0])


def fragment_options(name):
    """The options of a doc fragment (a Python file holding a DOCUMENTATION string)."""
    source = (REPO / "plugins" / "doc_fragments" / f"{name.split('.')[-1]}.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(node.value.value)["options"]
    raise AssertionError(f"doc fragment {name} has no DOCUMENTATION")


def argspec(module):
    proc = subprocess.run([str(REPO / "plugins" / "modules" / module), "--print-argspec"],
                          stdout=subprocess.PIPE, text=True, check=True, timeout=60)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("module", MODULES)
def test_unknown_option_is_named(module, tmp_path):
    rc, res = call(module, {"no_such_option": 1, "_ansible_check_mode": True}, tmp_path)
    assert rc != 0
    assert res["failed"] is True
    assert "no_such_option" in res["msg"]
    assert "Supported parameters include" in res["msg"]


@pytest.mark.parametrize("module", MODULES)
def test_wrong_type_is_named(module, tmp_path):
    spec = argspec(module)
    typed = {n: o for n, o in spec["options"].items() if o["type"] in ("int", "bool", "list", "dict")}
    if not typed:
        pytest.skip(f"{module} has no option with a type that a string could violate")
    name, opt = sorted(typed.items())[0]
    bad = {"int": "many", "bool": "perhaps", "list": {"a": 1}, "dict": ["x"]}[opt["type"]]
    rc, res = call(module, {name: bad}, tmp_path)
    assert rc != 0 and res["failed"] is True
    assert f"'{name}'" in res["msg"]


# Options that carry credentials by what they are, whatever a module calls them otherwise.
CREDENTIAL_OPTIONS = {"auth", "cloud", "src_cloud", "dst_cloud"}
CREDENTIAL_WORDS = ("password", "token", "secret", "passphrase")


def secret_looking(name, opt):
    """An option that must be declared secret: a connection, or a value named like a credential (a
    path to a key file is not the key)."""
    return name in CREDENTIAL_OPTIONS or (opt["type"] != "path" and any(w in name for w in CREDENTIAL_WORDS))


@pytest.mark.parametrize("module", MODULES)
def test_credential_options_are_declared_secret(module):
    spec = argspec(module)
    undeclared = [n for n, o in spec["options"].items() if secret_looking(n, o) and not o.get("no_log")]
    assert undeclared == [], f"{module}: options carrying credentials but not declared secret: {undeclared}"


def canaries(name, opt, tag):
    """A value for a secret option with a distinct canary in every place a secret may sit, and the
    canaries. Mappings get the connection shape the roles build (`auth` inside a `cloud` mapping)."""
    credentials = ("password", "token", "application_credential_secret", "passcode", "client_secret",
                   "access_token")
    marks = {k: f"s3cr3t-{tag}-{name}-{k}" for k in (*credentials, "value")}
    auth = {"auth_url": "http://127.0.0.1:9/v3", "username": "canary-user", "project_name": "canary-project",
            "identity_provider": "canary-idp", "protocol": "openid", "client_id": "canary-client",
            **{k: marks[k] for k in credentials}}
    if opt["type"] == "dict":
        return auth, [marks[k] for k in credentials]
    if opt["type"] == "raw":
        return {"cloud": "canary-cloud", "auth": auth, "region_name": "r1"}, [marks[k] for k in credentials]
    return marks["value"], [marks["value"]]


@pytest.mark.parametrize("module", MODULES)
def test_secret_options_are_masked(module, tmp_path):
    """Every secret option of every module, in the two ways a module ends: refused arguments (an
    unknown option) and a run that fails further on (missing options, or a cloud that cannot be
    reached); the invocation echoed back is masked as well."""
    spec = argspec(module)
    secrets = {n: o for n, o in spec["options"].items() if o.get("no_log")}
    looking = [n for n, o in spec["options"].items() if secret_looking(n, o)]
    if not secrets:
        assert looking == [], f"{module} has credential options that are not declared secret: {looking}"
        return
    for tag, extra in (("refused", {"no_such_option": "x"}), ("run", {})):
        args, marks = {"_ansible_inject_invocation": True, **extra}, []
        for name, opt in secrets.items():
            args[name], m = canaries(name, opt, tag)
            marks += m
        rc, res = call(module, args, tmp_path)
        assert rc != 0, res
        out = json.dumps(res)
        leaked = [m for m in marks if m in out]
        assert leaked == [], f"{module} ({tag}) leaked {leaked}: {out[:2000]}"
        if "invocation" in res:
            assert "********" in json.dumps(res["invocation"]), f"{module} ({tag}): the invocation masks its secrets"


@pytest.mark.parametrize("module", MODULES)
def test_sidecar_docs_match_the_code(module):
    doc = sidecar(module)
    assert set(doc) >= {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documented = doc["DOCUMENTATION"].get("options") or {}
    fragments = doc["DOCUMENTATION"].get("extends_documentation_fragment") or []
    spec = argspec(module)
    if fragments:
        frag_opts = {}
        for f in fragments:
            frag_opts.update(fragment_options(f))
        documented = {**frag_opts, **documented}
    assert sorted(documented) == sorted(spec["options"]), "documented options == options in code"
    for name, opt in spec["options"].items():
        d = documented[name]
        assert d.get("type", "str") == opt["type"], name
        assert bool(d.get("required", False)) == opt["required"], name
        assert d.get("default") == opt.get("default"), name
        assert sorted(d.get("aliases", [])) == sorted(opt.get("aliases", [])), name
        assert sorted(map(str, d.get("choices", []))) == sorted(opt.get("choices", [])), name
        # Module docs have no no_log key (ansible-test's schema refuses it): a secret option says so.
        if opt.get("no_log"):
            text = " ".join(d["description"] if isinstance(d["description"], list) else [d["description"]])
            assert "masked" in text, f"{name} is secret: its description must say it is masked"
        if opt["type"] == "list":
            assert d.get("elements") == opt.get("elements"), name
    check = doc["DOCUMENTATION"].get("attributes", {}).get("check_mode", {}).get("support")
    assert (check in ("full", "partial")) == spec["supports_check_mode"], "check_mode attribute matches"


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module, tmp_path):
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), f"osm.workloads.{module}"], env=ansible_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "OPTIONS" in proc.stdout and "RETURN VALUES" in proc.stdout and "EXAMPLES" in proc.stdout
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout


def test_every_module_has_docs_and_every_doc_a_module():
    docs = {p.stem for p in (REPO / "plugins" / "modules").glob("*.yml")}
    listed = subprocess.run([str(REPO / "files" / "osm-modules"), "--list"], stdout=subprocess.PIPE, text=True,
                            check=True).stdout.split()
    assert docs == set(listed)
    assert set(MODULES) == docs
