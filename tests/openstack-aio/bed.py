"""osm's real-cloud test bed: Keystone, Placement, Glance, Neutron, Cinder and Nova from PyPI, with
MariaDB and RabbitMQ from Debian, all on 127.0.0.1 (MariaDB on a Unix socket only) of one machine.

    bed.py up       start everything (initialising the state on first use); idempotent
    bed.py down     stop everything we started, by pid (services, then conversion hosts' sshd)
    bed.py status   what runs
    bed.py reset    down, then forget the state (databases, volumes, images)

Runs with the services' virtualenv's python (install.sh makes it). State lives under
$OSM_AIO_STATE (default build/openstack-aio/state); `admin-clouds.yaml` there holds the admin's
credentials (a random password made on first use, never committed) for lib/aio.py.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = Path(os.environ.get("OSM_AIO_VENV", REPO / "build" / "openstack-aio" / "venv"))
STATE = Path(os.environ.get("OSM_AIO_STATE", REPO / "build" / "openstack-aio" / "state"))
BIN = VENV / "bin"
SITE = next((VENV / "lib").glob("python3*/site-packages"), None) if (VENV / "lib").exists() else None
HOST = "127.0.0.1"
REGION = "RegionOne"
SSH_PORT = int(os.environ.get("OSM_AIO_SSH_PORT", "2222"))
# Conversion hosts' directories (their HOME): short paths, since the agent's Unix sockets live there
# and a socket path must stay under 108 bytes.
HOSTS = Path(os.environ.get("OSM_AIO_HOSTS_DIR", "/run/osm-aio/hosts"))

PORTS = {"keystone": 5000, "placement": 8778, "glance": 9292, "neutron": 9696, "cinder": 8776, "nova": 8774}
RABBIT_PORT = 5672
SERVICES = {  # catalog: type, name, path after host:port
    "keystone": ("identity", "keystone", "/v3"),
    "placement": ("placement", "placement", ""),
    "glance": ("image", "glance", ""),
    "neutron": ("network", "neutron", ""),
    "cinder": ("block-storage", "cinderv3", "/v3/$(project_id)s"),
    "nova": ("compute", "nova", "/v2.1"),
}
DATABASES = ["keystone", "placement", "glance", "neutron", "cinder", "nova_api", "nova_cell0", "nova"]


def say(msg):
    print(f"==> openstack-aio: {msg}", file=sys.stderr, flush=True)


# -- paths and secrets ---------------------------------------------------------------------------

def p(*parts):
    return STATE.joinpath(*parts)


def secrets_file():
    f = p("secrets.json")
    if not f.exists():
        f.parent.mkdir(parents=True, exist_ok=True)
        data = {"admin": secrets.token_urlsafe(18), "service": secrets.token_urlsafe(18)}
        f.write_text(json.dumps(data))
        os.chmod(f, 0o600)
    return json.loads(f.read_text())


def db_url(name):
    return f"mysql+pymysql://root@localhost/{name}?unix_socket={p('mysql', 'mysqld.sock')}&charset=utf8"


def transport_url():
    return f"rabbit://guest:guest@{HOST}:{RABBIT_PORT}/"


def url(svc):
    return f"http://{HOST}:{PORTS[svc]}"


# -- processes -----------------------------------------------------------------------------------

def pidfile(name):
    return p("run", f"{name}.pid")


def running(name):
    """The pid of our process `name`, if it still runs (its command line names our state dir or
    venv, so a recycled pid is not taken for ours)."""
    try:
        pid = int(pidfile(name).read_text().split()[0])
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
        return None
    marker = f"OSM_AIO_STATE={STATE}"
    return pid if marker in environ or str(STATE) in cmd else None


def start(name, argv, env=None, cwd=None):
    if running(name):
        return
    p("run").mkdir(parents=True, exist_ok=True)
    p("log").mkdir(parents=True, exist_ok=True)
    e = dict(os.environ)
    e.update({"OSM_AIO_STATE": str(STATE), "OSM_AIO_OWNER": str(STATE), "OSM_AIO_HOSTS_DIR": str(HOSTS),
              "OSM_AIO_SSH_PORT": str(SSH_PORT), "OSM_AIO_VOLUMES_DIR": str(p("cinder", "exports")),
              "PATH": f"{p('shims')}:{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "PYTHONDONTWRITEBYTECODE": "1"})
    e.update(env or {})
    log = open(p("log", f"{name}.log"), "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=e,
                            cwd=cwd or str(STATE), start_new_session=True)
    pidfile(name).write_text(f"{proc.pid}\n")


UWSGI_APPS = ("keystone", "placement", "glance", "neutron", "nova")


def stop(name, timeout=20):
    pid = running(name)
    if pid:
        # uwsgi: SIGINT ends master and workers at once (glance's worker ignores a graceful stop).
        sig = signal.SIGINT if name in UWSGI_APPS else signal.SIGTERM
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while time.time() < deadline and running(name):
            time.sleep(0.1)
        if running(name):
            say(f"{name} (pid {pid}) did not stop on SIGTERM; killing it")
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # reap if it is our child (it is not, across invocations; init reaps it then)
    try:
        pidfile(name).unlink()
    except OSError:
        pass


def wait_for(what, fn, timeout=180, interval=0.25, log=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    tail = ""
    if log and p("log", log).exists():
        tail = "\n" + p("log", log).read_text(errors="replace")[-3000:]
    raise SystemExit(f"openstack-aio: timed out waiting for {what} (last: {last!r}){tail}")


def port_open(port, host=HOST):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def run(argv, name, env=None):
    """Runs a setup command, logging to log/<name>.log; fails loudly with the log's tail."""
    p("log").mkdir(parents=True, exist_ok=True)
    e = dict(os.environ)
    e.update({"OSM_AIO_STATE": str(STATE), "PATH": f"{p('shims')}:{BIN}:{os.environ.get('PATH', '')}",
              "PYTHONDONTWRITEBYTECODE": "1"})
    e.update(env or {})
    with open(p("log", f"{name}.log"), "ab") as log:
        log.write(f"$ {' '.join(map(str, argv))}\n".encode())
        log.flush()
        r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                           env=e, cwd=str(STATE))
    if r.returncode != 0:
        tail = p("log", f"{name}.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"openstack-aio: {' '.join(map(str, argv[:3]))} failed (rc {r.returncode}):\n{tail}")


# -- MariaDB and RabbitMQ ------------------------------------------------------------------------

def mysql_sock():
    return p("mysql", "mysqld.sock")


def start_mariadb():
    data = p("mysql", "data")
    if not (data / "mysql").exists():
        data.mkdir(parents=True, exist_ok=True)
        run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}",
             "--auth-root-authentication-method=normal", "--skip-test-db"], "mariadb-install")
    start("mariadb", ["/usr/sbin/mariadbd", "--no-defaults", "--user=root", f"--datadir={data}",
                      f"--socket={mysql_sock()}", "--skip-networking", f"--pid-file={p('mysql', 'mysqld.pid')}",
                      "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                      "--innodb-buffer-pool-size=256M", "--max-connections=1000", "--skip-name-resolve",
                      "--character-set-server=utf8mb3", "--collation-server=utf8mb3_general_ci",
                      f"--log-error={p('log', 'mariadb-error.log')}"])
    wait_for("MariaDB", lambda: mysql_sock().exists() and mysql("SELECT 1", check=False) == 0, log="mariadb-error.log")


def mysql(sql, check=True):
    r = subprocess.run(["mariadb", "--no-defaults", f"--socket={mysql_sock()}", "-uroot", "-e", sql],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"openstack-aio: mariadb: {sql}: {r.stderr}")
    return r.returncode


def start_rabbitmq():
    base = p("rabbitmq")
    (base / "home").mkdir(parents=True, exist_ok=True)
    conf = base / "rabbitmq.conf"
    conf.write_text(f"listeners.tcp.default = {HOST}:{RABBIT_PORT}\nloopback_users.guest = true\n"
                    "management.tcp.ip = 127.0.0.1\n")
    (base / "enabled_plugins").write_text("[].\n")
    env = {
        "HOME": str(base / "home"),
        "RABBITMQ_NODENAME": "osmaio@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
        "RABBITMQ_DIST_PORT": "25673",
        "ERL_EPMD_ADDRESS": HOST,
        "ERL_EPMD_PORT": "4370",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(p("log")),
        "RABBITMQ_LOGS": str(p("log", "rabbitmq-server.log")),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
    }
    (base / "rabbitmq-env.conf").write_text("")
    start("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env)
    wait_for("RabbitMQ", lambda: port_open(RABBIT_PORT), timeout=120, log="rabbitmq.log")


# -- configuration -------------------------------------------------------------------------------

def ini(sections):
    out = []
    for sec, kv in sections.items():
        out.append(f"[{sec}]")
        for k, v in kv.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            out.append(f"{k} = {v}")
        out.append("")
    return "\n".join(out)


def auth_section(sec):
    return {"auth_type": "password", "auth_url": url("keystone") + "/v3", "username": "aio-service",
            "password": sec["service"], "project_name": "service", "user_domain_name": "Default",
            "project_domain_name": "Default", "region_name": REGION}


def authtoken(sec):
    a = auth_section(sec)
    a.update({"www_authenticate_uri": url("keystone"), "service_token_roles_required": True,
              "memcached_servers": ""})
    a.pop("region_name")
    a["region_name"] = REGION
    return a


def write_configs():
    sec = secrets_file()
    etc = p("etc")
    for d in ("keystone", "nova", "placement", "glance", "neutron/plugins/ml2", "cinder"):
        (etc / d).mkdir(parents=True, exist_ok=True)
    lock = {"lock_path": str(p("lock"))}
    noop = {"driver": "noop"}
    common = {"debug": False, "log_file": ""}

    # Keystone
    for d in ("fernet-keys", "credential-keys"):
        p("keystone", d).mkdir(parents=True, exist_ok=True)
    (etc / "keystone" / "keystone.conf").write_text(ini({
        "DEFAULT": {"debug": False},
        "database": {"connection": db_url("keystone")},
        "token": {"provider": "fernet"},
        # bcrypt's cheapest cost: every module run authenticates, and 2 cores are shared with the tests.
        "identity": {"password_hash_rounds": 4},
        "fernet_tokens": {"key_repository": p("keystone", "fernet-keys")},
        "fernet_receipts": {"key_repository": p("keystone", "fernet-keys")},
        "credential": {"key_repository": p("keystone", "credential-keys")},
        "oslo_messaging_notifications": noop,
    }))

    # Placement
    (etc / "placement" / "placement.conf").write_text(ini({
        "DEFAULT": {"debug": False},
        "placement_database": {"connection": db_url("placement")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": authtoken(sec),
    }))

    # Glance
    for d in ("images", "staging", "tasks"):
        p("glance", d).mkdir(parents=True, exist_ok=True)
    shutil.copy(VENV / "etc" / "glance" / "glance-api-paste.ini", etc / "glance" / "glance-api-paste.ini")
    (etc / "glance" / "glance-api.conf").write_text(ini({
        "DEFAULT": {"debug": False, "enabled_backends": "fs:file", "workers": 1, "show_multiple_locations": False,
                    "image_cache_dir": p("glance", "cache")},
        "database": {"connection": db_url("glance")},
        "keystone_authtoken": authtoken(sec),
        "paste_deploy": {"flavor": "keystone", "config_file": etc / "glance" / "glance-api-paste.ini"},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": p("glance", "images")},
        "os_glance_staging_store": {"filesystem_store_datadir": p("glance", "staging")},
        "os_glance_tasks_store": {"filesystem_store_datadir": p("glance", "tasks")},
        "oslo_messaging_notifications": noop,
        "oslo_policy": {"policy_file": etc / "glance" / "policy.yaml"},
    }))
    # Members may publish images (the test scenarios upload public images as their project's user).
    (etc / "glance" / "policy.yaml").write_text('"publicize_image": "role:member"\n')

    # Neutron
    shutil.copy(VENV / "etc" / "neutron" / "api-paste.ini", etc / "neutron" / "api-paste.ini")
    (etc / "neutron" / "neutron.conf").write_text(ini({
        "DEFAULT": {"debug": False, "core_plugin": "ml2", "service_plugins": "router", "auth_strategy": "keystone",
                    "transport_url": transport_url(), "allow_overlapping_ips": True,
                    "notify_nova_on_port_status_changes": True, "notify_nova_on_port_data_changes": True,
                    "dhcp_agent_notification": False, "state_path": p("neutron"),
                    "api_paste_config": etc / "neutron" / "api-paste.ini", "api_workers": 1, "rpc_workers": 0},
        "database": {"connection": db_url("neutron")},
        "keystone_authtoken": authtoken(sec),
        "nova": auth_section(sec),
        "oslo_concurrency": lock,
        "oslo_messaging_notifications": noop,
        "oslo_policy": {"policy_file": etc / "neutron" / "policy.yaml"},
        "quotas": {"quota_network": -1, "quota_subnet": -1, "quota_port": -1, "quota_router": -1,
                   "quota_floatingip": -1, "quota_security_group": -1, "quota_security_group_rule": -1},
    }))
    (etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini").write_text(ini({
        "ml2": {"type_drivers": "flat,vxlan", "tenant_network_types": "vxlan", "mechanism_drivers": "osm_aio",
                "extension_drivers": "port_security"},
        "ml2_type_flat": {"flat_networks": "*"},
        "ml2_type_vxlan": {"vni_ranges": "1:10000"},
    }))
    # Members may make external networks (scenarios create the external network `public`).
    (etc / "neutron" / "policy.yaml").write_text('"create_network:router:external": "role:member"\n')

    # Cinder: the NFS driver over a local directory bind-mounted where the driver mounts its share.
    exports = p("cinder", "exports")
    exports.mkdir(parents=True, exist_ok=True)
    share = f"{HOST}:{exports}"
    (p("cinder") / "shares.conf").write_text(share + "\n")
    shutil.copy(VENV / "etc" / "cinder" / "api-paste.ini", etc / "cinder" / "api-paste.ini")
    (etc / "cinder" / "cinder.conf").write_text(ini({
        "DEFAULT": {"debug": False, "transport_url": transport_url(), "auth_strategy": "keystone",
                    "enabled_backends": "nfs", "default_volume_type": "__DEFAULT__", "state_path": p("cinder"),
                    "my_ip": HOST, "osapi_volume_listen": HOST, "osapi_volume_listen_port": PORTS["cinder"],
                    "osapi_volume_workers": 1, "api_paste_config": etc / "cinder" / "api-paste.ini",
                    "rootwrap_config": VENV / "etc" / "cinder" / "rootwrap.conf",
                    "image_conversion_dir": p("cinder", "conversion"),
                    "resource_query_filters_file": VENV / "etc" / "cinder" / "resource_filters.json", "glance_api_servers": url("glance"),
                    "quota_volumes": -1, "quota_snapshots": -1, "quota_gigabytes": -1, "quota_backups": -1,
                    "quota_backup_gigabytes": -1, "scheduler_driver": "cinder.scheduler.filter_scheduler.FilterScheduler",
                    "report_interval": 5, "periodic_interval": 10, "service_down_time": 60},
        "database": {"connection": db_url("cinder")},
        "keystone_authtoken": authtoken(sec),
        "nova": {**auth_section(sec), "interface": "public"},
        "service_user": {**auth_section(sec), "send_service_user_token": True},
        "oslo_concurrency": lock,
        "oslo_messaging_notifications": noop,
        "nfs": {"volume_driver": "cinder.volume.drivers.nfs.NfsDriver", "volume_backend_name": "nfs",
                "nfs_shares_config": p("cinder", "shares.conf"), "nfs_mount_point_base": p("cinder", "mnt"),
                "nas_secure_file_operations": False, "nas_secure_file_permissions": False,
                "nfs_snapshot_support": True, "nfs_sparsed_volumes": True, "nfs_qcow2_volumes": False},
    }))
    mount_point = p("cinder", "mnt", hashlib.md5(share.encode()).hexdigest())
    mount_point.mkdir(parents=True, exist_ok=True)
    if str(mount_point) not in Path("/proc/mounts").read_text():
        run(["mount", "--bind", exports, mount_point], "cinder-mount")

    # Shims on the services' PATH: `sudo` that drops rootwrap and runs the command (we are root).
    shims = p("shims")
    shims.mkdir(parents=True, exist_ok=True)
    (shims / "sudo").write_text(
        "#!/bin/sh\n# test bed: the services already run as root; drop sudo and rootwrap\n"
        "while [ $# -gt 0 ]; do case \"$1\" in\n"
        "  -*) shift ;;\n"
        "  *-rootwrap) shift; shift ;;\n"
        "  *) break ;;\n"
        "esac; done\nexec \"$@\"\n")
    os.chmod(shims / "sudo", 0o755)
    # The NFS driver wants mount.nfs to exist; the share is already there (the bind mount above).
    (shims / "mount.nfs").write_text("#!/bin/sh\n# test bed: the share is a bind-mounted local directory\nexit 0\n")
    os.chmod(shims / "mount.nfs", 0o755)

    # Nova
    shutil.copy(VENV / "etc" / "nova" / "api-paste.ini", etc / "nova" / "api-paste.ini")
    for d in ("instances", "state"):
        p("nova", d).mkdir(parents=True, exist_ok=True)
    (etc / "nova" / "nova.conf").write_text(ini({
        "DEFAULT": {"debug": False, "transport_url": transport_url(), "compute_driver": "osm_aio.OsmAioDriver",
                    "state_path": p("nova", "state"), "instances_path": p("nova", "instances"), "host": "osm-aio",
                    "my_ip": HOST, "enabled_apis": "osapi_compute", "use_rootwrap_daemon": False,
                    "instance_usage_audit": False, "heal_instance_info_cache_interval": -1,
                    "rootwrap_config": VENV / "etc" / "nova" / "rootwrap.conf",
                    "report_interval": 5, "service_down_time": 60},
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": etc / "nova" / "api-paste.ini"},
        "api_database": {"connection": db_url("nova_api")},
        "database": {"connection": db_url("nova")},
        "keystone_authtoken": authtoken(sec),
        "placement": auth_section(sec),
        "neutron": {**auth_section(sec), "service_metadata_proxy": False},
        "cinder": {**auth_section(sec), "os_region_name": REGION},
        "glance": {"region_name": REGION},
        "service_user": {**auth_section(sec), "send_service_user_token": True},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": -1},
        "filter_scheduler": {"enabled_filters": "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter"},
        "quota": {"instances": -1, "cores": -1, "ram": -1, "key_pairs": -1, "server_groups": -1,
                  "metadata_items": -1},
        "vnc": {"enabled": False},
        "os_vif_ovs": {"isolate_vif": False},
        "compute": {"max_concurrent_builds": 4},
        "oslo_concurrency": lock,
        "oslo_messaging_notifications": noop,
        "notifications": {"notification_format": "unversioned"},
        "oslo_policy": {"policy_file": etc / "nova" / "policy.yaml"},
    }))
    # Members may create flavors (scenarios find or create m1.small and m1.medium).
    (etc / "nova" / "policy.yaml").write_text('"os_compute_api:os-flavor-manage:create": "role:member"\n')


# -- databases -----------------------------------------------------------------------------------

def conf(svc, name=None):
    return p("etc", svc, name or f"{svc}.conf")


def sync_databases():
    for d in DATABASES:
        mysql(f"CREATE DATABASE IF NOT EXISTS {d} CHARACTER SET utf8")
    sec = secrets_file()
    k = ["--config-file", conf("keystone")]
    n = ["--config-file", conf("nova")]

    def keystone():
        run([BIN / "keystone-manage", *k, "db_sync"], "setup-keystone")
        run([BIN / "keystone-manage", *k, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            "setup-keystone")
        run([BIN / "keystone-manage", *k, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            "setup-keystone")
        run([BIN / "keystone-manage", *k, "bootstrap", "--bootstrap-password", sec["admin"],
             "--bootstrap-admin-url", url("keystone") + "/v3/", "--bootstrap-internal-url", url("keystone") + "/v3/",
             "--bootstrap-public-url", url("keystone") + "/v3/", "--bootstrap-region-id", REGION], "setup-keystone")

    def nova():
        run([BIN / "nova-manage", *n, "api_db", "sync"], "setup-nova")
        run([BIN / "nova-manage", *n, "cell_v2", "map_cell0", "--database_connection", db_url("nova_cell0")],
            "setup-nova")
        run([BIN / "nova-manage", *n, "cell_v2", "create_cell", "--name", "cell1"], "setup-nova")
        run([BIN / "nova-manage", *n, "db", "sync"], "setup-nova")

    jobs = {
        "keystone": keystone,
        "placement": lambda: run([BIN / "placement-manage", "--config-file", conf("placement"), "db", "sync"],
                                 "setup-placement"),
        "glance": lambda: run([BIN / "glance-manage", "--config-file", conf("glance", "glance-api.conf"), "db_sync"],
                              "setup-glance"),
        "cinder": lambda: run([BIN / "cinder-manage", "--config-file", conf("cinder"), "db", "sync"], "setup-cinder"),
        "neutron": lambda: run([BIN / "neutron-db-manage", "--config-file", conf("neutron"), "--config-file",
                                conf("neutron", "plugins/ml2/ml2_conf.ini"), "upgrade", "heads"], "setup-neutron"),
        "nova": nova,
    }
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
        futures = {ex.submit(fn): name for name, fn in jobs.items()}
        for f in concurrent.futures.as_completed(futures):
            f.result()


# -- Keystone REST (catalog, service user) --------------------------------------------------------

class Keystone:
    def __init__(self, password):
        self.token = None
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        req = urllib.request.Request(url("keystone") + "/v3/auth/tokens", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            self.token = r.headers["X-Subject-Token"]

    def call(self, method, path, body=None):
        req = urllib.request.Request(url("keystone") + "/v3" + path,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "X-Auth-Token": self.token},
                                     method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def find(self, kind, name, key=None):
        items = self.call("GET", f"/{kind}?name={name}")[key or kind]
        return items[0] if items else None

    def ensure(self, kind, key, name, body):
        found = self.find(kind, name)
        return found or self.call("POST", f"/{kind}", {key: body})[key]


def register_catalog():
    sec = secrets_file()
    ks = Keystone(sec["admin"])
    service_project = ks.ensure("projects", "project", "service", {"name": "service", "domain_id": "default"})
    user = ks.ensure("users", "user", "aio-service", {"name": "aio-service", "domain_id": "default",
                                                       "password": sec["service"]})
    ks.call("PATCH", f"/users/{user['id']}", {"user": {"password": sec["service"]}})  # rehash, cheap rounds
    for role in ("admin", "service"):
        r = ks.ensure("roles", "role", role, {"name": role})
        ks.call("PUT", f"/projects/{service_project['id']}/users/{user['id']}/roles/{r['id']}")
    existing = ks.call("GET", "/services")["services"]
    endpoints = ks.call("GET", "/endpoints")["endpoints"]
    for svc, (stype, sname, path) in SERVICES.items():
        if svc == "keystone":
            continue
        s = next((x for x in existing if x["type"] == stype), None)
        if not s:
            s = ks.call("POST", "/services", {"service": {"type": stype, "name": sname}})["service"]
        for iface in ("public", "internal", "admin"):
            if not any(e["service_id"] == s["id"] and e["interface"] == iface for e in endpoints):
                ks.call("POST", "/endpoints", {"endpoint": {"service_id": s["id"], "interface": iface,
                                                            "url": url(svc) + path, "region_id": REGION}})


# -- the services ---------------------------------------------------------------------------------

def uwsgi(name, module, env):
    start(name, [BIN / "uwsgi", "--http-socket", f"{HOST}:{PORTS[name]}", "--module", module,
                 "--master", "--processes", "1", "--threads", "2", "--lazy-apps", "--die-on-term",
                 "--need-app", "--enable-threads", "--thunder-lock", "--buffer-size", "65535",
                 "--add-header", "Connection: close", "--http-chunked-input", "--http-raw-body",
                 "--chunked-input-limit", "10485760", "--http-auto-chunked"],
          env={**env, "OSM_AIO_UWSGI": name})


def start_services():
    uwsgi("keystone", "keystone.wsgi.api:application", {"OS_KEYSTONE_CONFIG_DIR": str(p("etc", "keystone"))})
    wait_for("Keystone", lambda: http_ok(url("keystone") + "/v3"), log="keystone.log")
    register_catalog()
    uwsgi("placement", "placement.wsgi.api:application", {"OS_PLACEMENT_CONFIG_DIR": str(p("etc", "placement"))})
    uwsgi("glance", "glance.wsgi.api:application", {"OS_GLANCE_CONFIG_DIR": str(p("etc", "glance"))})
    uwsgi("neutron", "neutron.wsgi.api:application", {"OS_NEUTRON_CONFIG_DIR": str(p("etc", "neutron"))})
    uwsgi("nova", "nova.wsgi.osapi_compute:application", {"OS_NOVA_CONFIG_DIR": str(p("etc", "nova"))})
    cf = ["--config-file", str(conf("cinder"))]
    start("cinder-api", [BIN / "cinder-api", *cf])
    start("cinder-scheduler", [BIN / "cinder-scheduler", *cf])
    start("cinder-volume", [BIN / "cinder-volume", *cf])
    nf = ["--config-file", str(conf("nova"))]
    start("nova-conductor", [BIN / "nova-conductor", *nf])
    start("nova-scheduler", [BIN / "nova-scheduler", *nf])
    start("nova-compute", [BIN / "nova-compute", *nf])
    for svc in ("placement", "glance", "neutron", "nova", "cinder"):
        wait_for(svc, lambda s=svc: http_ok(url(s) + "/"), log=f"{svc}.log" if svc != "cinder" else "cinder-api.log")
    wait_for("nova-compute's host in cell1",
             lambda: discover_hosts(), timeout=240, interval=2, log="nova-compute.log")
    # A bed brought up again finds its host listed from the last run before nova-compute reported:
    # the scheduler counts it down until its first heartbeat.
    wait_for("nova-compute up", compute_up, timeout=240, interval=2, log="nova-compute.log")
    wait_for("cinder-volume up", cinder_volume_up, timeout=240, interval=2, log="cinder-volume.log")


def http_ok(u):
    try:
        with urllib.request.urlopen(u, timeout=5) as r:
            return r.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False


def discover_hosts():
    r = subprocess.run([str(BIN / "nova-manage"), "--config-file", str(conf("nova")), "cell_v2", "list_hosts"],
                       capture_output=True, text=True)
    if "osm-aio" in r.stdout:
        return True
    subprocess.run([str(BIN / "nova-manage"), "--config-file", str(conf("nova")), "cell_v2", "discover_hosts"],
                   capture_output=True, text=True)
    return False


def compute_up():
    ks = Keystone(secrets_file()["admin"])
    req = urllib.request.Request(f"{url('nova')}/v2.1/os-services?binary=nova-compute",
                                 headers={"X-Auth-Token": ks.token})
    with urllib.request.urlopen(req, timeout=10) as r:
        services = json.loads(r.read())["services"]
    return any(s["state"] == "up" and s["status"] == "enabled" for s in services)


def cinder_volume_up():
    sec = secrets_file()
    ks = Keystone(sec["admin"])
    admin = ks.find("projects", "admin")
    req = urllib.request.Request(f"{url('cinder')}/v3/{admin['id']}/os-services?binary=cinder-volume",
                                 headers={"X-Auth-Token": ks.token})
    with urllib.request.urlopen(req, timeout=10) as r:
        services = json.loads(r.read())["services"]
    return any(s["state"] == "up" and s["status"] == "enabled" for s in services)


def write_admin_clouds():
    sec = secrets_file()
    text = (
        "clouds:\n"
        "  aio-admin:\n"
        "    auth:\n"
        f"      auth_url: {url('keystone')}/v3\n"
        "      username: admin\n"
        f"      password: {sec['admin']}\n"
        "      project_name: admin\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        f"    region_name: {REGION}\n"
        "    identity_api_version: 3\n")
    f = p("admin-clouds.yaml")
    f.write_text(text)
    os.chmod(f, 0o600)
    (p("bed.json")).write_text(json.dumps({"ssh_port": SSH_PORT, "hosts_dir": str(HOSTS),
                                           "volumes_dir": str(p("cinder", "exports")),
                                           "external_cidr": "127.70.0.0/16"}))


ORDER = ["nova-compute", "nova-scheduler", "nova-conductor", "nova", "cinder-volume", "cinder-scheduler",
         "cinder-api", "neutron", "glance", "placement", "keystone", "rabbitmq", "mariadb"]


def up():
    if os.geteuid() != 0:
        raise SystemExit("openstack-aio: must run as root")
    t0 = time.time()
    STATE.mkdir(parents=True, exist_ok=True)
    fresh = not p("initialised").exists()
    busy = [f"{n}:{PORTS[n]}" for n in PORTS if not running(n if n != "cinder" else "cinder-api")
            and port_open(PORTS[n])]
    if busy:
        raise SystemExit(f"openstack-aio: ports in use by something else: {', '.join(busy)}")
    say(f"starting MariaDB and RabbitMQ (state in {STATE})")
    p("lock").mkdir(parents=True, exist_ok=True)
    write_configs()
    start_mariadb()
    start_rabbitmq()
    if fresh:
        say("creating the databases (keystone, placement, glance, neutron, cinder, nova)")
        sync_databases()
        p("initialised").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    say("starting Keystone, Placement, Glance, Neutron, Cinder, Nova")
    start_services()
    write_admin_clouds()
    say(f"up in {time.time() - t0:.0f} s; admin credentials in {p('admin-clouds.yaml')}")


def down():
    # API and compute/volume services together, then the message queue and the database.
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(stop, ORDER[:-2]))
    for name in ORDER[-2:]:
        stop(name)
    # Conversion hosts' sshd (started by nova-compute, in sessions of their own).
    hosts = HOSTS
    if hosts.exists() and SITE:
        env = dict(os.environ, OSM_AIO_HOSTS_DIR=str(hosts), OSM_AIO_SSH_PORT=str(SSH_PORT))
        subprocess.run([str(BIN / "python"), "-c", "from osm_aio import hosts; hosts.stop_all()"], env=env,
                       check=False)
    # Whatever our services forked into sessions of their own (epmd, privsep daemons): every process
    # started here carries OSM_AIO_OWNER=<this state dir> in its environment (only those: it is set for
    # the services, never for the shell that runs bed.py).
    for pid in ours():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    while time.time() < deadline and ours():
        time.sleep(0.1)
    for pid in ours():
        say(f"killing leftover process {pid}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    mp = p("cinder", "mnt")
    if mp.exists():
        for d in mp.iterdir():
            if str(d) in Path("/proc/mounts").read_text():
                subprocess.run(["umount", str(d)], check=False)
    say("stopped")


def ours():
    """Pids of live processes whose environment names this state dir (all that the bed started)."""
    marker = f"OSM_AIO_OWNER={STATE}\0".encode()
    me = os.getpid()
    found = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me:
            continue
        try:
            if marker in Path(f"/proc/{e}/environ").read_bytes():
                if Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
                    found.append(int(e))
        except OSError:
            continue
    return found


def status():
    for name in reversed(ORDER):
        pid = running(name)
        print(f"{name:18} {'running, pid ' + str(pid) if pid else 'stopped'}")


def reset():
    down()
    if STATE.exists():
        shutil.rmtree(STATE)
    shutil.rmtree(HOSTS, ignore_errors=True)
    say(f"removed {STATE}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status", "reset"])
    a = ap.parse_args()
    {"up": up, "down": down, "status": status, "reset": reset}[a.command]()


if __name__ == "__main__":
    main()
