"""Security: names are data, secrets stay secret, host keys are checked."""

import shutil
import subprocess
from pathlib import Path

import yaml

from lib.scenario import boot_from_volume, export, import_, volume_from_image, wait_volume


def canary_names(canary):
    return {
        "server": f"sec ☃ \"$(touch {canary})\" '; touch {canary}; ' `touch {canary}`",
        "volume": f"vol ☃ $(touch {canary}) `touch {canary}` \\\"",
        "network": f"net ☃ ; touch {canary} #",
        "subnet": f"sub $(touch {canary})",
    }


def test_names_with_shell_metacharacters_never_execute(world, tmp_path):
    canary = Path("/tmp") / f"osm-canary-{tmp_path.name}"
    canary.unlink(missing_ok=True)
    names = canary_names(canary)
    for cloud in ("src", "dst"):
        c = world.sim.conn(cloud)
        net = c.network.create_network(name=names["network"])
        c.network.create_subnet(name=names["subnet"], network_id=net.id, ip_version=4, cidr="10.77.0.0/24")
    src = world.src.conn
    boot = volume_from_image(src, names["volume"], world.src.cirros)
    data = wait_volume(src, src.block_storage.create_volume(name=names["volume"] + " data", size=1,
                                                            description=f"line one\nline two $(touch {canary})").id, "available")
    net = src.network.find_network(names["network"])
    boot_from_volume(src, names["server"], world.src, boot, [{"uuid": net.id}], extra_volumes=[data])

    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[names["server"]])
    assert run.rc == 0, run
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[names["server"]])
    assert run.rc == 0, run
    # Not find_server: Nova's name filter is a regular expression, which this name is full of.
    new = next((s for s in world.dst.conn.compute.servers() if s.name == names["server"]), None)
    assert new is not None
    vols = {world.dst.conn.block_storage.get_volume(a["id"]).name for a in world.dst.conn.compute.get_server(new.id).attached_volumes}
    assert vols == {names["volume"], names["volume"] + " data"}
    assert not canary.exists(), "a name was executed by a shell"
    logs = list((world.data_dir / "workload_logs").iterdir())
    assert all(p.parent == world.data_dir / "workload_logs" for p in logs)
    assert world.leftovers() == []


def test_ssh_user_with_shell_metacharacters_never_executes(world, tmp_path):
    canary = Path("/tmp") / f"osm-canary-user-{tmp_path.name}"
    canary.unlink(missing_ok=True)
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[{"regex": "."}],
                  os_migrate_conversion_host_ssh_user=f"root$(touch {canary});`touch {canary}`")
    assert run.rc != 0
    assert "authentication" in run.output
    assert not canary.exists()


def secret_hits(secret, paths):
    hits = []
    for base in paths:
        for p in Path(base).rglob("*"):
            if p.is_file() and not p.is_symlink():
                try:
                    if secret.encode() in p.read_bytes():
                        hits.append(str(p))
                except OSError:
                    pass
    return hits


def test_passwords_and_application_credential_secrets_are_never_written(world, tmp_path):
    clouds = yaml.safe_load(world.sim.clouds_yaml.read_text())["clouds"]
    src_auth, dst_auth = dict(clouds["src"]["auth"]), dict(clouds["dst"]["auth"])
    # An application credential for the source, given as upstream's auth variables.
    c = world.src.conn
    cred = c.identity.create_application_credential(c.current_user_id, name=f"osm-test-{tmp_path.name}")
    app_auth = {"auth_url": src_auth["auth_url"], "application_credential_id": cred.id,
                "application_credential_secret": cred.secret}
    data_dir = tmp_path / "data"
    shutil.copytree(world.data_dir / "conversion", data_dir / "conversion")
    shutil.copy(world.data_dir / "known_hosts", data_dir / "known_hosts")
    common = dict(os_migrate_src_cloud=None, os_migrate_dst_cloud=None, os_migrate_dst_auth=dst_auth)
    run = export(tmp_path, world.sim, data_dir, os_migrate_workloads_filter=[{"regex": "."}],
                 os_migrate_src_auth=app_auth, os_migrate_src_auth_type="v3applicationcredential", **common)
    assert run.rc == 0, run
    outputs = [run.output]
    # An import that fails in the middle (the destination password is wrong for the copy's step):
    bad_dst = dict(dst_auth, password=dst_auth["password"] + "-wrong")
    run = import_(tmp_path, world.sim, data_dir, os_migrate_workloads_filter=[{"regex": "."}],
                  os_migrate_src_auth=src_auth, **dict(common, os_migrate_dst_auth=bad_dst), args=("-vvv",))
    assert run.rc != 0
    assert "authentication failed" in run.output.lower() or "401" in run.output
    outputs.append(run.output)
    for secret in (src_auth["password"], dst_auth["password"], bad_dst["password"], cred.secret):
        assert all(secret not in o for o in outputs), "a secret in the playbook output"
        assert secret_hits(secret, [data_dir, tmp_path / "ansible-local"]) == [], "a secret in a file the run wrote"
    assert (data_dir / "workloads.yml").stat().st_mode & 0o777 == 0o600, "user data carries secrets: 0600"


def test_a_changed_host_key_is_refused(world, tmp_path):
    known = world.data_dir / "known_hosts"
    original = known.read_text()
    first = original.splitlines()[0]
    entry, keytype, _ = first.split(" ", 2)
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    forged = f"{entry} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}"
    known.write_text(original.replace(first, forged))
    try:
        run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[{"regex": "."}])
        assert run.rc != 0
        assert "does not match the one recorded" in run.output and "ssh-keygen -R" in run.output
    finally:
        known.write_text(original)
