//! Images with real content end up byte for byte on the destination, whatever it held before.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::require;
use crate::util::*;

/// Serves `img`, syncs it to a fresh file, checks the SHA-256 of both; returns the done line.
fn round_trip(dir: &Dir, img: &Path, extra: &[&str]) -> Value {
    let srv = Served::start(dir, img);
    // What a backend that does not zero new volumes hands out.
    let dst = dir.path("copy.img");
    garbage_file(&dst, fs::metadata(img).unwrap().len() as usize, 5);
    let ev = sync(&[&srv.uri()], &dst, extra);
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
    let done = ev.last().cloned().unwrap();
    assert_eq!(done["verified"], true, "{done}");
    assert_eq!(done["root"].as_str().map(str::len), Some(64), "{done}");
    done
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
    let done = round_trip(&dir, &img, &[]);
    let moved = num(&done, "bytes_on_wire");
    assert!(
        moved < 16 << 20,
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
    let done = round_trip(&dir, &img, &["--chunk-size", "65536"]);
    // Garbage against random data: every block differs.
    assert_eq!(done["bytes_written"], (5 << 20) + 123);
    assert_eq!(done["chunks"], 81);
    assert_eq!(
        done["bytes_verified"],
        (5 << 20) + 123,
        "all of it read back"
    );
}

#[test]
fn all_zeros_move_no_data() {
    let dir = Dir::new();
    let img = dir.path("zeros.img");
    // Allocated zeros: SEEK_HOLE sees data, so the server must scan.
    zeros_file(&img, 16 << 20);
    let done = round_trip(&dir, &img, &[]);
    assert_eq!(done["bytes_written"], 0, "{done}");
    assert_eq!(done["chunks_zeroed"], 16, "{done}");
    assert!(num(&done, "bytes_on_wire") < 4096, "{done}");
    // Again: now the destination's own digests prove the zeros, and nothing is done.
    let srv = Served::start(&dir, &img);
    let again = sync(&[&srv.uri()], &dir.path("copy.img"), &[]);
    assert_eq!(again.last().unwrap()["chunks_equal"], 16);
}

#[test]
fn data_only_in_the_last_sector() {
    let dir = Dir::new();
    let img = dir.path("last.img");
    write_at(&img, 8 << 20, (8 << 20) - 512, &random_bytes(512, 31));
    let done = round_trip(&dir, &img, &[]);
    assert_eq!(done["chunks_patched"], 1, "{done}");
    assert!(num(&done, "bytes_written") <= 4096, "{done}");
}

#[test]
fn empty_image() {
    let dir = Dir::new();
    let img = dir.path("empty.img");
    fs::write(&img, b"").unwrap();
    let done = round_trip(&dir, &img, &[]);
    assert_eq!(done["bytes_total"], 0);
}

/// An existing target full of garbage (a backend that does not zero new volumes): every zero
/// range is zeroed, every data chunk patched, and the result proven.
#[test]
fn dirty_target_gets_its_zeros() {
    let dir = Dir::new();
    let img = dir.path("src.img");
    write_at(&img, 4 << 20, 1 << 20, &random_bytes(100_000, 41));
    let srv = Served::start(&dir, &img);
    let dst = dir.path("dirty.img");
    garbage_file(&dst, 4 << 20, 42);
    let ev = sync(&[&srv.uri()], &dst, &[]);
    assert_eq!(ev[0]["zero_method"], "punch-hole");
    let done = ev.last().unwrap();
    assert_eq!(done["chunks_zeroed"], 3, "{done}");
    assert_eq!(done["chunks_patched"], 1, "{done}");
    assert_eq!(sha256(&dst), sha256(&img));
    // Unverified, the same run is as correct but not proven.
    garbage_file(&dst, 4 << 20, 43);
    let ev = sync(&[&srv.uri()], &dst, &["--no-verify"]);
    let done = ev.last().unwrap();
    assert_eq!(done["verified"], false);
    assert_eq!(done["bytes_verified"], 0);
    assert_eq!(sha256(&dst), sha256(&img));
}

/// Enough ranges for four connections, each with some data; the same export over four sockets
/// (as four tunnels would present it).
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
    let srv = Served::start(&dir, &img);
    let uri = srv.uri();
    let dst = dir.path("wide-copy.img");
    let ev = sync(
        &[&uri, &uri, &uri, &uri],
        &dst,
        &["--progress-interval", "0.1"],
    );
    assert_eq!(ev[0]["connections"], 4);
    assert_eq!(ev[0]["source"], "agent");
    assert_eq!(ev.last().unwrap()["bytes_done"], 1u64 << 30);
    assert_eq!(sha256(&dst), sha256(&img));
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
    let ev = sync(&[&srv.uri()], &dst.dev, &[]);
    assert_eq!(ev[0]["zero_method"], "blkzeroout");
    let done = ev.last().unwrap();
    assert!(
        num(done, "bytes_written") <= 2 << 20,
        "zeros on a block device must not cross: {done}"
    );
    assert_eq!(done["chunks_zeroed"], 30, "{done}");
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
            let msg = format!(
                "block_devices: losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            assert!(!in_ci(), "{msg}");
            eprintln!("\n*** SKIPPED {msg} ***\n");
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
