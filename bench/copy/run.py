#!/usr/bin/env python3
"""Data-plane benchmark: osm-agent sync vs nbdcopy vs qemu-img convert, through OpenSSH.

Images (built once under target/bench/work, reused by later runs; --clean removes them):
  a   4 GiB ext4 holding 1 GiB of files (random data)
  a2  the same, but 2 GiB of garbage was written to the image before mkfs.ext4 -E nodiscard, so
      its free space is not zero (what "written and deleted" leaves behind)
  b   2 GiB of random data
  c   ext4 holding a copy of this machine's /usr (real binaries, libraries and text; the first
      --usr-gib GiB of it in sorted order), with 2 GiB of deleted garbage in its free space
Each image is served from a read-only loop device (losetup -r), as a Cinder volume is a block
device on a conversion host; without loop devices the files are served directly (and said so).

Links: a, a2 and b go through sshd on 127.0.0.1. c goes through a 1 Gbit/s link: sshd in one
network namespace, ssh in another, joined by a veth pair with an htb rate limit on both ends
(netem and tbf are not in this kernel, htb is).

Sources: osm-agent serve for osm-agent sync; qemu-nbd --read-only --shared=8 --persistent for
nbdcopy and qemu-img convert -W -m 16. The agent gets --streams tunnels (each its own ssh
process, as import_workload_transfer_volumes starts them); nbdcopy and qemu-img read through one
tunnel (their connections share it, as one forwarded socket would). Every tool writes a fresh
sparse file and its destination is durable inside the timed span: osm-agent sync flushes,
nbdcopy runs with --flush, qemu-img is followed by an fsync of the destination.

Measured per copy: wall seconds of the copy command alone (servers and tunnels already up), MiB/s
of virtual size, wire_bytes (the bytes the ssh processes report having sent and received on their
TCP connections, i.e. encrypted SSH traffic both ways), used_bytes (bytes of the image that are
not zero, or, with sparsify, not free), and peak_rss_bytes of each agent (the sync's max RSS, and
the serve daemon's VmHWM). Every destination is checked against the source's SHA-256 (or, where
sparsify returns free space as zeros, with e2fsck and the kept files).

Extra rows:
  b-verified  osm-agent on b with its default read-back proof; the b row runs it with --no-verify,
              like for like with tools that do not verify
  a-resync    a copy of a with 2% of its chunks rewritten (random bytes, in chunks that files fill
              entirely, so the filesystem stays sound) synced onto the destination of a first sync
              of it, by each osm-agent tool (with sparsify, the import's default, only used blocks
              are read again; without, the whole disk is): seconds, wire_bytes, changed_bytes, and
              the first sync's seconds and wire_bytes for comparison

Writes target/bench/copy.json: [{tool, image, seconds, mib_per_s, wire_bytes, used_bytes,
peak_rss_bytes, ...}, ...], the median of --runs rounds (tools take turns within a round; the
machine may be shared).
Usage: bench/copy/run.py [--runs N] [--images a,a2,b,c,a-resync,b-verified] [--streams N] [--clean]
"""
import argparse
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
GiB = 1 << 30
NS_SRC, NS_DST = "osmbench-src", "osmbench-dst"
LINK_SRC, LINK_DST = "10.231.0.1", "10.231.0.2"


def say(*a):
    print("==>", *a, file=sys.stderr, flush=True)


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def agent_binary():
    if os.environ.get("OSM_AGENT"):
        return Path(os.environ["OSM_AGENT"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    musl = target / "x86_64-unknown-linux-musl/release/osm-agent"
    say("building osm-agent (release, musl)")
    r = subprocess.run(["cargo", "build", "--release", "-p", "osm-agent", "--target", "x86_64-unknown-linux-musl"], cwd=ROOT)
    if r.returncode == 0 and musl.exists():
        return musl
    run("cargo", "build", "--release", "-p", "osm-agent", cwd=ROOT)
    return target / "release/osm-agent"


@functools.cache
def ssh_malloc_tunables():
    src = (ROOT / "crates/agent/src/tunnel.rs").read_text()
    m = re.search(r'SSH_MALLOC_TUNABLES: &str =\s*"([^"]+)"', src)
    if not m:
        sys.exit("SSH_MALLOC_TUNABLES not found in crates/agent/src/tunnel.rs")
    return m.group(1)


def random_file(path, size):
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        left = size
        while left:
            b = src.read(min(left, 16 * MiB))
            dst.write(b)
            left -= len(b)


def garbage(img, offset, size):
    with open("/dev/urandom", "rb") as src, open(img, "r+b") as dst:
        dst.seek(offset)
        for _ in range(size // (16 * MiB)):
            dst.write(src.read(16 * MiB))


def usr_tree(work, gib):
    """The first `gib` GiB of /usr's regular files, in sorted order, copied under work/usr."""
    tree = work / f"usr-{gib}"
    if (tree / ".done").exists():
        return tree
    say(f"copying {gib} GiB of /usr")
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    budget = int(gib * GiB)
    for d, dirs, files in os.walk("/usr"):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            size = os.path.getsize(p)
            if size > budget:
                continue
            out = tree / os.path.relpath(p, "/")
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(p, out)
            except OSError:
                continue
            budget -= size
            if budget < 64 << 10:
                (tree / ".done").touch()
                return tree
    (tree / ".done").touch()
    return tree


def make_images(work, names, usr_gib):
    files = work / "files"
    if any(n in ("a", "a2", "a-resync") for n in names) and not (files / ".done").exists():
        say("writing 1 GiB of files for the ext4 images")
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir(parents=True)
        for i in range(16):
            random_file(files / f"file{i:02}.bin", 64 * MiB)
        (files / ".done").touch()
    images = {}
    for name in names:
        base = {"a-resync": "a", "b-verified": "b"}.get(name, name)
        img = work / f"{base}.img"
        stamp = work / f"{base}.done"
        if not stamp.exists():
            say(f"building image {base}")
            img.unlink(missing_ok=True)
            if base == "a":
                run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", files, img, "4G")
            elif base == "a2":
                with open(img, "wb") as f:
                    f.truncate(4 * GiB)
                # The garbage goes where the kept files do not: their blocks come first.
                garbage(img, 2 * GiB, 2 * GiB)
                run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", files, img, "4G")
            elif base == "b":
                random_file(img, 2 * GiB)
            elif base == "c":
                tree = usr_tree(work, usr_gib)
                size = (int(usr_gib * 1.25) + 3) * GiB
                with open(img, "wb") as f:
                    f.truncate(size)
                garbage(img, size - 2 * GiB - 256 * MiB, 2 * GiB)
                run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", tree, img)
            stamp.touch()
        images[name] = img
    return images


def used_bytes(img):
    """Bytes of the image in 4 KiB blocks that are not all zero."""
    zero = bytes(4096)
    n = 0
    with open(img, "rb") as f:
        while True:
            b = f.read(4 << 20)
            if not b:
                return n
            n += sum(len(b[i:i + 4096]) for i in range(0, len(b), 4096) if b[i:i + 4096] != zero[:len(b[i:i + 4096])])


def fs_used_bytes(img):
    """Bytes in use by the ext4 filesystem of `img` (blocks minus free blocks)."""
    out = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True, check=True).stdout
    f = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l)}
    return (int(f["Block count"]) - int(f["Free blocks"])) * int(f["Block size"])


def file_extents(img):
    """Byte ranges of `img` that hold the data of its ext4 root directory's files."""
    dump = lambda req: subprocess.run(["debugfs", "-R", req, str(img)], capture_output=True, text=True, check=True).stdout
    out = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True, check=True).stdout
    block = int(next(l.split(":")[1] for l in out.splitlines() if l.startswith("Block size:")))
    names = [l.split()[-1] for l in dump("ls -l /").splitlines() if l.split() and l.split()[1].startswith("100")]
    extents = []
    for name in names:
        for line in dump(f"ex /{name}").splitlines()[1:]:
            phys = line.split("-")
            if len(phys) < 3:
                continue
            # "level entries logical - logical physical - physical length flags"
            first, last = int(phys[1].split()[-1]), int(phys[2].split()[0])
            extents.append((first * block, (last + 1) * block))
    return extents


def file_chunks(img, chunk_size):
    """The chunks of `img` that the data of its ext4 root directory's files fill entirely."""
    chunks = set()
    for start, end in file_extents(img):
        chunks.update(range(-(-start // chunk_size), end // chunk_size))
    return sorted(chunks)


def sha256(path):
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, proc=None, timeout=60):
    start = time.time()
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited before {path} appeared")
        if time.time() - start > timeout:
            raise RuntimeError(f"timed out waiting for {path}")
        time.sleep(0.02)


def vm_hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Link:
    """Where sshd listens and how ssh reaches it: 127.0.0.1, or a rate-limited veth pair."""

    def __init__(self, rate=None):
        self.rate = rate
        self.addr = "127.0.0.1"
        if rate:
            self.addr = LINK_SRC
            self.down()
            sh = lambda *c: run(*c)
            sh("ip", "netns", "add", NS_SRC)
            sh("ip", "netns", "add", NS_DST)
            sh("ip", "link", "add", "osmb0", "type", "veth", "peer", "name", "osmb1")
            sh("ip", "link", "set", "osmb0", "netns", NS_SRC)
            sh("ip", "link", "set", "osmb1", "netns", NS_DST)
            for ns, dev, addr in ((NS_SRC, "osmb0", LINK_SRC), (NS_DST, "osmb1", LINK_DST)):
                sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10",
                   "r2q", "1000")
                sh("tc", "-n", ns, "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb",
                   "rate", rate, "ceil", rate)

    def src(self, cmd):
        return ["ip", "netns", "exec", NS_SRC, *cmd] if self.rate else cmd

    def dst(self, cmd):
        return ["ip", "netns", "exec", NS_DST, *cmd] if self.rate else cmd

    def name(self):
        return f"{self.rate}/s veth+htb between two network namespaces" if self.rate else "127.0.0.1"

    def down(self):
        for ns in (NS_SRC, NS_DST):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


class Bench:
    def __init__(self, work, agent, streams, sync_args=(), serve_args=()):
        self.work = work
        self.agent = agent
        self.streams = streams
        self.sync_args = list(sync_args)
        self.serve_args = list(serve_args)
        self.procs = []
        self.loops = []
        self.agent_pid_files = []
        self.links = {}

    # -- setup ---------------------------------------------------------------------------
    def start_sshd(self, link):
        d = self.work / f"ssh-{'lim' if link.rate else 'lo'}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(mode=0o700)
        for k in ("host_key", "user_key"):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / k)
        shutil.copy(d / "user_key.pub", d / "authorized_keys")
        port = free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress {link.addr}\nHostKey {d}/host_key\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "AllowStreamLocalForwarding yes\nLogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n")
        os.makedirs("/run/sshd", exist_ok=True)
        p = subprocess.Popen(link.src(["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config")]), stderr=subprocess.DEVNULL)
        self.procs.append(p)
        probe = link.dst(["python3", "-c", f"import socket; socket.create_connection(('{link.addr}', {port}), timeout=1).close()"])
        for _ in range(500):
            if subprocess.run(probe, stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.02)
        host_pub = (d / "host_key.pub").read_text()
        (d / "known_hosts").write_text(f"[{link.addr}]:{port} {host_pub}")
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        self.links[link.rate] = (link, d, port, user)

    def attach(self, img):
        r = subprocess.run(["losetup", "-f", "--show", "-r", str(img)], capture_output=True, text=True)
        if r.returncode != 0:
            return None, r.stderr.strip()
        dev = r.stdout.strip()
        self.loops.append(dev)
        return dev, None

    def detach(self, dev):
        if dev in self.loops:
            subprocess.run(["losetup", "-d", dev])
            self.loops.remove(dev)

    # -- tunnels -------------------------------------------------------------------------
    def tunnel(self, link, remote, local, i):
        """The same ssh options as osm-agent tunnel, plus -v for its byte counts."""
        link, d, port, user = self.links[link.rate]
        log_path = self.work / f"ssh-{i}.log"
        log = open(log_path, "w")
        cmd = ["ssh", "-v", "-N", "-F", "none", "-o", "ExitOnForwardFailure=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={d}/known_hosts", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               "-o", "StreamLocalBindUnlink=yes", "-c", "aes128-gcm@openssh.com", "-L", f"{local}:{remote}",
               "-i", str(d / "user_key"), "-p", str(port), f"{user}@{link.addr}"]
        # The allocator settings osm-agent's tunnel gives its ssh (SSH_MALLOC_TUNABLES in
        # crates/agent/src/tunnel.rs), read from there so that the two never part.
        env = dict(os.environ, GLIBC_TUNABLES=ssh_malloc_tunables())
        p = subprocess.Popen(link.dst(cmd), stderr=log, stdin=subprocess.DEVNULL, env=env)
        wait_for(local, p)
        return p, log, log_path

    @staticmethod
    def close_tunnel(p, log, log_path):
        p.send_signal(signal.SIGTERM)
        p.wait()
        log.close()
        for line in log_path.read_text().splitlines():
            if line.startswith("Transferred:"):
                # "Transferred: sent N, received M bytes, in S seconds"
                parts = line.replace(",", "").split()
                return int(parts[2]) + int(parts[4])
        raise RuntimeError("ssh did not report its byte counts")

    # -- one copy ------------------------------------------------------------------------
    def serve(self, tool, dev, remote):
        if tool.startswith("osm-agent"):
            pid_file = remote.parent / "serve.pid"
            sparsify = ["--sparsify"] if "sparsify" in tool else []
            run(self.agent, "serve", "--device", dev, "--socket", remote, "--export", "disk",
                "--daemon", "--pid-file", pid_file, *sparsify, *self.serve_args, stdout=subprocess.DEVNULL)
            self.agent_pid_files.append(pid_file)
            return ("agent", pid_file)
        server = subprocess.Popen(["qemu-nbd", "--read-only", "--persistent", "--shared=8", "-f", "raw",
                                   "-k", str(remote), str(dev)])
        self.procs.append(server)
        wait_for(remote, server)
        return ("qemu", server)

    def stop_server(self, server):
        kind, x = server
        if kind == "agent":
            rss = vm_hwm(int(x.read_text().strip()))
            run(self.agent, "stop", "--pid-file", x)
            return rss
        x.terminate()
        x.wait()
        return None

    def copy(self, tool, link, dev, dst, extra=()):
        """One copy of `dev` onto `dst` through `link`; returns (seconds, wire, rss, done)."""
        src_dir, dst_dir = self.work / "src", self.work / "dst"
        for x in (src_dir, dst_dir):
            shutil.rmtree(x, ignore_errors=True)
            x.mkdir(mode=0o700)
        remote = src_dir / "nbd.sock"
        server = self.serve(tool, dev, remote)
        agent = tool.startswith("osm-agent")
        n = self.streams if agent else 1
        tunnels = [self.tunnel(link, remote, dst_dir / f"fwd{i}.sock", i) for i in range(n)]
        if agent:
            cmd = [self.agent, "sync", "--to", dst, "--progress-interval", "3600", *self.sync_args, *extra]
            for i in range(n):
                cmd += ["--from", f"nbd+unix:///disk?socket={dst_dir / f'fwd{i}.sock'}"]
        elif tool == "nbdcopy":
            cmd = ["nbdcopy", "--flush", f"nbd+unix:///?socket={dst_dir / 'fwd0.sock'}", dst]
        else:
            cmd = ["qemu-img", "convert", "-W", "-m", "16", "-O", "raw",
                   f"nbd+unix:///?socket={dst_dir / 'fwd0.sock'}", dst]
        start = time.monotonic()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        proc.stdout.close()
        # wait4 gives this child's own peak RSS; RUSAGE_CHILDREN is the peak over every child this
        # script ever waited for (mkfs, qemu-img, earlier syncs), so it could not tell one sync's.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode == 0 and tool == "qemu-img":
            fd = os.open(dst, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {out[-2000:]}")
        wire = sum(self.close_tunnel(*t) for t in tunnels)
        serve_rss = self.stop_server(server)
        done = json.loads(out.strip().splitlines()[-1]) if agent else {}
        rss = {"sync": usage.ru_maxrss * 1024, "serve": serve_rss} if agent else None
        return seconds, wire, rss, done

    def one(self, tool, name, link, dev, size, want_sha, used):
        dst = self.work / "dst.img"
        dst.unlink(missing_ok=True)
        extra = ["--no-verify"] if name == "b" else []
        seconds, wire, rss, done = self.copy(tool, link, dev, dst, extra)
        if "sparsify" in tool and name in ("a", "a2", "c"):
            # Free space comes back as zeros, not as the source's garbage: check the filesystem
            # instead of the whole image's checksum.
            fsck = subprocess.run(["e2fsck", "-fn", str(dst)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if fsck.returncode != 0:
                raise RuntimeError(f"{tool} on {name}: e2fsck -fn of the copy failed: {fsck.stdout[-2000:]}")
        elif sha256(dst) != want_sha:
            raise RuntimeError(f"{tool} on {name}: destination differs from the source")
        dst.unlink()
        row = {"tool": tool, "image": name, "seconds": round(seconds, 2),
               "mib_per_s": round(size / MiB / seconds, 1), "wire_bytes": wire, "used_bytes": used,
               "link": link.name()}
        if rss:
            row["peak_rss_bytes"] = rss
        if done:
            row["verified"] = done.get("verified")
        return row

    def resync(self, tool, link, base_img, used):
        """A first sync of a copy of `base_img`, 2% of its chunks rewritten, then the re-sync."""
        img = self.work / "a-resync.img"
        run("cp", "--sparse=always", base_img, img)
        dst = self.work / "dst.img"
        dst.unlink(missing_ok=True)
        manifest = self.work / "first.manifest"
        dev, _ = self.attach(img)
        dev = dev or img
        s1, w1, _, d1 = self.copy(tool, link, dev, dst, ["--manifest", manifest])
        # 2% of all chunks, chosen among those that files fill, rewritten with random bytes.
        raw = manifest.read_bytes()
        chunk_size = int.from_bytes(raw[12:16], "big")
        chunks = (len(raw) - 56) // 16
        data = file_chunks(img, chunk_size)
        rng = random.Random(len(data))
        pick = rng.sample(data, max(1, chunks * 2 // 100))
        with open(img, "r+b") as f:
            for i in pick:
                f.seek(i * chunk_size)
                f.write(os.urandom(chunk_size))
            f.flush()
            os.fsync(f.fileno())
        self.detach(dev)
        dev, _ = self.attach(img)
        dev = dev or img
        s2, w2, rss, d2 = self.copy(tool, link, dev, dst)
        if sha256(dst) != sha256(img):
            raise RuntimeError(f"a-resync with {tool}: destination differs from the rewritten source")
        self.detach(dev)
        img.unlink()
        dst.unlink()
        changed = len(pick) * chunk_size
        return {"tool": tool, "image": "a-resync", "seconds": round(s2, 2),
                "mib_per_s": round(4 * GiB / MiB / s2, 1), "wire_bytes": w2, "used_bytes": used,
                "changed_bytes": changed, "first_seconds": round(s1, 2), "first_wire_bytes": w1,
                "bytes_written": d2.get("bytes_written"), "link": link.name(), "peak_rss_bytes": rss}

    def cleanup(self):
        for pf in self.agent_pid_files:
            subprocess.run([str(self.agent), "stop", "--pid-file", str(pf)], stderr=subprocess.DEVNULL)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for dev in list(self.loops):
            self.detach(dev)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="copies per tool and image; the median is kept")
    ap.add_argument("--images", default="a,a2,b,b-verified,a-resync,c")
    ap.add_argument("--tools", default="osm-agent,osm-agent+sparsify,nbdcopy,qemu-img")
    ap.add_argument("--streams", type=int, default=4, help="tunnels (ssh processes) for osm-agent")
    ap.add_argument("--usr-gib", type=float, default=1.5, help="how much of /usr image c holds")
    ap.add_argument("--rate", default="1gbit", help="the rate limit of image c's link")
    ap.add_argument("--sync-args", default="", help="extra arguments for osm-agent sync, e.g. '--chunk-size 262144'")
    ap.add_argument("--serve-args", default="", help="extra arguments for osm-agent serve, e.g. '--compression-level 3'")
    ap.add_argument("--out", default="copy.json", help="the result file under target/bench")
    ap.add_argument("--clean", action="store_true", help="remove the cached images and exit")
    args = ap.parse_args()
    out_dir = ROOT / "target/bench"
    work = out_dir / "work"
    if args.clean:
        shutil.rmtree(work, ignore_errors=True)
        return
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    for tool in ("ssh", "/usr/sbin/sshd", "qemu-nbd", "nbdcopy", "qemu-img", "mkfs.ext4", "sha256sum", "ip", "tc"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: run scripts/bootstrap.sh test")
    agent = agent_binary()
    names = args.images.split(",")
    images = make_images(work, names, args.usr_gib)
    b = Bench(work, agent, args.streams, args.sync_args.split(), args.serve_args.split())
    results = []
    loopback = Link()
    limited = Link(args.rate) if "c" in names else None
    try:
        b.start_sshd(loopback)
        if limited:
            b.start_sshd(limited)
        for name in names:
            img = images[name]
            size = img.stat().st_size
            used = fs_used_bytes(img) if name in ("a", "a2", "c", "a-resync") else used_bytes(img)
            link = limited if name == "c" else loopback
            if name == "a-resync":
                for tool in (t for t in args.tools.split(",") if t.startswith("osm-agent")):
                    rs = [b.resync(tool, link, img, used) for _ in range(args.runs)]
                    for r in rs:
                        say(f"a-resync {tool}: first sync {r['first_seconds']} s, re-sync {r['seconds']} s "
                            f"({100 * r['seconds'] / r['first_seconds']:.0f}%), {r['wire_bytes'] / MiB:.1f} MiB "
                            f"on the wire for {r['changed_bytes'] / MiB:.0f} MiB changed")
                    rs.sort(key=lambda r: r["seconds"])
                    med = dict(rs[len(rs) // 2])
                    med["all_seconds"] = [r["seconds"] for r in rs]
                    med["all_first_seconds"] = [r["first_seconds"] for r in rs]
                    results.append(med)
                continue
            want = sha256(img)
            dev, why = b.attach(img)
            if dev is None:
                say(f"NOTE: no loop device ({why}); serving {img} as a regular file instead")
                dev = img
            tools = ["osm-agent"] if name == "b-verified" else args.tools.split(",")
            runs = {t: [] for t in tools}
            # Tools take turns within each round, so a change in machine load hits all of them.
            for i in range(args.runs):
                for tool in tools:
                    r = b.one(tool, name, link, dev, size, want, used)
                    say(f"{tool:18} {name:10} run {i + 1}: {r['seconds']:7.2f} s  {r['mib_per_s']:8.1f} MiB/s  "
                        f"{r['wire_bytes'] / MiB:9.1f} MiB on the wire  (load {os.getloadavg()[0]:.1f})")
                    runs[tool].append(r)
            for tool in tools:
                rs = sorted(runs[tool], key=lambda r: r["seconds"])
                med = dict(rs[len(rs) // 2])
                med["all_seconds"] = [r["seconds"] for r in runs[tool]]
                med["source"] = "loop device" if dev != img else "regular file"
                results.append(med)
            b.detach(dev)
    finally:
        b.cleanup()
        if limited:
            limited.down()
    (out_dir / args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'tool':20} {'image':10} {'seconds':>8} {'MiB/s':>9} {'wire MiB':>10} {'used MiB':>9}   vs nbdcopy")
    base = {r["image"]: r["seconds"] for r in results if r["tool"] == "nbdcopy"}
    base["b-verified"] = base.get("b")
    for r in results:
        ratio = f"{base[r['image']] / r['seconds']:.2f}x" if base.get(r["image"]) else ""
        print(f"{r['tool']:20} {r['image']:10} {r['seconds']:8.2f} {r['mib_per_s']:9.1f} "
              f"{r['wire_bytes'] / MiB:10.1f} {r['used_bytes'] / MiB:9.0f}   {ratio}")
    print(f"\nwrote {out_dir / args.out}")


if __name__ == "__main__":
    main()
