"""Security: names are data, secrets stay secret, host keys are checked."""

import shutil
import socket
import stat
import subprocess
from pathlib import Path

import yaml

from lib.scenario import boot_from_volume, deploy_conversion_hosts, export, import_, volume_from_image, wait_volume
from lib.sim import wait_until


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
    # The one file that holds them is the clouds file the auth variables ask for (upstream OS Migrate's
    # convention, os_migrate_clouds_path): the operator's credential store, readable by its owner only.
    clouds_file = data_dir / "clouds.yaml"
    assert stat.S_IMODE(clouds_file.stat().st_mode) == 0o600
    for secret in (src_auth["password"], dst_auth["password"], bad_dst["password"], cred.secret):
        assert all(secret not in o for o in outputs), "a secret in the playbook output"
        hits = secret_hits(secret, [data_dir, tmp_path / "ansible-local"])
        assert [h for h in hits if h != str(clouds_file)] == [], "a secret in a file the run wrote"
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


def conversion_host(world, cloud):
    return next(h for h in world.sim.hosts()["hosts"] if h["cloud"] == cloud and h["status"] == "ACTIVE")


def link_ssh_argv(world, options, command=()):
    """ssh from the destination conversion host to the source one with the link key, as the tunnel does."""
    src, dst = conversion_host(world, "src"), conversion_host(world, "dst")
    key = Path(dst["dir"]) / "home" / ".osm" / "link_key"
    assert key.exists(), "deploy made the link key on the destination host"
    return ["ssh", "-F", "none", "-i", str(key), "-p", str(src["ssh_port"]), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ExitOnForwardFailure=yes", *options, "--", f"root@{src['address']}", *command]


def link_ssh(world, options, command=(), stdin=b""):
    return subprocess.run(link_ssh_argv(world, options, command), input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def assert_forward_refused(world, tmp_path, target):
    """ssh -N -L through the link key: the local end opens (the client makes it), but a connection
    through it is refused by the source host's sshd."""
    local = tmp_path / "fwd.sock"
    local.unlink(missing_ok=True)
    fwd = subprocess.Popen(link_ssh_argv(world, ["-N", "-L", f"{local}:{target}"]), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until("the local end of the forward", lambda: local.exists() or fwd.poll() is not None, timeout=30)
        if fwd.poll() is None:
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(30)
            c.connect(str(local))
            assert c.recv(16) == b"", f"a connection through a forward of the link key to {target} was carried"
            c.close()
    finally:
        fwd.kill()
        _, err = fwd.communicate()
    assert b"open failed" in err, err


def test_the_link_key_opens_a_tunnel_and_nothing_else(world, tmp_path):
    src = conversion_host(world, "src")
    authorized = (Path(src["dir"]) / "home" / ".ssh" / "authorized_keys")
    link_pub = (Path(conversion_host(world, "dst")["dir"]) / "home" / ".osm" / "link_key.pub").read_text().split()
    blob = " ".join(link_pub[:2])
    osm_dir = Path(src["dir"]) / "home" / ".osm"
    # A line an older release wrote, with weaker options, before ours: a redeploy must replace it, since
    # sshd uses the first line of a key.
    lines = authorized.read_text().splitlines()
    ours = [l for l in lines if blob in l]
    assert ours == [f'restrict,command="{osm_dir}/bin/osm-agent bridge --root {osm_dir}" {" ".join(link_pub)}'], ours
    authorized.write_text("\n".join([f"restrict,port-forwarding {blob} osm-link"] + lines) + "\n")
    again = deploy_conversion_hosts(tmp_path, world.sim, world.data_dir)
    assert again.rc == 0, again
    assert [l for l in authorized.read_text().splitlines() if blob in l] == ours

    canary = Path("/tmp") / f"osm-canary-link-{tmp_path.name}"
    canary.unlink(missing_ok=True)
    run = link_ssh(world, [], ["touch", str(canary)])
    assert run.returncode != 0 and not canary.exists(), "the link key ran a command"
    run = link_ssh(world, ["-tt"], stdin=b"exit\n")
    assert run.returncode != 0 and b"PTY allocation request failed" in run.stderr, "the link key got a terminal"
    run = link_ssh(world, ["-N", "-R", "127.0.0.1:0:127.0.0.1:9"])
    assert run.returncode != 0 and b"remote port forwarding failed" in run.stderr, run.stderr
    for target in (f"{osm_dir}/any.sock", "169.254.169.254:80"):
        assert_forward_refused(world, tmp_path, target)

    # What the tunnel needs still works: the bridge to a socket in the agent's directory, and to no
    # socket outside it.
    inside = osm_dir / f"t-{tmp_path.name[-8:]}"
    inside.mkdir(mode=0o700, exist_ok=True)
    for path, reached in ((inside / "s.sock", True), (tmp_path / "outside.sock", False)):
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.listen(1)
        server.settimeout(30)
        try:
            run = subprocess.Popen(link_ssh_argv(world, []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
            run.stdin.write(f"{path}\nping".encode())
            run.stdin.flush()
            if reached:
                conn, _ = server.accept()
                assert conn.recv(4) == b"ping"
                conn.sendall(b"pong")
                conn.close()
            run.stdin.close()
            out, err = run.stdout.read(), run.stderr.read()
            run.wait(timeout=30)
            if reached:
                assert out == b"pong", err
            else:
                assert run.returncode != 0 and b"osm's sockets only" in err, err
        finally:
            server.close()
            path.unlink(missing_ok=True)
    shutil.rmtree(inside, ignore_errors=True)
