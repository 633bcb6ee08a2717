//! Images with real content survive a copy byte for byte.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::require;
use crate::util::*;

/// Serves `img`, copies it to a fresh file, checks the SHA-256 of both; returns the done line.
fn round_trip(dir: &Dir, img: &Path, extra: &[&str]) -> Value {
    let srv = Served::start(dir, img);
    let dst = dir.path("copy.img");
    let _ = fs::remove_file(&dst);
    let ev = copy(&srv.uri(), &dst, extra);
    assert_eq!(
        fs::metadata(&dst).unwrap().len(),
        fs::metadata(img).unwrap().len()
    );
    assert_eq!(
        sha256(&dst),
        sha256(img),
        "copy of {} differs",
        img.display()
    );
    ev.last().cloned().unwrap()
}

#[test]
fn ext4_with_files() {
    require!("mkfs.ext4");
    let dir = Dir::new();
    let tree = dir.path("tree");
    fs::create_dir_all(tree.join("etc/deep")).unwrap();
    fs::write(tree.join("big.bin"), random_bytes(6 << 20, 11)).unwrap();
    fs::write(tree.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(tree.join("etc/deep/odd.bin"), random_bytes(123_457, 12)).unwrap();
    let img = dir.path("ext4.img");
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&tree)
            .arg(&img)
            .arg("64M"),
    );
    let done = round_trip(&dir, &img, &["--verify"]);
    assert_eq!(done["sha256"], sha256(&img));
    let moved = done["bytes_transferred"].as_u64().unwrap();
    assert!(
        moved < 32 << 20,
        "free space must not cross the wire: {done}"
    );
}

#[test]
fn xfs_filesystem() {
    require!("mkfs.xfs");
    let dir = Dir::new();
    let img = dir.path("xfs.img");
    // 300 MiB is the smallest XFS mkfs.xfs accepts.
    write_at(&img, 320 << 20, 0, &[]);
    run_ok(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(&img));
    round_trip(&dir, &img, &[]);
}

#[test]
fn random_data_of_an_odd_size() {
    let dir = Dir::new();
    let img = dir.path("random.img");
    write_at(&img, 0, 0, &random_bytes((5 << 20) + 123, 21));
    let done = round_trip(
        &dir,
        &img,
        &["--verify", "--request-size", "65536", "--requests", "8"],
    );
    assert_eq!(done["bytes_transferred"], (5 << 20) + 123);
}

#[test]
fn all_zeros_move_no_data() {
    let dir = Dir::new();
    let img = dir.path("zeros.img");
    // Allocated zeros: SEEK_HOLE sees data, so the server must scan.
    zeros_file(&img, 16 << 20);
    let done = round_trip(&dir, &img, &[]);
    assert_eq!(done["bytes_transferred"], 0, "{done}");
    assert_eq!(done["bytes_zeroed"], 16 << 20, "{done}");
}

#[test]
fn data_only_in_the_last_sector() {
    let dir = Dir::new();
    let img = dir.path("last.img");
    write_at(&img, 8 << 20, (8 << 20) - 512, &random_bytes(512, 31));
    let done = round_trip(&dir, &img, &["--verify"]);
    assert!(
        done["bytes_transferred"].as_u64().unwrap() <= 4096,
        "{done}"
    );
}

#[test]
fn empty_image() {
    let dir = Dir::new();
    let img = dir.path("empty.img");
    fs::write(&img, b"").unwrap();
    let done = round_trip(&dir, &img, &["--verify"]);
    assert_eq!(done["bytes_total"], 0);
}

/// An existing target full of garbage: zero ranges must be zeroed, not skipped.
#[test]
fn dirty_target_gets_its_zeros() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 4 << 20, 1 << 20, &random_bytes(100_000, 41));
    let srv = Served::start(&dir, &img);
    let dst = dir.path("dirty.img");
    fs::write(&dst, vec![0xffu8; 4 << 20]).unwrap();
    let ev = copy(&srv.uri(), &dst, &[]);
    assert_eq!(ev[0]["target_is_zero"], false);
    assert_eq!(ev[0]["zero_method"], "punch-hole");
    assert_eq!(sha256(&dst), sha256(&img));
}

/// Enough ranges for four connections, each with some data.
#[test]
fn four_connections() {
    let dir = Dir::new();
    let img = dir.path("wide.img");
    for i in 0..8u64 {
        write_at(
            &img,
            1 << 30,
            i * (128 << 20) + 4096 * i,
            &random_bytes(300_000, 50 + i),
        );
    }
    let done = round_trip(
        &dir,
        &img,
        &["--connections", "4", "--progress-interval", "0.1"],
    );
    assert_eq!(done["bytes_done"], 1u64 << 30);
}

/// A served loop device (the block device path: zero scan), copied onto another loop device
/// (BLKZEROOUT).
#[test]
fn block_devices() {
    require!("losetup");
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 32 << 20, 5 << 20, &random_bytes(2 << 20, 61));
    let dst_img = dir.path("dst.img");
    fs::write(&dst_img, vec![0x5au8; 32 << 20]).unwrap();
    let Some(src) = Loop::attach(&img, true) else {
        return;
    };
    let Some(dst) = Loop::attach(&dst_img, false) else {
        return;
    };
    let srv = Served::start(&dir, &src.dev);
    let ev = copy(&srv.uri(), &dst.dev, &["--verify"]);
    assert_eq!(ev[0]["zero_method"], "blkzeroout");
    let done = ev.last().unwrap();
    assert!(
        done["bytes_transferred"].as_u64().unwrap() <= 2 << 20,
        "zeros on a block device must not cross: {done}"
    );
    drop(srv);
    drop(dst);
    assert_eq!(sha256(&dst_img), sha256(&img));
}

/// A loop device, detached on drop.
struct Loop {
    dev: std::path::PathBuf,
}

impl Loop {
    fn attach(file: &Path, read_only: bool) -> Option<Loop> {
        let mut cmd = Command::new("losetup");
        cmd.args(["-f", "--show"]);
        if read_only {
            cmd.arg("-r");
        }
        let out = cmd.arg(file).output().ok()?;
        if !out.status.success() {
            eprintln!(
                "\n*** SKIPPED block_devices: losetup failed: {} ***\n",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Loop {
            dev: String::from_utf8_lossy(&out.stdout).trim().into(),
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}
