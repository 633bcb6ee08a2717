//! serve's socket permissions, foreground and daemon lifecycles, stop, and device.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

#[test]
fn socket_is_private() {
    let dir = Dir::new();
    let img = dir.path("img");
    write_at(&img, 1 << 20, 0, b"x");
    let srv = Served::start(&dir, &img);
    let sock = fs::metadata(&srv.socket).unwrap();
    assert_eq!(sock.mode() & 0o777, 0o600);
    let parent = fs::metadata(srv.socket.parent().unwrap()).unwrap();
    assert_eq!(parent.mode() & 0o777, 0o700);

    let open = dir.path("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    let out = agent()
        .args(["serve", "--export", "e", "--device"])
        .arg(&img)
        .arg("--socket")
        .arg(open.join("s.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing") && err.contains("0700"), "{err}");
    assert!(!open.join("s.sock").exists());
}

#[test]
fn foreground_serve_exits_cleanly_on_sigterm() {
    let dir = Dir::new();
    let img = dir.path("img");
    write_at(&img, 1 << 20, 0, b"x");
    let sock = dir.path("fg/s.sock");
    let mut p = spawn_server(
        agent()
            .args(["serve", "--export", "e", "--device"])
            .arg(&img)
            .arg("--socket")
            .arg(&sock)
            .stderr(Stdio::piped()),
        &sock,
    );
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) }, 0);
    let status = p.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "the socket is removed on exit");
}

#[test]
fn stop_is_idempotent_and_serves_concurrent_clients() {
    let dir = Dir::new();
    let img = dir.path("img");
    write_at(&img, 4 << 20, 0, &random_bytes(1 << 20, 5));
    let srv = Served::start(&dir, &img);
    let pid: i32 = fs::read_to_string(&srv.pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Two syncs at once over the same export.
    let a = dir.path("a.img");
    let b = dir.path("b.img");
    let spawn = |to: &std::path::Path| {
        agent()
            .args(["sync", "--from", &srv.uri()])
            .arg("--to")
            .arg(to)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut ca, mut cb) = (spawn(&a), spawn(&b));
    assert!(ca.wait().unwrap().success() && cb.wait().unwrap().success());
    assert_eq!(sha256(&a), sha256(&img));
    assert_eq!(sha256(&b), sha256(&img));

    run_ok(agent().arg("stop").arg("--pid-file").arg(&srv.pid_file));
    assert!(!srv.socket.exists());
    assert!(!srv.pid_file.exists());
    // Gone, or a zombie waiting for whichever process adopted the detached server.
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty()
            || state
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        "{state}"
    );
    run_ok(agent().arg("stop").arg("--pid-file").arg(&srv.pid_file));
}

#[test]
fn device_waits_for_the_serial_link() {
    let dir = Dir::new();
    let root = dir.path("host");
    let by_id = root.join("dev/disk/by-id");
    fs::create_dir_all(&by_id).unwrap();
    let vol = dir.path("volume-file");
    fs::write(&vol, b"").unwrap();
    let id = "0123456789abcdef0123456789abcdef";
    let link = by_id.join("virtio-0123456789abcdef0123");
    let child = agent()
        .args(["device", "--serial", id, "--timeout", "120"])
        .env("OSM_DEV_ROOT", &root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::os::unix::fs::symlink(&vol, &link).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        fs::canonicalize(&vol).unwrap().to_str().unwrap()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_osm-agent"))
        .args([
            "device",
            "--serial",
            "ffffffffffffffffffffffff",
            "--timeout",
            "0",
        ])
        .env("OSM_DEV_ROOT", &root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("virtio-ffffffffffffffffffff") && err.contains("attached"),
        "{err}"
    );
}

#[test]
fn version() {
    let out = run_ok(agent().arg("--version"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("osm-agent "));
}

#[test]
fn one_stop_ends_several_and_skips_missing_pid_files() {
    let dir = Dir::new();
    let img = dir.path("img");
    write_at(&img, 1 << 20, 0, &random_bytes(4096, 6));
    let first = Served::start(&dir, &img);
    let (socket, pid_file) = (dir.path("srv2/nbd.sock"), dir.path("serve2.pid"));
    run_ok(
        agent()
            .args(["serve", "--export", "disk", "--daemon"])
            .arg("--device")
            .arg(&img)
            .arg("--socket")
            .arg(&socket)
            .arg("--pid-file")
            .arg(&pid_file),
    );
    run_ok(
        agent()
            .arg("stop")
            .arg("--pid-file")
            .arg(&first.pid_file)
            .arg("--pid-file")
            .arg(dir.path("never-written.pid"))
            .arg("--pid-file")
            .arg(&pid_file),
    );
    for (s, p) in [(&first.socket, &first.pid_file), (&socket, &pid_file)] {
        assert!(!s.exists() && !p.exists(), "{} still serves", s.display());
    }
}
