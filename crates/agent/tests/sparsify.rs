//! `serve --sparsify`: free filesystem space holding garbage is served as holes, so it does not cross
//! the wire, and the copied filesystem is clean with every file intact.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::require;
use crate::util::*;

/// An image whose every byte is random before mkfs runs (without discard), so its free space holds
/// garbage, as a disk does after files were written and deleted.
fn garbage_image(path: &Path, size: usize, seed: u64) {
    let chunk = 8 << 20;
    let mut off = 0;
    while off < size {
        let n = chunk.min(size - off);
        write_at(path, 0, off as u64, &random_bytes(n, seed + off as u64));
        off += n;
    }
}

/// A tree of random files; returns their names and sha256.
fn tree(dir: &Dir, files: usize, each: usize) -> (std::path::PathBuf, Vec<(String, String)>) {
    let root = dir.path("tree");
    fs::create_dir_all(&root).expect("tree");
    let mut sums = Vec::new();
    for i in 0..files {
        let name = format!("file-{i}.bin");
        let data = random_bytes(each, 100 + i as u64);
        fs::write(root.join(&name), &data).expect("file");
        sums.push((name.clone(), sha256(&root.join(&name))));
    }
    (root, sums)
}

/// Serves `img` with --sparsify, syncs it onto `dst` (pre-filled with garbage, as a backend that
/// does not zero new volumes leaves them), returns the sparsify line and the sync's done line.
fn sparse_copy(dir: &Dir, img: &Path, dst: &Path) -> (Value, Value) {
    garbage_file(dst, fs::metadata(img).expect("image").len() as usize, 77);
    let socket = dir.path("srv/nbd.sock");
    let pid = dir.path("serve.pid");
    let out = run_ok(
        agent()
            .args(["serve", "--export", "disk", "--daemon", "--sparsify"])
            .arg("--device")
            .arg(img)
            .arg("--socket")
            .arg(&socket)
            .arg("--pid-file")
            .arg(&pid),
    );
    let line = events(&out)
        .into_iter()
        .find(|e| e["event"] == "sparsify")
        .expect("serve --sparsify prints what it found");
    let ev = sync(
        &[&format!("nbd+unix:///disk?socket={}", socket.display())],
        dst,
        &["--no-compression"],
    );
    run_ok(agent().arg("stop").arg("--pid-file").arg(&pid));
    (line, ev.last().cloned().expect("done"))
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim_start_matches(':').trim().to_string())
        })
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn ext4_free_space_is_not_copied_and_the_copy_is_clean() {
    require!("mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs");
    let dir = Dir::new();
    let (root, sums) = tree(&dir, 12, 3 << 20);
    let img = dir.path("ext4.img");
    garbage_image(&img, 256 << 20, 1);
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "nodiscard", "-d"])
            .arg(&root)
            .arg(&img),
    );
    // Delete two thirds of the files: their blocks keep their bytes but are free.
    for (name, _) in sums
        .iter()
        .filter(|(n, _)| !n.ends_with("0.bin") && !n.ends_with("3.bin"))
    {
        run_ok(
            Command::new("debugfs")
                .args(["-w", "-R", &format!("rm /{name}")])
                .arg(&img),
        );
    }
    let kept: Vec<_> = sums
        .iter()
        .filter(|(n, _)| n.ends_with("0.bin") || n.ends_with("3.bin"))
        .collect();
    let dst = dir.path("copy.img");
    let (line, done) = sparse_copy(&dir, &img, &dst);
    assert!(
        line["summary"].as_str().unwrap_or("").contains("ext4"),
        "{line}"
    );
    run_ok(Command::new("e2fsck").args(["-fn"]).arg(&dst));
    for (name, sum) in kept {
        let out = dir.path(name);
        run_ok(
            Command::new("debugfs")
                .args(["-R", &format!("dump /{name} {}", out.display())])
                .arg(&dst),
        );
        assert_eq!(&sha256(&out), sum, "{name} differs after the copy");
        fs::remove_file(&out).expect("rm");
    }
    let info =
        String::from_utf8_lossy(&run_ok(Command::new("dumpe2fs").arg("-h").arg(&img)).stdout)
            .into_owned();
    let used =
        (field(&info, "Block count") - field(&info, "Free blocks")) * field(&info, "Block size");
    assert_sent_close_to_used(&done, used / 2, used);
}

#[test]
fn xfs_free_space_is_not_copied_and_the_copy_is_clean() {
    require!("mkfs.xfs", "xfs_repair", "xfs_db");
    let dir = Dir::new();
    let (root, sums) = tree(&dir, 8, 4 << 20);
    let proto = dir.path("proto");
    let mut p = String::from("/dev/null\n0 0\nd--755 0 0\n");
    for (name, _) in &sums {
        p.push_str(&format!(
            "{name} ---644 0 0 {}\n",
            root.join(name).display()
        ));
    }
    p.push_str("$\n$\n");
    fs::write(&proto, p).expect("proto");
    let img = dir.path("xfs.img");
    garbage_image(&img, 400 << 20, 2);
    run_ok(
        Command::new("mkfs.xfs")
            .args(["-q", "-f", "-K", "-p"])
            .arg(&proto)
            .arg(&img),
    );
    let dst = dir.path("copy.img");
    let (line, done) = sparse_copy(&dir, &img, &dst);
    assert!(
        line["summary"].as_str().unwrap_or("").contains("xfs"),
        "{line}"
    );
    run_ok(Command::new("xfs_repair").args(["-n", "-f"]).arg(&dst));
    for (name, sum) in &sums {
        let out = dir.path(name);
        // xfs_db has no file dump; reading through a read-only loop mount needs root.
        if read_xfs_file(&dst, name, &out) {
            assert_eq!(&sha256(&out), sum, "{name} differs after the copy");
        }
    }
    let sb = String::from_utf8_lossy(
        &run_ok(
            Command::new("xfs_db")
                .args(["-r", "-c", "sb 0", "-c", "p dblocks fdblocks blocksize"])
                .arg(&img),
        )
        .stdout,
    )
    .replace(" = ", ":");
    let used = (field(&sb, "dblocks") - field(&sb, "fdblocks")) * field(&sb, "blocksize");
    // The internal log counts as used but is zeros, which never cross: the floor is the files.
    assert_sent_close_to_used(&done, 8 * (4 << 20), used);
}

fn read_xfs_file(img: &Path, name: &str, out: &Path) -> bool {
    let mnt = out.with_extension("mnt");
    fs::create_dir_all(&mnt).expect("mountpoint");
    let mounted = Command::new("mount")
        .args(["-o", "ro,loop,norecovery"])
        .arg(img)
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let msg = format!(
            "reading {name} back: cannot loop-mount XFS here (needs root and loop devices)"
        );
        assert!(!in_ci(), "{msg}");
        eprintln!("\n*** SKIPPED {msg} ***\n");
        return false;
    }
    let copied = fs::copy(mnt.join(name), out).is_ok();
    let _ = Command::new("umount").arg(&mnt).status();
    copied
}

#[test]
fn unknown_content_is_copied_as_data() {
    let dir = Dir::new();
    let img = dir.path("random.img");
    write_at(&img, 0, 0, &random_bytes(3 << 20, 9));
    let dst = dir.path("copy.img");
    let (line, done) = sparse_copy(&dir, &img, &dst);
    assert_eq!(line["free_bytes"], 0, "{line}");
    assert_eq!(sha256(&dst), sha256(&img));
    assert_eq!(done["bytes_written"], 3 << 20);
}

/// The sync wrote at most 10 % more than the used space, and at least `floor` bytes (what the
/// kept data needs).
fn assert_sent_close_to_used(done: &Value, floor: u64, used: u64) {
    let sent = num(done, "bytes_written");
    assert!(
        sent <= used + used / 10,
        "sent {sent} bytes for {used} used bytes"
    );
    assert!(
        sent >= floor,
        "sent {sent} bytes cannot hold the {floor} bytes kept"
    );
}
