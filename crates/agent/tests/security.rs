//! Who can read an export: not another local user, and only the attached device is exported.

use std::fs;
use std::process::Command;

use crate::require;
use crate::util::*;

const OTHER_USER: &str = "osm-test-other";

/// A second local account for the test (created once; needs root).
fn other_user() -> bool {
    if Command::new("id")
        .arg(OTHER_USER)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    let made = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            OTHER_USER,
        ])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        let msg = format!("cannot create the user {OTHER_USER} (needs root)");
        assert!(!crate::util::in_ci(), "{msg}");
        eprintln!("\n*** SKIPPED: {msg} ***\n");
        return false;
    }
    true
}

#[test]
fn another_local_user_cannot_open_the_export() {
    require!("nbdinfo", "runuser");
    if !other_user() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    // Everything above the agent's own directory is open, so only the agent's modes protect the export.
    fs::set_permissions(dir.path(""), fs::Permissions::from_mode(0o755)).expect("chmod");
    let img = dir.path("disk.img");
    write_at(&img, 0, 0, &random_bytes(1 << 20, 3));
    let srv = Served::start(&dir, &img);
    let as_other = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", OTHER_USER, "--"])
            .args(args)
            .output()
            .expect("runuser")
    };
    let probe = as_other(&["nbdinfo", &srv.uri()]);
    assert!(
        !probe.status.success(),
        "another user read the export: {}",
        String::from_utf8_lossy(&probe.stdout)
    );
    let err = String::from_utf8_lossy(&probe.stderr);
    assert!(err.contains("ermission denied"), "{err}");
    // The same command as the owner works, so the refusal above is about permissions.
    run_ok(Command::new("nbdinfo").arg(srv.uri()));
    let socket_dir = srv.socket.parent().expect("dir").to_path_buf();
    let open_dir = as_other(&["ls", &socket_dir.display().to_string()]);
    assert!(
        !open_dir.status.success(),
        "another user listed the socket directory"
    );
    // Even with its directory opened up by mistake, the socket itself (0600) refuses the other user.
    fs::set_permissions(&socket_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let probe = as_other(&["nbdinfo", &srv.uri()]);
    assert!(
        !probe.status.success(),
        "another user read the export through an open directory"
    );
    assert!(String::from_utf8_lossy(&probe.stderr).contains("ermission denied"));
}

#[test]
fn serve_refuses_a_path_that_is_not_the_attached_device() {
    let dir = Dir::new();
    let root = dir.path("host");
    let by_id = root.join("dev/disk/by-id");
    fs::create_dir_all(&by_id).expect("by-id");
    let volume = dir.path("volume-file");
    write_at(&volume, 1 << 20, 0, b"data");
    let serial = "0123456789abcdefghijKLMNOP";
    std::os::unix::fs::symlink(&volume, by_id.join("virtio-0123456789abcdefghij")).expect("link");
    let secret = dir.path("not-a-volume");
    fs::write(&secret, "private").expect("file");
    let serve = |device: &std::path::Path| {
        agent()
            .env("OSM_DEV_ROOT", &root)
            .args([
                "serve",
                "--export",
                "disk",
                "--daemon",
                "--expect-serial",
                serial,
            ])
            .arg("--device")
            .arg(device)
            .arg("--socket")
            .arg(dir.path("srv/nbd.sock"))
            .arg("--pid-file")
            .arg(dir.path("serve.pid"))
            .output()
            .expect("run agent")
    };
    let refused = serve(&secret);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("refusing to export") && err.contains("not the device attached with serial"),
        "{err}"
    );
    assert!(!dir.path("srv/nbd.sock").exists(), "nothing was exported");
    let ok = serve(&volume);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    run_ok(
        agent()
            .arg("stop")
            .arg("--pid-file")
            .arg(dir.path("serve.pid")),
    );
}
