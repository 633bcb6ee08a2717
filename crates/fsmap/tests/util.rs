//! Fixtures for the real-image tests: temp dirs, shell helpers, garbage, sparsified copies,
//! filesystem checks and file hashes read back with the filesystems' own tools.

#![allow(dead_code)]

use osm_fsmap::{scan, Map};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const MIB: u64 = 1 << 20;

/// Prints a loud notice and returns from the test; in CI (`CI=true`), where every tool and
/// privilege is provided, fails the test instead, so a broken setup cannot pass as green.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        let msg = format!($($arg)*);
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "{msg}"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
        return;
    }};
}

/// True when every tool is on PATH (else prints which is missing).
pub fn have(tools: &[&str]) -> Result<(), String> {
    for t in tools {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("tool {t} not installed"));
        }
    }
    Ok(())
}

pub fn is_root() -> bool {
    sh_status("id -u").1.trim() == "0"
}

/// Root, loop devices, and mount available.
pub fn can_loop() -> Result<(), String> {
    if !is_root() {
        return Err("needs root for loop devices and mount".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no /dev/loop-control".into());
    }
    have(&["losetup", "mount", "umount"])
}

/// A private temp dir, removed on drop unless OSM_FSMAP_KEEP is set.
pub struct Tmp {
    pub path: PathBuf,
}

impl Tmp {
    pub fn new(name: &str) -> Tmp {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::var_os("OSM_FSMAP_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!(
            "osm-fsmap-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        Tmp { path }
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        if std::env::var_os("OSM_FSMAP_KEEP").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs a bash snippet; returns (exit code, stdout+stderr).
pub fn sh_status(cmd: &str) -> (i32, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .expect("bash");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), s)
}

/// Runs a bash snippet (with `set -e -o pipefail`); panics with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let (rc, out) = sh_status(&format!("set -e -o pipefail\n{cmd}"));
    assert_eq!(
        rc, 0,
        "command failed ({rc}):\n{cmd}\n--- output ---\n{out}"
    );
    out
}

/// stdout only, stderr ignored (for parsing tool output).
pub fn sh_out(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e -o pipefail\n{cmd}"))
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "command failed:\n{cmd}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Cheap non-zero garbage: a random MiB from the kernel, varied per MiB.
pub fn garbage_block() -> Vec<u8> {
    let mut b = vec![0u8; MIB as usize];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("urandom");
    b
}

/// Creates (or overwrites) `path` with `size` bytes of garbage.
pub fn garbage_file(path: &Path, size: u64) {
    let mut f = File::create(path).expect("create");
    let mut b = garbage_block();
    let mut left = size;
    let mut i = 0u64;
    while left > 0 {
        b[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(MIB) as usize;
        f.write_all(&b[..n]).expect("write");
        left -= n as u64;
        i += 1;
    }
}

/// Writes garbage over `range` of an existing file.
pub fn garbage_range(path: &Path, range: Range<u64>) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    let b = garbage_block();
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(MIB) as usize;
        f.write_all_at(&b[..n], at).expect("write");
        at += n as u64;
    }
}

/// `count` files of random content in `dir` (some in subdirectories), sizes between min and max
/// bytes; returns their relative paths.
pub fn random_files(dir: &Path, count: usize, min: u64, max: u64) -> Vec<String> {
    let mut seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rnd = File::open("/dev/urandom").expect("urandom");
    let mut names = Vec::new();
    for i in 0..count {
        let sub = if i % 3 == 0 {
            format!("d{}", i % 5)
        } else {
            String::new()
        };
        let rel = if sub.is_empty() {
            format!("f{i:04}")
        } else {
            format!("{sub}/f{i:04}")
        };
        let p = dir.join(&rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let size = min + next() % (max - min + 1);
        let mut buf = vec![0u8; size as usize];
        rnd.read_exact(&mut buf).expect("urandom");
        fs::write(&p, &buf).expect("write file");
        names.push(rel);
    }
    names
}

pub fn scan_path(path: &Path) -> Map {
    let f = File::open(path).expect("open image");
    let size = f.metadata().expect("stat").len();
    let map = scan(&f, size);
    eprintln!("{}: {}", path.display(), map.summary());
    for fi in &map.findings {
        eprintln!(
            "    {:>12} {:>12} {:<8} {:>12} {}",
            fi.offset, fi.length, fi.kind, fi.free_bytes, fi.detail
        );
    }
    check_map_shape(&map, size);
    map
}

/// The invariants every map must hold.
pub fn check_map_shape(map: &Map, size: u64) {
    let mut prev = 0;
    for (i, r) in map.free.iter().enumerate() {
        assert!(r.start < r.end, "empty range {r:?}");
        assert!(
            r.start % 4096 == 0 && r.end % 4096 == 0,
            "unaligned range {r:?}"
        );
        assert!(r.end <= size, "range {r:?} past the device ({size})");
        if i > 0 {
            assert!(
                r.start > prev,
                "ranges not sorted, merged and disjoint at {r:?}"
            );
        }
        prev = r.end;
    }
    // The first finding is the whole device; its count is the total.
    let top = map.findings.first().map(|f| f.free_bytes).unwrap_or(0);
    assert_eq!(
        top,
        map.free_bytes(),
        "finding totals disagree with the map"
    );
}

/// What the agent would produce: a copy where free ranges hold `fill` (None: holes, i.e. zeros)
/// and everything else is copied.
pub fn sparsified_copy(src: &Path, dst: &Path, map: &Map, fill: Option<u8>) {
    let s = File::open(src).expect("open src");
    let size = s.metadata().expect("stat").len();
    let d = File::create(dst).expect("create dst");
    d.set_len(size).expect("set_len");
    let mut data: Vec<Range<u64>> = Vec::new();
    let mut at = 0;
    for r in &map.free {
        if r.start > at {
            data.push(at..r.start);
        }
        at = r.end;
    }
    if at < size {
        data.push(at..size);
    }
    let mut buf = vec![0u8; 4 * MIB as usize];
    for r in data {
        let mut p = r.start;
        while p < r.end {
            let n = (r.end - p).min(buf.len() as u64) as usize;
            s.read_exact_at(&mut buf[..n], p).expect("read src");
            if buf[..n].iter().any(|&b| b != 0) {
                d.write_all_at(&buf[..n], p).expect("write dst");
            }
            p += n as u64;
        }
    }
    if let Some(v) = fill {
        let pat = vec![v; 4 * MIB as usize];
        for r in &map.free {
            let mut p = r.start;
            while p < r.end {
                let n = (r.end - p).min(pat.len() as u64) as usize;
                d.write_all_at(&pat[..n], p).expect("fill dst");
                p += n as u64;
            }
        }
    }
}

/// Fraction of 4 KiB blocks in `ranges` of `img` that are not all zero: shows the test's free
/// space really held garbage.
pub fn nonzero_fraction(img: &Path, ranges: &[Range<u64>]) -> f64 {
    let f = File::open(img).expect("open");
    let (mut total, mut nz) = (0u64, 0u64);
    let mut b = vec![0u8; 4096];
    for r in ranges {
        // Sample every 16th block: enough to tell garbage from zeros.
        let mut p = r.start;
        while p + 4096 <= r.end {
            f.read_exact_at(&mut b, p).expect("read");
            total += 1;
            if b.iter().any(|&x| x != 0) {
                nz += 1;
            }
            p += 16 * 4096;
        }
    }
    if total == 0 {
        0.0
    } else {
        nz as f64 / total as f64
    }
}

/// sha256 of every regular file under `dir`, by relative path.
pub fn hash_tree(dir: &Path) -> BTreeMap<String, String> {
    let out = sh_out(&format!(
        "cd {} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum",
        q(dir)
    ));
    out.lines()
        .filter_map(|l| {
            let (h, p) = l.split_once("  ")?;
            Some((p.trim_start_matches("./").to_string(), h.to_string()))
        })
        .collect()
}

/// sha256 of the files `names` under `dir`.
pub fn hash_some(dir: &Path, names: &[String]) -> BTreeMap<String, String> {
    let all = hash_tree(dir);
    names
        .iter()
        .map(|n| {
            (
                n.clone(),
                all.get(n).cloned().unwrap_or_else(|| panic!("{n} missing")),
            )
        })
        .collect()
}

/// Every file of an ext image, read with debugfs.
pub fn ext_tree(img: &Path, out: &Path) -> BTreeMap<String, String> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).expect("mkdir");
    sh(&format!(
        "debugfs -R 'rdump / {}' {} >/dev/null 2>&1",
        out.display(),
        q(img)
    ));
    let mut t = hash_tree(out);
    t.retain(|k, _| !k.starts_with("lost+found"));
    t
}

pub fn e2fsck_clean(img: &Path) {
    let (rc, out) = sh_status(&format!("e2fsck -fn {}", q(img)));
    assert_eq!(rc, 0, "e2fsck -fn {} not clean:\n{out}", img.display());
}

pub fn xfs_repair_clean(img: &Path) {
    let (rc, out) = sh_status(&format!("xfs_repair -n -f {}", q(img)));
    assert_eq!(rc, 0, "xfs_repair -n {} not clean:\n{out}", img.display());
}

/// Bytes in use according to dumpe2fs: (blocks - free blocks) x block size, and the free bytes.
pub fn ext_usage(img: &Path) -> (u64, u64) {
    let out = sh_out(&format!("dumpe2fs -h {} 2>/dev/null", q(img)));
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim().parse::<u64>().expect("number"))
            })
            .unwrap_or_else(|| panic!("{name} missing in dumpe2fs output"))
    };
    let bs = field("Block size:");
    let blocks = field("Block count:");
    let free = field("Free blocks:");
    ((blocks - free) * bs, free * bs)
}

/// (used, free) bytes of an XFS image according to xfs_db (free counts `fdblocks`).
pub fn xfs_usage(img: &Path) -> (u64, u64) {
    let out = sh_out(&format!(
        "xfs_db -r -c 'sb 0' -c 'p dblocks fdblocks blocksize' {}",
        q(img)
    ));
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| {
                l.strip_prefix(name).map(|v| {
                    v.trim_start_matches(" = ")
                        .trim()
                        .parse::<u64>()
                        .expect("n")
                })
            })
            .unwrap_or_else(|| panic!("{name} missing in xfs_db output"))
    };
    let bs = field("blocksize");
    let d = field("dblocks");
    let f = field("fdblocks");
    ((d - f) * bs, f * bs)
}

/// Asserts what is still copied is within 10% (plus `slack`) of what the filesystems use, and
/// prints the figures.
pub fn check_accuracy(name: &str, region: u64, free: u64, used_by_tools: u64, slack: u64) {
    let copied = region - free;
    let ratio = copied as f64 / used_by_tools.max(1) as f64;
    eprintln!(
        "ACCURACY {name}: region {} MiB, reported free {:.1} MiB, still copied {:.2} MiB, used per fs tools {:.2} MiB, ratio {ratio:.3}",
        region / MIB,
        free as f64 / MIB as f64,
        copied as f64 / MIB as f64,
        used_by_tools as f64 / MIB as f64
    );
    assert!(
        copied as f64 <= 1.1 * used_by_tools as f64 + slack as f64,
        "{name}: {copied} bytes still copied, used space is {used_by_tools}"
    );
}

/// Every free range lies inside one of `allowed`.
pub fn assert_free_within(map: &Map, allowed: &[Range<u64>]) {
    // Adjacent allowed regions (an LV next to unallocated extents) merge in the map too.
    let mut allowed = allowed.to_vec();
    allowed.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in allowed {
        match merged.last_mut() {
            Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let allowed = merged;
    for r in &map.free {
        assert!(
            allowed.iter().any(|a| a.start <= r.start && r.end <= a.end),
            "free range {r:?} outside the filesystems {allowed:?}"
        );
    }
}

/// Copies `len` bytes at `off` of `img` into a new file.
pub fn extract(img: &Path, off: u64, len: u64, out: &Path) {
    let s = File::open(img).expect("open");
    let d = File::create(out).expect("create");
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut p = 0;
    while p < len {
        let n = (len - p).min(buf.len() as u64) as usize;
        s.read_exact_at(&mut buf[..n], off + p).expect("read");
        d.write_all_at(&buf[..n], p).expect("write");
        p += n as u64;
    }
}

/// Writes all of `src` into `img` at `off`.
pub fn insert(src: &Path, img: &Path, off: u64) {
    let mut s = File::open(src).expect("open");
    let d = OpenOptions::new().write(true).open(img).expect("open img");
    let len = s.seek(SeekFrom::End(0)).expect("seek");
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut p = 0;
    while p < len {
        let n = (len - p).min(buf.len() as u64) as usize;
        s.read_exact_at(&mut buf[..n], p).expect("read");
        d.write_all_at(&buf[..n], off + p).expect("write");
        p += n as u64;
    }
}

/// Attached loop device, detached on drop.
pub struct Loop(pub String);

impl Loop {
    pub fn new(img: &Path) -> Loop {
        Loop(
            sh_out(&format!("losetup -f --show {}", q(img)))
                .trim()
                .to_string(),
        )
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = sh_status(&format!("losetup -d {}", self.0));
    }
}

/// Mounted filesystem, unmounted on drop.
pub struct Mount(pub PathBuf);

impl Mount {
    pub fn new(img_or_dev: &str, dir: &Path, opts: &str) -> Mount {
        fs::create_dir_all(dir).expect("mkdir");
        sh(&format!("mount -o {opts} {img_or_dev} {}", q(dir)));
        Mount(dir.to_path_buf())
    }
    pub fn unmount(self) {
        sh(&format!("umount {}", q(&self.0)));
        std::mem::forget(self);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = sh_status(&format!(
            "umount {} || umount -l {}",
            q(&self.0),
            q(&self.0)
        ));
    }
}

/// Patches bytes of a file in place.
pub fn poke(path: &Path, off: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(bytes, off).expect("poke");
}

pub fn peek(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let f = File::open(path).expect("open");
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off).expect("peek");
    b
}

/// Deletes `names` from an ext image with debugfs (blocks freed, contents left behind).
pub fn ext_delete(img: &Path, names: &[String], tmp: &Tmp) {
    let cmds = tmp.join("debugfs-rm.cmds");
    let text: String = names.iter().map(|n| format!("rm /{n}\n")).collect();
    fs::write(&cmds, text).expect("write cmds");
    sh(&format!(
        "debugfs -w -f {} {} >/dev/null 2>&1",
        q(&cmds),
        q(img)
    ));
}

/// Splits names into (kept, deleted): keeps every third.
pub fn split_keep(names: &[String]) -> (Vec<String>, Vec<String>) {
    let mut keep = Vec::new();
    let mut del = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i % 3 == 0 {
            keep.push(n.clone())
        } else {
            del.push(n.clone())
        }
    }
    (keep, del)
}
