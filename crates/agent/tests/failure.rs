//! Failures are loud and bounded, and every retry converges from what the destination holds:
//! a dying source, a killed sync, writes lost in a crash, a corrupted chunk, a changed source.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::require;
use crate::util::*;

const MIB: u64 = 1 << 20;

/// Overwrites chunk `i` (1 MiB) of `path` with garbage, as a write lost in a crash leaves it.
fn spoil_chunk(path: &Path, i: u64, seed: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&random_bytes(MIB as usize, seed), i * MIB)
        .unwrap();
}

#[test]
fn killed_server_fails_the_sync_and_a_retry_finishes_it() {
    require!("nbdkit");
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(32 << 20, 71));
    let sock = dir.path("slow.sock");
    // One thread, and every read takes 100 ms: the sync needs over 3 s, so it is surely still
    // running when the server dies a moment after the first chunks landed.
    let slow = spawn_server(
        Command::new("nbdkit")
            .args(["-f", "-t", "1", "-U"])
            .arg(&sock)
            .args(["--filter=delay", "file"])
            .arg(&img)
            .arg("rdelay=100ms"),
        &sock,
    );
    let dst = dir.path("dst.img");
    garbage_file(&dst, 32 << 20, 70);
    let uri = format!("nbd+unix:///?socket={}", sock.display());
    let syncing = agent()
        .args(["sync", "--from", &uri, "--connections", "1"])
        .arg("--to")
        .arg(&dst)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(slow);
    let out = syncing.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the sync must fail when its server dies"
    );
    let ev = events(&out);
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "error", "{ev:?}");
    let msg = last["message"].as_str().unwrap();
    assert!(
        msg.contains(&sock.display().to_string()),
        "unclear error: {msg}"
    );

    // The retry reads what the destination holds: chunks that landed are not written again.
    let srv = Served::start(&dir, &img);
    let ev = sync(&[&srv.uri()], &dst, &[]);
    let done = ev.last().unwrap();
    assert!(
        num(done, "chunks_equal") >= 1,
        "nothing kept from the first run: {done}"
    );
    assert!(num(done, "bytes_written") < 32 << 20, "{done}");
    assert_eq!(sha256(&dst), sha256(&img));
}

/// The crash test: a sync killed mid-way, then some of the chunks it wrote lost (as unflushed
/// writes are when a host dies), then a retry. No checkpoint is trusted, so it converges.
#[test]
fn lost_writes_after_a_crash_are_found_and_sent_again() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(96 << 20, 81));
    let srv = Served::start(&dir, &img);
    let dst = dir.path("dst.img");
    garbage_file(&dst, 96 << 20, 80);
    let mut syncing = agent()
        .args(["sync", "--from", &srv.uri(), "--progress-interval", "0.05"])
        .arg("--to")
        .arg(&dst)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(syncing.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "the sync ended before it could be killed");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "progress" && num(&v, "bytes_done") >= 8 << 20 {
            break;
        }
    }
    syncing.kill().unwrap();
    syncing.wait().unwrap();
    // Lose chunks: some certainly written already, and some beyond.
    for (i, seed) in [(0, 1), (1, 2), (5, 3), (90, 4)] {
        spoil_chunk(&dst, i, seed);
    }
    let ev = sync(&[&srv.uri()], &dst, &[]);
    assert_eq!(sha256(&dst), sha256(&img));
    let done = ev.last().unwrap();
    assert_eq!(done["verified"], true);
    assert!(num(done, "chunks_equal") >= 4, "{done}");
}

/// A corrupted destination chunk is found and repaired by the next sync, and only it moves.
#[test]
fn a_corrupted_chunk_is_repaired_and_only_it_moves() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(32 << 20, 91));
    let srv = Served::start(&dir, &img);
    let dst = dir.path("dst.img");
    let first = sync(&[&srv.uri()], &dst, &[]);
    let root = first.last().unwrap()["root"].clone();
    // One bit flipped in chunk 7.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dst)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 7 * MIB + 12345).unwrap();
    f.write_all_at(&[b[0] ^ 1], 7 * MIB + 12345).unwrap();
    drop(f);
    let ev = sync(&[&srv.uri()], &dst, &[]);
    let done = ev.last().unwrap();
    assert_eq!(done["root"], root, "same source, same root");
    assert_eq!(done["chunks_patched"], 1, "{done}");
    assert_eq!(num(done, "bytes_written"), 4096, "one block moves: {done}");
    // The proof reads back the leaf it wrote, not the chunk: the scan digested the rest.
    assert_eq!(num(done, "bytes_verified"), 4096, "{done}");
    assert_eq!(sha256(&dst), sha256(&img));
}

/// A source rewritten between two runs (2% of its chunks, and a few scattered blocks)
/// re-syncs to the new content, never a mix, sending little more than what changed.
#[test]
fn a_changed_source_resyncs_to_its_new_content() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(100 << 20, 101));
    let srv = Served::start(&dir, &img);
    let dst = dir.path("dst.img");
    let root1 = sync(&[&srv.uri()], &dst, &[]).last().unwrap()["root"].clone();
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    for i in [3u64, 17] {
        f.write_all_at(&random_bytes(MIB as usize, 200 + i), i * MIB)
            .unwrap();
    }
    for k in 0..8u64 {
        f.write_all_at(&random_bytes(4096, 300 + k), (40 + 7 * k) * MIB + 4096 * k)
            .unwrap();
    }
    // A block cleared amid data: its patch is zeros, which the destination's zeroing writes.
    f.write_all_at(&[0u8; 4096], 90 * MIB + 8192).unwrap();
    drop(f);
    let changed = 2 * MIB + 8 * 4096;
    let ev = sync(&[&srv.uri()], &dst, &["--no-compression"]);
    let done = ev.last().unwrap();
    assert_ne!(done["root"], root1);
    assert_eq!(sha256(&dst), sha256(&img));
    assert_eq!(num(done, "bytes_written"), changed, "{done}");
    assert_eq!(num(done, "bytes_zeroed"), 4096, "{done}");
    let wire = num(done, "bytes_on_wire");
    assert!(
        wire <= changed * 12 / 10,
        "the re-sync sent {wire} bytes for {changed} changed: {done}"
    );
}

/// A source that stops answering (its process frozen, as by SIGSTOP or a dead host) ends the
/// sync within the timeout, with a message naming it.
#[test]
fn a_frozen_source_ends_the_sync_in_bounded_time() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 0, 0, &random_bytes(128 << 20, 111));
    let srv = Served::start(&dir, &img);
    let pid: i32 = fs::read_to_string(&srv.pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dst = dir.path("dst.img");
    let started = Instant::now();
    let mut syncing = agent()
        .args(["sync", "--from", &srv.uri(), "--timeout", "3"])
        .arg("--to")
        .arg(&dst)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Frozen as soon as the sync says it starts (its connections are open, no data has moved): a
    // fixed sleep first let a fast machine finish the whole copy before the freeze.
    let mut lines = BufReader::new(syncing.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert!(first.contains("\"start\""), "{first}");
    // SAFETY: kill(2) on the source agent's own pid, read from its pid file.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let mut rest = Vec::new();
    lines.read_to_end(&mut rest).unwrap();
    let mut out = syncing.wait_with_output().unwrap();
    run_ok(Command::new("kill").args(["-CONT", &pid.to_string()]));
    out.stdout = [first.into_bytes(), rest].concat();
    assert!(!out.status.success());
    let ev = events(&out);
    let msg = ev.last().unwrap()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("did not answer for 3 s"), "{msg}");
    assert!(msg.contains(&srv.socket.display().to_string()), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(60), "not bounded");
}

#[test]
fn clear_errors_for_bad_requests() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 2 << 20, 0, b"data");
    let srv = Served::start(&dir, &img);
    let wrong = format!("nbd+unix:///nope?socket={}", srv.socket.display());
    let m = sync_error(&[&wrong], &dir.path("x.img"), &[]);
    assert!(m.contains("nope"), "{m}");
    let small = dir.path("small.img");
    fs::write(&small, [0u8; 512]).unwrap();
    let m = sync_error(&[&srv.uri()], &small, &[]);
    assert!(m.contains("less than the source"), "{m}");
    let missing = format!(
        "nbd+unix:///disk?socket={}",
        dir.path("missing.sock").display()
    );
    let m = sync_error(&[&missing], &dir.path("y.img"), &[]);
    assert!(m.contains("missing.sock"), "{m}");
    let m = sync_error(&[&srv.uri()], &dir.path("z.img"), &["--chunk-size", "3000"]);
    assert!(m.contains("--chunk-size"), "{m}");
}
