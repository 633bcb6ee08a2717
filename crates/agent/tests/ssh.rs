//! A full sync through `osm-agent tunnel` over a real sshd on 127.0.0.1, and the link key's
//! `authorized_keys` line: the bridge and nothing else.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::require;
use crate::util::*;

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    _proc: Proc,
    port: u16,
    user_key: PathBuf,
    known_hosts: PathBuf,
    user: String,
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
    );
}

impl Sshd {
    fn start(dir: &Dir) -> Sshd {
        let host_key = dir.path("host_key");
        let user_key = dir.path("user_key");
        keygen(&host_key);
        keygen(&user_key);
        fs::copy(dir.path("user_key.pub"), dir.path("authorized_keys")).unwrap();
        let port = free_port();
        let config = dir.path("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowStreamLocalForwarding yes\n\
                 LogLevel ERROR\n",
                host_key.display(),
                dir.path("authorized_keys").display(),
                dir.path("sshd.pid").display()
            ),
        )
        .unwrap();
        // sshd insists on its privilege separation directory.
        let _ = fs::create_dir_all("/run/sshd");
        let proc = Proc(
            Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        wait_until("sshd to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let known_hosts = dir.path("known_hosts");
        let pubkey = fs::read_to_string(dir.path("host_key.pub")).unwrap();
        fs::write(&known_hosts, format!("[127.0.0.1]:{port} {pubkey}")).unwrap();
        let user = String::from_utf8_lossy(&run_ok(Command::new("id").arg("-un")).stdout)
            .trim()
            .to_string();
        Sshd {
            _proc: proc,
            port,
            user_key,
            known_hosts,
            user,
        }
    }

    fn tunnel(
        &self,
        remote: &Path,
        local: &Path,
        known_hosts: &Path,
        pid_file: &Path,
    ) -> std::process::Output {
        agent()
            .arg("tunnel")
            .arg("--remote-socket")
            .arg(remote)
            .arg("--local-socket")
            .arg(local)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--user",
                &self.user,
            ])
            .arg("--identity")
            .arg(&self.user_key)
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--remote-agent")
            .arg(env!("CARGO_BIN_EXE_osm-agent"))
            .arg("--daemon")
            .arg("--pid-file")
            .arg(pid_file)
            .output()
            .unwrap()
    }
}

#[test]
fn sync_through_two_tunnels() {
    require!(SSHD, "ssh", "ssh-keygen");
    let dir = Dir::new();
    let sshd = Sshd::start(&dir);
    let img = dir.path("src.img");
    write_at(&img, 64 << 20, 3 << 20, &random_bytes(5 << 20, 81));
    write_at(&img, 64 << 20, (64 << 20) - 4096, &random_bytes(4096, 82));
    let srv = Served::start(&dir, &img);

    let local = dir.path("dst/fwd.sock");
    let pid_file = dir.path("tunnel.pid");
    let out = sshd.tunnel(&srv.socket, &local, &sshd.known_hosts, &pid_file);
    assert!(
        out.status.success(),
        "tunnel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        local.exists(),
        "the local socket exists once tunnel --daemon returns"
    );

    // A second tunnel: a second ssh process, so two ciphers work in parallel.
    let local2 = dir.path("dst/fwd2.sock");
    let pid_file2 = dir.path("tunnel2.pid");
    let out = sshd.tunnel(&srv.socket, &local2, &sshd.known_hosts, &pid_file2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dst = dir.path("dst.img");
    garbage_file(&dst, 64 << 20, 83);
    let ev = sync(
        &[
            &format!("nbd+unix:///disk?socket={}", local.display()),
            &format!("nbd+unix:///disk?socket={}", local2.display()),
        ],
        &dst,
        &[],
    );
    assert_eq!(sha256(&dst), sha256(&img));
    assert_eq!(ev[0]["connections"], 2);
    let done = ev.last().unwrap();
    assert!(num(done, "bytes_on_wire") <= 6 << 20, "{done}");

    run_ok(agent().arg("stop").arg("--pid-file").arg(&pid_file2));
    run_ok(agent().arg("stop").arg("--pid-file").arg(&pid_file));
    assert!(!pid_file.exists());
    run_ok(agent().arg("stop").arg("--pid-file").arg(&pid_file));
}

#[test]
fn tunnel_refuses_an_unknown_host_key() {
    require!(SSHD, "ssh", "ssh-keygen");
    let dir = Dir::new();
    let sshd = Sshd::start(&dir);
    let other = dir.path("other_key");
    keygen(&other);
    let wrong = dir.path("wrong_known_hosts");
    let pubkey = fs::read_to_string(dir.path("other_key.pub")).unwrap();
    fs::write(&wrong, format!("[127.0.0.1]:{} {pubkey}", sshd.port)).unwrap();
    let local = dir.path("dst/fwd.sock");
    let out = sshd.tunnel(&dir.path("remote.sock"), &local, &wrong, &dir.path("t.pid"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not reach") && err.to_lowercase().contains("host key"),
        "{err}"
    );
    assert!(!local.exists());
}

/// ssh with the test's user key, as whoever holds the link key would use it.
fn ssh_as_link(sshd: &Sshd, options: &[&str], command: &[&str]) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .args(["-o", "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=20"])
        .arg("-i")
        .arg(&sshd.user_key)
        .args(["-p", &sshd.port.to_string()])
        .args(options)
        .arg("--")
        .arg(format!("{}@127.0.0.1", sshd.user))
        .args(command)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_link_key_line_allows_the_bridge_and_nothing_else() {
    require!(SSHD, "ssh", "ssh-keygen");
    let dir = Dir::new();
    let sshd = Sshd::start(&dir);
    let img = dir.path("src.img");
    write_at(&img, 8 << 20, 0, &random_bytes(1 << 20, 91));
    let srv = Served::start(&dir, &img);
    let root = srv.socket.parent().unwrap().to_path_buf();
    // The line ensure_link writes, with this test's agent and socket directory.
    let public = fs::read_to_string(dir.path("user_key.pub")).unwrap();
    fs::write(
        dir.path("authorized_keys"),
        format!(
            "restrict,command=\"{} bridge --root {}\" {public}",
            env!("CARGO_BIN_EXE_osm-agent"),
            root.display()
        ),
    )
    .unwrap();

    let canary = dir.path("canary");
    let out = ssh_as_link(&sshd, &[], &["touch", &canary.display().to_string()]);
    assert!(
        !out.status.success() && !canary.exists(),
        "the key ran a command"
    );
    let out = ssh_as_link(&sshd, &["-N", "-R", "127.0.0.1:0:127.0.0.1:9"], &[]);
    assert!(
        !out.status.success(),
        "the key opened a remote forward: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ssh -N -L: the client makes the local end, but the server refuses what goes through it.
    let local = dir.path("l.sock");
    let mut fwd = Command::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .args(["-N", "-L"])
        .arg(format!("{}:{}", local.display(), srv.socket.display()))
        .arg("-i")
        .arg(&sshd.user_key)
        .args(["-p", &sshd.port.to_string(), "--"])
        .arg(format!("{}@127.0.0.1", sshd.user))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the forward's local end", || local.exists());
    let mut through = std::os::unix::net::UnixStream::connect(&local).unwrap();
    through
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut greeting = Vec::new();
    use std::io::Read;
    let _ = through.read_to_end(&mut greeting);
    assert!(
        greeting.is_empty(),
        "the key carried an ssh -L forward to the export"
    );
    fwd.kill().unwrap();
    let out = fwd.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("open failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The bridge refuses a socket outside its root, even when asked by path.
    let other = dir.path("elsewhere/other.sock");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&other).unwrap();
    let mut child = Command::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .arg("-i")
        .arg(&sshd.user_key)
        .args(["-p", &sshd.port.to_string(), "--"])
        .arg(format!("{}@127.0.0.1", sshd.user))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", other.display()).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("osm's sockets only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the key is for still works: a whole sync through the tunnel.
    let local = dir.path("dst/fwd.sock");
    let pid_file = dir.path("tunnel.pid");
    let out = sshd.tunnel(&srv.socket, &local, &sshd.known_hosts, &pid_file);
    assert!(
        out.status.success(),
        "tunnel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = dir.path("dst.img");
    garbage_file(&dst, 8 << 20, 92);
    sync(
        &[&format!("nbd+unix:///disk?socket={}", local.display())],
        &dst,
        &[],
    );
    assert_eq!(sha256(&dst), sha256(&img));
    run_ok(agent().arg("stop").arg("--pid-file").arg(&pid_file));
}
