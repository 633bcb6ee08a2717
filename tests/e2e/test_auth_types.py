"""Keystone auth types of enterprise clouds (issue 21): a federated cloud with an OpenID Connect provider
(`v3oidcpassword`) and a multi-factor one (`v3multifactor`: password and TOTP), through real modules and the
export playbook; and what a refusal says. No secret, given or learnt (the provider's access tokens, the Keystone
tokens), may appear in the output, the registered results, the request log or the exported files."""

import json
import time

import pytest
import yaml

from lib import backend
from lib.ansible import run_tasks
from lib.scenario import CloudBase, boot_from_image, export
from lib.sim import Sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    if backend.name() != "cloudsim":
        pytest.skip("only the simulator has an OpenID Connect provider in front of its Keystone")
    root = tmp_path_factory.mktemp("auth")
    s = Sim(root / "sim").start()
    try:
        src = CloudBase(s, "src", root).build()
        boot_from_image(src.conn, "auth-web", src, src.cirros, [{"uuid": src.app_net.id}])
        yield s
    finally:
        s.stop()


def clouds(sim):
    return yaml.safe_load(sim.clouds_yaml.read_text())["clouds"]


def given_secrets(sim):
    """The credentials of the simulator's clouds.yaml entries used here."""
    c = clouds(sim)
    return [c["src-oidc"]["auth"]["password"], c["src-oidc"]["auth"]["client_secret"],
            c["src-mfa"]["auth"]["password"], str(c["src-mfa"]["auth"]["passcode"])]


def learnt_secrets(sim):
    """Every token the provider and Keystone issued so far (the simulator's state, written shortly after a
    change)."""
    time.sleep(0.5)
    state = json.loads((sim.state_dir / "state.json").read_text())
    identity = state["clouds"]["src"]["identity"]
    return list(identity["federation"]["tokens"]) + list(identity["tokens"])


def assert_nothing_leaked(secrets, *texts):
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        for text in texts:
            assert secret not in text, f"a secret ({secret[:3]}...) leaked into: {text[:3000]}"


def test_federated_and_multifactor_clouds_list_and_export(sim, tmp_path):
    log = tmp_path / "sdk.log"
    run = run_tasks(tmp_path, f"""
        - name: List through the OpenID Connect provider and Keystone's federation endpoint
          osm.workloads.os_workloads_info:
            cloud: src-oidc
            sdk_log_path: {log}
            sdk_log_level: DEBUG
          register: federated
        - name: List with password and TOTP in one request
          osm.workloads.os_workloads_info:
            cloud: src-mfa
            sdk_log_path: {log}
            sdk_log_level: DEBUG
          register: mfa
        """, registers=["federated", "mfa"], env=sim.env, args=("-vvv",))
    assert run.rc == 0, run
    assert run.results["federated"]["names"] == ["auth-web"]
    assert run.results["mfa"]["names"] == ["auth-web"]
    text = log.read_text()
    for route in ("/src/idp/.well-known/openid-configuration -> 200", "/src/idp/token -> 200",
                  "/OS-FEDERATION/identity_providers/sso/protocols/openid/auth -> 201", "/auth/tokens -> 201"):
        assert route in text, text

    data_dir = tmp_path / "data"
    exported = export(tmp_path, sim, data_dir, os_migrate_src_cloud="src-oidc")
    assert exported.rc == 0, exported
    workloads = (data_dir / "workloads.yml").read_text()
    assert [r["params"]["name"] for r in yaml.safe_load(workloads)["resources"]] == ["auth-web"]

    outputs = [run.output, json.dumps(run.results), text, exported.output, workloads]
    learnt = learnt_secrets(sim)
    state = json.loads((sim.state_dir / "state.json").read_text())
    provider_tokens = state["clouds"]["src"]["identity"]["federation"]["tokens"]
    assert set(provider_tokens) <= set(learnt) and len(provider_tokens) >= 4, "the list and the export got tokens"
    assert_nothing_leaked(given_secrets(sim) + learnt, *outputs)


def test_refusals_name_what_refused_and_never_a_secret(sim, tmp_path):
    auth = dict(clouds(sim)["src-oidc"]["auth"])
    wrong = dict(auth, client_secret="wrong-" + auth["client_secret"])
    log = tmp_path / "sdk.log"
    run = run_tasks(tmp_path, f"""
        - name: A federated login whose client secret the provider refuses
          osm.workloads.os_workloads_info:
            auth_type: v3oidcpassword
            auth: {json.dumps(wrong)}
            sdk_log_path: {log}
            sdk_log_level: DEBUG
          register: refused
          ignore_errors: true
        - name: An auth type osm does not know
          osm.workloads.os_workloads_info:
            auth_type: v3samlpassword
            auth: {json.dumps(auth)}
          register: unknown
          ignore_errors: true
        - name: A passcode Keystone refuses
          osm.workloads.os_workloads_info:
            cloud: src-mfa
            auth:
              passcode: "000000x"
          register: passcode
          ignore_errors: true
        """, registers=["refused", "unknown", "passcode"], env=sim.env, args=("-vvv",))
    assert run.rc == 0, run
    refused = run.results["refused"]
    assert refused["failed"]
    assert "the OIDC token endpoint" in refused["msg"] and 'identity provider "sso"' in refused["msg"], refused
    assert 'refused the password grant for user "src-oidc-user": HTTP 401: invalid_client' in refused["msg"], refused
    unknown = run.results["unknown"]["msg"]
    for t in ("password", "v3password", "token", "v3token", "v3applicationcredential", "v3oidcpassword",
              "v3oidcclientcredentials", "v3oidcaccesstoken", "v3totp", "v3multifactor"):
        assert t in unknown, unknown
    assert "v3samlpassword" in unknown, unknown
    passcode = run.results["passcode"]
    assert passcode["failed"] and "authentication failed" in passcode["msg"], passcode
    assert "with methods v3password, v3totp" in passcode["msg"], passcode

    outputs = [run.output, json.dumps(run.results), log.read_text()]
    assert_nothing_leaked(given_secrets(sim) + [wrong["client_secret"], "000000x"] + learnt_secrets(sim), *outputs)
