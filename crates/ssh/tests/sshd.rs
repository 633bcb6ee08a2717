//! osm-ssh against a real OpenSSH server on 127.0.0.1 with generated keys.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use osm_ssh::{Host, HostKeyPolicy, SshError};

struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(ok.success());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts sshd with the host key `host_key` (generated if missing), accepting `user_key.pub`.
fn sshd(dir: &Path, host_key: &Path, port: u16) -> Option<Sshd> {
    if !Path::new("/usr/sbin/sshd").exists() {
        let msg = "/usr/sbin/sshd is missing (install openssh-server: scripts/bootstrap.sh test)";
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    if !host_key.exists() {
        keygen(host_key);
    }
    let user_key = dir.join("user_key");
    if !user_key.exists() {
        keygen(&user_key);
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))
            .expect("authorized_keys");
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {hk}\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPidFile {dir}/sshd.pid\nSetEnv HOME={home}\n",
            hk = host_key.display(),
            dir = dir.display(),
            home = home.display()
        ),
    )
    .expect("config");
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Sshd {
                child,
                port,
                dir: dir.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sshd did not listen on port {port}");
}

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

fn host(s: &Sshd) -> Host {
    Host::new(
        "127.0.0.1",
        s.port,
        user(),
        s.dir.join("user_key"),
        s.dir.join("known_hosts"),
    )
}

const T: Duration = Duration::from_secs(20);

#[test]
fn trust_on_first_use_then_verify_then_refuse_a_changed_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let Some(s) = sshd(tmp.path(), &tmp.path().join("host_key"), port) else {
        return;
    };
    let h = host(&s);
    match h.connect(HostKeyPolicy::Verify, T) {
        Err(SshError::HostKeyUnknown { .. }) => {}
        other => panic!("unknown host must be refused under Verify, got {other:?}"),
    }
    h.connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("first use records the key");
    let kh = std::fs::read_to_string(tmp.path().join("known_hosts")).expect("known_hosts written");
    assert!(
        kh.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")),
        "{kh}"
    );
    let mode = std::fs::metadata(tmp.path().join("known_hosts"))
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let found = Command::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.1]:{port}"), "-f"])
        .arg(tmp.path().join("known_hosts"))
        .output()
        .expect("ssh-keygen -F");
    assert!(found.status.success(), "OpenSSH reads the recorded entry");
    h.connect(HostKeyPolicy::Verify, T)
        .expect("recorded key verifies");
    h.connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("still matches");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("known_hosts")).expect("read"),
        kh,
        "not recorded twice"
    );
    drop(s);

    let Some(s2) = sshd(tmp.path(), &tmp.path().join("other_host_key"), port) else {
        return;
    };
    for policy in [HostKeyPolicy::Verify, HostKeyPolicy::TrustOnFirstUse] {
        match host(&s2).connect(policy, T) {
            Err(e @ SshError::HostKeyChanged { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("does not match") && msg.contains("ssh-keygen -R"),
                    "{msg}"
                );
            }
            other => panic!("a changed key must be refused, got {other:?}"),
        }
    }
}

#[test]
fn commands_are_quoted_and_failures_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(s) = sshd(tmp.path(), &tmp.path().join("host_key"), free_port()) else {
        return;
    };
    let c = host(&s)
        .connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("connect");
    let canary = tmp.path().join("canary");
    let nasty = [
        format!("web 01; touch {}", canary.display()),
        format!("$(touch {})", canary.display()),
        format!("`touch {}`", canary.display()),
        format!(
            "it's \"quoted\"\nnew line && touch {} | cat",
            canary.display()
        ),
        "ünïcödé ☃ -- --help".to_string(),
        String::new(),
    ];
    for arg in &nasty {
        let out = c.run(&["printf", "%s", arg.as_str()]).expect("printf");
        assert_eq!(&out.stdout, arg);
    }
    assert!(!canary.exists(), "a quoted argument executed something");
    assert_eq!(
        c.home().expect("home"),
        tmp.path().join("home").display().to_string()
    );

    match c.run(&["sh", "-c", "echo oops >&2; exit 3"]) {
        Err(SshError::Command {
            status: 3,
            stderr,
            command,
            ..
        }) => {
            assert_eq!(stderr, "oops");
            assert_eq!(command, "sh -c 'echo oops >&2; exit 3'");
        }
        other => panic!("expected a command failure, got {other:?}"),
    }
    let mut lines = Vec::new();
    c.stream(
        &["sh", "-c", "for i in 1 2 3; do echo line $i; done"],
        |l| lines.push(l.to_string()),
    )
    .expect("stream");
    assert_eq!(lines, ["line 1", "line 2", "line 3"]);
}

/// A host that goes quiet ends the call after the silence bound, naming the host and the
/// command; output on both streams is read together, so a flood of stderr cannot stall stdout.
#[test]
fn silence_is_bounded_and_both_streams_drain_together() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(s) = sshd(tmp.path(), &tmp.path().join("host_key"), free_port()) else {
        return;
    };
    let mut c = host(&s)
        .connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("connect");
    // 4 MiB on stderr before anything on stdout: far beyond any channel window.
    let out = c
        .run(&[
            "sh",
            "-c",
            "head -c 4194304 /dev/zero | tr '\\0' e >&2; echo done",
        ])
        .expect("flooded stderr");
    assert_eq!(out.stdout, "done\n");
    assert_eq!(out.stderr.len(), 4 << 20);

    c.set_silence(Duration::from_secs(2));
    let started = std::time::Instant::now();
    match c.run(&["sleep", "30"]) {
        Err(e @ SshError::Silent { .. }) => {
            let m = e.to_string();
            assert!(m.contains("127.0.0.1") && m.contains("sleep 30"), "{m}");
        }
        other => panic!("expected silence, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // A command known to wait quietly gets its time.
    c.run_quiet(&["sleep", "3"], Duration::from_secs(5))
        .expect("a known quiet wait");

    // Frozen: the sshd serving this session stops answering altogether.
    let c = host(&s).connect(HostKeyPolicy::Verify, T).expect("connect");
    let pid = c.run(&["sh", "-c", "echo $PPID"]).expect("pid").stdout;
    let mut c = c;
    c.set_silence(Duration::from_secs(2));
    let pid = pid.trim().to_string();
    Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill");
    let started = std::time::Instant::now();
    let r = c.run(&["true"]);
    Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill");
    assert!(r.is_err(), "a frozen sshd must fail the call");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn files_read_back_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(s) = sshd(tmp.path(), &tmp.path().join("host_key"), free_port()) else {
        return;
    };
    let c = host(&s)
        .connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("connect");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let remote = tmp.path().join("bin.dat").display().to_string();
    c.write_file(&remote, &bytes, 0o600).expect("write");
    assert_eq!(c.read_file(&remote).expect("read"), bytes);
    assert!(c.read_file(&format!("{remote}.missing")).is_err());
}

#[test]
fn upload_only_when_the_checksum_differs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(s) = sshd(tmp.path(), &tmp.path().join("host_key"), free_port()) else {
        return;
    };
    let c = host(&s)
        .connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("connect");
    let local = tmp.path().join("payload");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &data).expect("payload");
    let remote = tmp.path().join("home/.osm/bin/agent with space");
    let remote_s = remote.display().to_string();
    assert!(c.upload(&local, &remote_s, 0o755).expect("upload"));
    assert_eq!(std::fs::read(&remote).expect("uploaded"), data);
    assert_eq!(
        std::fs::metadata(&remote)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert!(
        !c.upload(&local, &remote_s, 0o755).expect("second upload"),
        "same checksum: no upload"
    );
    std::fs::write(&local, b"changed").expect("change");
    assert!(c.upload(&local, &remote_s, 0o755).expect("third upload"));
    assert_eq!(std::fs::read(&remote).expect("uploaded"), b"changed");
    let leftovers: Vec<_> = std::fs::read_dir(remote.parent().expect("dir"))
        .expect("ls")
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left");
}

#[test]
fn a_refused_user_fails_after_the_grace_period_not_the_timeout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let Some(s) = sshd(tmp.path(), &tmp.path().join("host_key"), port) else {
        return;
    };
    host(&s)
        .connect(HostKeyPolicy::TrustOnFirstUse, T)
        .expect("the right user logs in");
    let wrong = Host::new(
        "127.0.0.1",
        s.port,
        "no-such-user-$(id)",
        s.dir.join("user_key"),
        s.dir.join("known_hosts"),
    );
    let started = std::time::Instant::now();
    match wrong.wait_reachable(HostKeyPolicy::Verify, Duration::from_secs(600)) {
        Err(e @ SshError::Session { stage, .. }) if stage.starts_with("authentication") => {
            assert!(e.to_string().contains("no-such-user-$(id)@"), "{e}")
        }
        other => panic!("a refused user must fail, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= osm_ssh::AUTH_GRACE,
        "retried for the grace period, waited {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(300),
        "not until the timeout, waited {waited:?}"
    );
}
