"""Conversion hosts of the test bed: one real OpenSSH server per Nova instance that is a conversion host.

The contract is the one osm-cloudsim keeps (docs/dev/contracts.md): an instance booted from an image
with property `osm_sim_conversion_host: "true"` (or created with that metadata key) gets a directory
`<hosts>/<instance uuid>/` holding

    home/.ssh/authorized_keys   the instance's keypair (login user root)
    dev/disk/by-id/virtio-<first 20 chars of volume id>  -> the attached volume's file (Cinder NFS)
    etc/                        sshd_config, host key, pid file, log, address

and one `/usr/sbin/sshd -D -f etc/sshd_config` listening on a loopback address of its own (which Nova
reports as the instance's accessIPv4) and on every loopback floating IP associated with one of its
ports, at the bed's SSH port. Sessions get `HOME=<dir>/home` and `OSM_DEV_ROOT=<dir>` by `SetEnv`.

Nova's fake virt driver (osm_aio.virt, in nova-compute) creates, starts, stops and removes hosts;
the ML2 mechanism driver (osm_aio.ml2, in neutron-server) records floating IPs in `floating.json`
and reloads the sshd of the hosts whose addresses changed. Both run as root on the same machine and
meet only here, in the file system: `OSM_AIO_HOSTS_DIR` (directory) and `OSM_AIO_SSH_PORT`.
"""

import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SSHD = "/usr/sbin/sshd"
# Own addresses of conversion hosts: 127.72.0.2 and up (floating IPs come from the external
# network's range, which the tests choose elsewhere in 127.0.0.0/8).
ADDRESS_BASE = ipaddress.ip_address("127.72.0.0")


def hosts_dir():
    return Path(os.environ.get("OSM_AIO_HOSTS_DIR", "/run/osm-aio/hosts"))


def ssh_port():
    return int(os.environ.get("OSM_AIO_SSH_PORT", "2222"))


def host_dir(uuid):
    return hosts_dir() / uuid


def serial_name(volume_id):
    """`virtio-<first 20 characters of the volume id>`, as udev names virtio disks by serial."""
    return "virtio-" + volume_id[:20]


@contextmanager
def _locked():
    """One writer at a time across nova-compute and neutron-server."""
    root = hosts_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write(path, text, mode=0o644):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _can_bind(addr, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
            return True
        except OSError:
            return False


def _listening(addr, port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((addr, port)) == 0


def _allocate_address():
    """The next loopback address no host has and nothing listens on (call under the lock)."""
    taken = set()
    for d in hosts_dir().iterdir():
        a = d / "etc" / "address"
        if a.exists():
            taken.add(a.read_text().strip())
    for n in range(2, 65000):
        if n % 256 in (0, 1, 255):
            continue
        addr = str(ADDRESS_BASE + n)
        if addr not in taken and _can_bind(addr, ssh_port()):
            return addr
    raise RuntimeError("no free loopback address for a conversion host")


def floating_map():
    """{instance uuid: [loopback floating IPs]} as neutron-server last wrote it."""
    try:
        return json.loads((hosts_dir() / "floating.json").read_text())
    except (OSError, ValueError):
        return {}


def _addresses(uuid):
    d = host_dir(uuid)
    own = (d / "etc" / "address").read_text().strip()
    extra = [a for a in floating_map().get(uuid, []) if a != own and ipaddress.ip_address(a).is_loopback]
    return [own] + sorted(set(extra))


def _config(uuid, addrs):
    d = host_dir(uuid)
    port = ssh_port()
    lines = [f"# Written by the osm test bed (tests/openstack-aio) for conversion host {uuid}."]
    lines += [f"ListenAddress {a}:{port}" for a in addrs]
    lines += [
        f"HostKey {d}/etc/ssh_host_ed25519_key",
        f"PidFile {d}/etc/sshd.pid",
        f"AuthorizedKeysFile {d}/home/.ssh/authorized_keys",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "AllowStreamLocalForwarding yes",
        "AllowTcpForwarding yes",
        "StreamLocalBindUnlink yes",
        "PrintMotd no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",
        f"SetEnv HOME={d}/home OSM_DEV_ROOT={d}",
    ]
    return "\n".join(lines) + "\n"


def _pid(uuid):
    """The pid of the host's sshd when it runs (checked against its command line)."""
    d = host_dir(uuid)
    try:
        pid = int((d / "etc" / "sshd.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if str(d / "etc" / "sshd_config") in cmdline else None


def _descendants(pid):
    parent = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            stat = Path(f"/proc/{e}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        parent[int(e)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                frontier.append(c)
    return out


def _wait(what, fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise RuntimeError(f"conversion host sshd: timed out waiting for {what}")


def is_host(uuid):
    return (host_dir(uuid) / "etc" / "address").exists()


def address(uuid):
    try:
        return (host_dir(uuid) / "etc" / "address").read_text().strip()
    except OSError:
        return None


def create(uuid, authorized_keys, fixed=None):
    """Creates the host's directory and address (idempotent); returns the address: `fixed` (a
    loopback fixed IP of one of its ports, as on a provider network) or one of the bed's own."""
    with _locked():
        d = host_dir(uuid)
        for sub in ("home/.ssh", "dev/disk/by-id", "etc"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "home", 0o700)
        os.chmod(d / "home" / ".ssh", 0o700)
        _write(d / "home" / ".ssh" / "authorized_keys", authorized_keys or "", 0o600)
        if not (d / "etc" / "address").exists():
            _write(d / "etc" / "address", (fixed or _allocate_address()) + "\n")
        key = d / "etc" / "ssh_host_ed25519_key"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"osm-aio-{uuid}", "-f", str(key)],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return address(uuid)


def _reap(proc):
    proc.wait()


def start(uuid):
    """Starts the host's sshd (if not running) and waits until every address answers."""
    with _locked():
        d = host_dir(uuid)
        if _pid(uuid):
            _reload_locked(uuid)
            return
        addrs = _addresses(uuid)
        _write(d / "etc" / "sshd_config", _config(uuid, addrs))
        os.makedirs("/run/sshd", exist_ok=True)
        log = d / "etc" / "sshd.log"
        proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "etc" / "sshd_config"), "-E", str(log)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
        threading.Thread(target=_reap, args=(proc,), daemon=True).start()
        port = ssh_port()
        try:
            _wait(f"sshd of {uuid} on {addrs}", lambda: proc.poll() is not None or all(_listening(a, port) for a in addrs))
        except RuntimeError:
            _kill(proc.pid)
            raise
        if proc.poll() is not None:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"sshd of conversion host {uuid} exited: {tail}")
        # sshd -D writes its pid file itself; make sure it is there for stop() and the bed's `down`.
        _write(d / "etc" / "sshd.pid", f"{proc.pid}\n")


def _reload_locked(uuid):
    d = host_dir(uuid)
    pid = _pid(uuid)
    cfg = d / "etc" / "sshd_config"
    old = cfg.read_text() if cfg.exists() else ""
    addrs = _addresses(uuid)
    new = _config(uuid, addrs)
    if new == old or not pid:
        _write(cfg, new)
        return
    old_addrs = [line.split()[1].rsplit(":", 1)[0] for line in old.splitlines() if line.startswith("ListenAddress ")]
    _write(cfg, new)
    # SIGHUP: sshd re-executes itself with the new listen addresses, keeping its pid; established
    # sessions (separate processes) go on.
    os.kill(pid, signal.SIGHUP)
    port = ssh_port()
    dropped = [a for a in old_addrs if a not in addrs]
    _wait(f"sshd of {uuid} to listen on {addrs}",
          lambda: all(_listening(a, port) for a in addrs) and not any(_listening(a, port) for a in dropped))


def reload(uuid):
    with _locked():
        if is_host(uuid):
            _reload_locked(uuid)


def _kill(pid):
    sessions = _descendants(pid)
    for p in [pid] + sessions:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 3
    while time.time() < deadline and Path(f"/proc/{pid}").exists() and _state(pid) not in ("Z", None):
        time.sleep(0.02)
    for p in [pid] + sessions:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return None


def stop(uuid):
    """Stops the host's sshd and every session it forked, like a powered-off machine."""
    with _locked():
        pid = _pid(uuid)
        if pid:
            _kill(pid)
        try:
            (host_dir(uuid) / "etc" / "sshd.pid").unlink()
        except OSError:
            pass


def remove(uuid):
    """Stops the host and deletes its directory (instance deleted)."""
    stop(uuid)
    with _locked():
        shutil.rmtree(host_dir(uuid), ignore_errors=True)


def link_volume(uuid, volume_id, target):
    d = host_dir(uuid) / "dev" / "disk" / "by-id"
    d.mkdir(parents=True, exist_ok=True)
    link = d / serial_name(volume_id)
    tmp = d / (serial_name(volume_id) + ".tmp")
    try:
        tmp.unlink()
    except OSError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)


def unlink_volume(uuid, volume_id):
    try:
        (host_dir(uuid) / "dev" / "disk" / "by-id" / serial_name(volume_id)).unlink()
    except OSError:
        pass


def set_floating(mapping):
    """Records {instance uuid: [floating IPs]} and reloads the sshd of every host whose addresses
    changed (called by neutron-server after each floating IP change)."""
    with _locked():
        old = floating_map()
        clean = {k: sorted(v) for k, v in mapping.items() if v}
        _write(hosts_dir() / "floating.json", json.dumps(clean, sort_keys=True))
        changed = {k for k in set(old) | set(clean) if old.get(k) != clean.get(k)}
        errors = []
        for uuid in sorted(changed):
            if is_host(uuid):
                try:
                    _reload_locked(uuid)
                except Exception as e:  # noqa: BLE001 (one host's failure must not hide the others)
                    errors.append(f"{uuid}: {e}")
        if errors:
            raise RuntimeError("; ".join(errors))


def stop_all():
    """Stops every host's sshd (the bed's `down`)."""
    root = hosts_dir()
    if not root.exists():
        return
    for d in root.iterdir():
        if d.is_dir():
            stop(d.name)
