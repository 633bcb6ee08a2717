#!/usr/bin/env python3
"""Copy benchmark: osm-agent copy vs nbdcopy vs qemu-img convert, through ssh -L on 127.0.0.1.

Images (built once under target/bench/work, reused by later runs; --clean removes them):
  a   4 GiB ext4 holding 1 GiB of files (random data)
  a2  the same, but 2 GiB of garbage was written to the image before mkfs.ext4 -E nodiscard, so
      its free space is not zero (what "written and deleted" leaves behind)
  b   2 GiB of random data
Each image is served from a read-only loop device (losetup -r), as a Cinder volume is a block
device on a conversion host; without loop devices the files are served directly (and said so).

Sources: osm-agent serve for osm-agent copy; qemu-nbd --read-only --shared=4 --persistent for
nbdcopy and qemu-img convert -W -m 16. Every copy reads through one ssh -L tunnel (aes128-gcm,
the options osm-agent tunnel uses) to a real sshd on 127.0.0.1, and writes a fresh sparse file.

Measured per copy: wall seconds of the copy command alone (servers and tunnel already up;
osm-agent copy includes its final fdatasync of the destination, the others do not flush),
MiB/s of virtual size, and wire_bytes: the bytes ssh itself reports having sent and received on
its TCP connection ("Transferred:" at exit with -v), i.e. encrypted SSH traffic, both directions.
Every destination is checked against the source's SHA-256.

Writes target/bench/copy.json: [{tool, image, seconds, mib_per_s, wire_bytes, ...}, ...], the
median of --runs rounds (tools take turns within a round; the machine may be shared).
Usage: bench/copy/run.py [--runs N] [--images a,a2,b] [--clean]
"""
import argparse
import json
import os
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


def random_file(path, size):
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        left = size
        while left:
            b = src.read(min(left, 16 * MiB))
            dst.write(b)
            left -= len(b)


def make_images(work, names):
    files = work / "files"
    if not (files / ".done").exists():
        say("writing 1 GiB of files for the ext4 images")
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir(parents=True)
        for i in range(16):
            random_file(files / f"file{i:02}.bin", 64 * MiB)
        (files / ".done").touch()
    images = {}
    for name in names:
        img = work / f"{name}.img"
        stamp = work / f"{name}.done"
        if not stamp.exists():
            say(f"building image {name}")
            img.unlink(missing_ok=True)
            if name == "a":
                run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", files, img, "4G")
            elif name == "a2":
                with open(img, "wb") as f:
                    f.truncate(4 * GiB)
                # The garbage goes where the kept files do not: their blocks come first.
                with open("/dev/urandom", "rb") as src, open(img, "r+b") as dst:
                    dst.seek(2 * GiB)
                    for _ in range(2 * GiB // (16 * MiB)):
                        dst.write(src.read(16 * MiB))
                run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", files, img, "4G")
            elif name == "b":
                random_file(img, 2 * GiB)
            stamp.touch()
        images[name] = img
    return images


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


class Bench:
    def __init__(self, work, agent, agent_args):
        self.work = work
        self.agent = agent
        self.agent_args = agent_args
        self.procs = []
        self.loops = []
        self.agent_pid_files = []

    # -- setup ---------------------------------------------------------------------------
    def start_sshd(self):
        d = self.work / "ssh"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(mode=0o700)
        for k in ("host_key", "user_key"):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / k)
        shutil.copy(d / "user_key.pub", d / "authorized_keys")
        self.port = free_port()
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "AllowStreamLocalForwarding yes\nLogLevel ERROR\n")
        os.makedirs("/run/sshd", exist_ok=True)
        p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL)
        self.procs.append(p)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        host_pub = (d / "host_key.pub").read_text()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub}")
        self.ssh_dir = d
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()

    def attach(self, img):
        r = subprocess.run(["losetup", "-f", "--show", "-r", str(img)], capture_output=True, text=True)
        if r.returncode != 0:
            return None, r.stderr.strip()
        dev = r.stdout.strip()
        self.loops.append(dev)
        return dev, None

    # -- one copy ------------------------------------------------------------------------
    def tunnel(self, remote, local):
        """The same ssh options as osm-agent tunnel, plus -v for its byte counts."""
        d = self.ssh_dir
        log = open(self.work / "ssh.log", "w")
        cmd = ["ssh", "-v", "-N", "-F", "none", "-o", "ExitOnForwardFailure=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={d}/known_hosts", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               "-o", "StreamLocalBindUnlink=yes", "-c", "aes128-gcm@openssh.com", "-L", f"{local}:{remote}",
               "-i", str(d / "user_key"), "-p", str(self.port), f"{self.user}@127.0.0.1"]
        p = subprocess.Popen(cmd, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(local, p)
        return p, log

    def close_tunnel(self, p, log):
        p.send_signal(signal.SIGTERM)
        p.wait()
        log.close()
        for line in (self.work / "ssh.log").read_text().splitlines():
            if line.startswith("Transferred:"):
                # "Transferred: sent N, received M bytes, in S seconds"
                parts = line.replace(",", "").split()
                return int(parts[2]) + int(parts[4])
        raise RuntimeError("ssh did not report its byte counts")

    def one(self, tool, name, dev, size, want_sha):
        src_dir = self.work / "src"
        dst_dir = self.work / "dst"
        for x in (src_dir, dst_dir):
            shutil.rmtree(x, ignore_errors=True)
            x.mkdir(mode=0o700)
        remote = src_dir / "nbd.sock"
        local = dst_dir / "fwd.sock"
        dst = self.work / "dst.img"
        dst.unlink(missing_ok=True)
        server = None
        pid_file = src_dir / "serve.pid"
        agent = tool.startswith("osm-agent")
        if agent:
            sparsify = ["--sparsify"] if tool == "osm-agent+sparsify" else []
            run(self.agent, "serve", "--device", dev, "--socket", remote, "--export", "disk",
                "--daemon", "--pid-file", pid_file, *sparsify)
            self.agent_pid_files.append(pid_file)
            uri = f"nbd+unix:///disk?socket={local}"
        else:
            server = subprocess.Popen(["qemu-nbd", "--read-only", "--persistent", "--shared=4", "-f", "raw",
                                       "-k", str(remote), str(dev)])
            self.procs.append(server)
            wait_for(remote, server)
            uri = f"nbd+unix:///?socket={local}"
        ssh, log = self.tunnel(remote, local)
        if agent:
            cmd = [self.agent, "copy", "--from", uri, "--to", dst, "--progress-interval", "3600", *self.agent_args]
        elif tool == "nbdcopy":
            cmd = ["nbdcopy", uri, dst]
        else:
            cmd = ["qemu-img", "convert", "-W", "-m", "16", "-O", "raw", uri, dst]
        start = time.monotonic()
        r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, text=True)
        seconds = time.monotonic() - start
        if r.returncode != 0:
            raise RuntimeError(f"{tool} failed on {name}: {r.stdout}")
        wire = self.close_tunnel(ssh, log)
        if agent:
            run(self.agent, "stop", "--pid-file", pid_file)
        else:
            server.terminate()
            server.wait()
        if tool == "osm-agent+sparsify" and name in ("a", "a2"):
            # Free space comes back as zeros, not as the source's garbage: check the filesystem and
            # the kept files instead of the whole image's checksum.
            fsck = subprocess.run(["e2fsck", "-fn", str(dst)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if fsck.returncode != 0:
                raise RuntimeError(f"{tool} on {name}: e2fsck -fn of the copy failed: {fsck.stdout[-2000:]}")
        elif sha256(dst) != want_sha:
            raise RuntimeError(f"{tool} on {name}: destination differs from the source")
        dst.unlink()
        return {"tool": tool, "image": name, "seconds": round(seconds, 2),
                "mib_per_s": round(size / MiB / seconds, 1), "wire_bytes": wire}

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
        for dev in self.loops:
            subprocess.run(["losetup", "-d", dev])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="copies per tool and image; the median is kept")
    ap.add_argument("--images", default="a,a2,b")
    ap.add_argument("--tools", default="osm-agent,osm-agent+sparsify,nbdcopy,qemu-img")
    ap.add_argument("--agent-args", default="", help="extra arguments for osm-agent copy, e.g. '--connections 1'")
    ap.add_argument("--clean", action="store_true", help="remove the cached images and exit")
    args = ap.parse_args()
    out_dir = ROOT / "target/bench"
    work = out_dir / "work"
    if args.clean:
        shutil.rmtree(work, ignore_errors=True)
        return
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    for tool in ("ssh", "/usr/sbin/sshd", "qemu-nbd", "nbdcopy", "qemu-img", "mkfs.ext4", "sha256sum"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: run scripts/bootstrap.sh test")
    agent = agent_binary()
    names = args.images.split(",")
    images = make_images(work, names)
    b = Bench(work, agent, args.agent_args.split())
    results = []
    try:
        b.start_sshd()
        for name in names:
            img = images[name]
            size = img.stat().st_size
            want = sha256(img)
            dev, why = b.attach(img)
            if dev is None:
                say(f"NOTE: no loop device ({why}); serving {img} as a regular file instead")
                dev = img
            tools = args.tools.split(",")
            runs = {t: [] for t in tools}
            # Tools take turns within each round, so a change in machine load hits all of them.
            for i in range(args.runs):
                for tool in tools:
                    r = b.one(tool, name, dev, size, want)
                    say(f"{tool:9} {name:3} run {i + 1}: {r['seconds']:7.2f} s  {r['mib_per_s']:8.1f} MiB/s  "
                        f"{r['wire_bytes'] / MiB:9.1f} MiB on the wire  (load {os.getloadavg()[0]:.1f})")
                    runs[tool].append(r)
            for tool in tools:
                rs = sorted(runs[tool], key=lambda r: r["seconds"])
                med = dict(rs[len(rs) // 2])
                med["all_seconds"] = [r["seconds"] for r in runs[tool]]
                med["source"] = "loop device" if dev != img else "regular file"
                results.append(med)
    finally:
        b.cleanup()
    (out_dir / "copy.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'tool':10} {'image':6} {'seconds':>8} {'MiB/s':>9} {'wire MiB':>10}   vs nbdcopy")
    base = {r["image"]: r["seconds"] for r in results if r["tool"] == "nbdcopy"}
    for r in results:
        ratio = f"{base[r['image']] / r['seconds']:.2f}x" if r["image"] in base else ""
        print(f"{r['tool']:10} {r['image']:6} {r['seconds']:8.2f} {r['mib_per_s']:9.1f} "
              f"{r['wire_bytes'] / MiB:10.1f}   {ratio}")
    print(f"\nwrote {out_dir / 'copy.json'}")


if __name__ == "__main__":
    main()
