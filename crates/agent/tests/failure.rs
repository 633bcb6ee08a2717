//! Failures are loud and recoverable: a dying server fails the copy, a checkpoint resumes it.

use std::fs;
use std::process::{Command, Stdio};

use crate::require;
use crate::util::*;

#[test]
fn killed_server_fails_the_copy_and_resume_finishes_it() {
    require!("nbdkit");
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(16 << 20, 71));
    let sock = dir.path("slow.sock");
    // Every read takes 100 ms: the copy needs over 10 s, so it is surely still running when the
    // server dies a moment after the first checkpoint.
    let slow = spawn_server(
        Command::new("nbdkit")
            .args(["-f", "-U"])
            .arg(&sock)
            .args(["--filter=delay", "file"])
            .arg(&img)
            .arg("rdelay=100ms"),
        &sock,
    );
    let dst = dir.path("dst.img");
    let ck = dir.path("copy.checkpoint");
    let uri = format!("nbd+unix:///?socket={}", sock.display());
    let copying = agent()
        .args([
            "copy",
            "--from",
            &uri,
            "--request-size",
            "65536",
            "--requests",
            "2",
            "--progress-interval",
            "0.05",
        ])
        .arg("--to")
        .arg(&dst)
        .arg("--checkpoint")
        .arg(&ck)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a checkpoint with progress", || {
        fs::read_to_string(&ck)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["done_bytes"].as_u64())
            .is_some_and(|d| d >= 256 << 10)
    });
    drop(slow);
    let out = copying.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the copy must fail when its server dies"
    );
    let ev = events(&out);
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "error", "{ev:?}");
    let msg = last["message"].as_str().unwrap();
    assert!(
        msg.contains("connection to the source") || msg.contains("closed"),
        "unclear error: {msg}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("osm-agent:"));

    let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(&ck).unwrap()).unwrap();
    let saved_bytes = saved["done_bytes"].as_u64().unwrap();
    assert!((256 << 10..16 << 20).contains(&saved_bytes), "{saved}");

    let srv = Served::start(&dir, &img);
    let ev = copy(
        &srv.uri(),
        &dst,
        &["--checkpoint", ck.to_str().unwrap(), "--resume"],
    );
    assert_eq!(ev[0]["resumed_bytes"], saved_bytes);
    let done = ev.last().unwrap();
    assert!(
        done["bytes_transferred"].as_u64().unwrap() <= (16 << 20) - saved_bytes,
        "resume copied finished ranges again: {done}"
    );
    assert_eq!(sha256(&dst), sha256(&img));
}

#[test]
fn resume_after_a_finished_copy_moves_nothing() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(1 << 20, 72));
    let srv = Served::start(&dir, &img);
    let dst = dir.path("dst.img");
    let ck = dir.path("ck");
    let ck_arg = ck.to_str().unwrap();
    copy(&srv.uri(), &dst, &["--checkpoint", ck_arg]);
    let ev = copy(
        &srv.uri(),
        &dst,
        &["--checkpoint", ck_arg, "--resume", "--verify"],
    );
    assert_eq!(ev.last().unwrap()["bytes_transferred"], 0);
    assert_eq!(ev.last().unwrap()["sha256"], sha256(&img));
}

#[test]
fn clear_errors_for_bad_requests() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 2 << 20, 0, b"data");
    let srv = Served::start(&dir, &img);

    let fail = |uri: &str, to: &std::path::Path, extra: &[&str]| -> String {
        let out = agent()
            .args(["copy", "--from", uri])
            .arg("--to")
            .arg(to)
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let ev = events(&out);
        assert_eq!(ev.last().unwrap()["event"], "error");
        ev.last().unwrap()["message"].as_str().unwrap().to_string()
    };
    let wrong = format!("nbd+unix:///nope?socket={}", srv.socket.display());
    let m = fail(&wrong, &dir.path("x.img"), &[]);
    assert!(m.contains("nope"), "{m}");
    let small = dir.path("small.img");
    fs::write(&small, [0u8; 512]).unwrap();
    let m = fail(&srv.uri(), &small, &[]);
    assert!(m.contains("less than the source"), "{m}");
    let m = fail(
        &format!(
            "nbd+unix:///disk?socket={}",
            dir.path("missing.sock").display()
        ),
        &dir.path("y.img"),
        &[],
    );
    assert!(m.contains("missing.sock"), "{m}");
    let ck = dir.path("foreign.ck");
    fs::write(
        &ck,
        r#"{"version":1,"source_size":5,"target_was_zero":true,"done":[]}"#,
    )
    .unwrap();
    let m = fail(
        &srv.uri(),
        &dir.path("z.img"),
        &["--checkpoint", ck.to_str().unwrap(), "--resume"],
    );
    assert!(m.contains("source of 5 bytes"), "{m}");
}
