//! Fixtures: temp dirs, child processes that clean up after themselves, images, tools.

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osm-agent"))
}

/// Whether `tool` is on PATH (or is an existing absolute path).
pub fn have(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Whether this is a CI run (`CI=true`), where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips the calling test, loudly, unless every tool is installed; in CI a missing tool fails
/// the test instead, so that a broken setup cannot pass as green.
#[macro_export]
macro_rules! require {
    ($($tool:expr),+) => {
        for t in [$($tool),+] {
            if !$crate::util::have(t) {
                let msg = format!("{}: `{t}` is not installed (scripts/bootstrap.sh test installs it)", module_path!());
                assert!(!$crate::util::in_ci(), "{msg}");
                eprintln!("\n*** SKIPPED {msg} ***\n");
                return;
            }
        }
    };
}

/// A private temporary directory (mode 0700, like the agent's socket directories).
pub struct Dir(tempfile::TempDir);

impl Dir {
    pub fn new() -> Dir {
        let t = tempfile::Builder::new()
            .prefix("osm-agent-test")
            .tempdir()
            .expect("tempdir");
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        Dir(t)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A child process that is killed and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (generously: the machine may be busy) until `ok` holds.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(20));
    }
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// SHA-256 of a file, by coreutils (fast even when this test is built without optimisation).
pub fn sha256(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Writes `data` at `offset` of `path`, creating it with `size` (sparse) if needed.
pub fn write_at(path: &Path, size: u64, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .expect("open image");
    if f.metadata().expect("stat").len() < size {
        f.set_len(size).expect("set_len");
    }
    f.write_all_at(data, offset).expect("write");
}

/// A running `osm-agent serve --daemon`, stopped on drop.
pub struct Served {
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub export: String,
}

impl Served {
    pub fn start(dir: &Dir, image: &Path) -> Served {
        let socket = dir.path("srv/nbd.sock");
        let pid_file = dir.path("serve.pid");
        run_ok(
            agent()
                .args(["serve", "--export", "disk", "--daemon"])
                .arg("--device")
                .arg(image)
                .arg("--socket")
                .arg(&socket)
                .arg("--pid-file")
                .arg(&pid_file),
        );
        assert!(
            socket.exists(),
            "the socket exists once serve --daemon returns"
        );
        Served {
            socket,
            pid_file,
            export: "disk".into(),
        }
    }

    pub fn uri(&self) -> String {
        format!(
            "nbd+unix:///{}?socket={}",
            self.export,
            self.socket.display()
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = agent()
            .arg("stop")
            .arg("--pid-file")
            .arg(&self.pid_file)
            .status();
    }
}

/// The JSON lines a sync printed.
pub fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Runs `osm-agent sync --from URI... --to DST [extra]` and returns its events; asserts success.
pub fn sync(uris: &[&str], dst: &Path, extra: &[&str]) -> Vec<Value> {
    let mut cmd = agent();
    cmd.arg("sync");
    for u in uris {
        cmd.args(["--from", u]);
    }
    let out = run_ok(cmd.arg("--to").arg(dst).args(extra));
    let ev = events(&out);
    assert_eq!(
        ev.first().map(|e| e["event"].clone()),
        Some("start".into()),
        "{ev:?}"
    );
    let done = ev.last().cloned().unwrap_or_default();
    assert_eq!(done["event"], "done", "{ev:?}");
    ev
}

/// Runs a sync that must fail and returns its error message (from the `error` line).
pub fn sync_error(uris: &[&str], dst: &Path, extra: &[&str]) -> String {
    let mut cmd = agent();
    cmd.arg("sync");
    for u in uris {
        cmd.args(["--from", u]);
    }
    let out = cmd.arg("--to").arg(dst).args(extra).output().unwrap();
    assert!(!out.status.success(), "the sync should have failed");
    let ev = events(&out);
    let last = ev.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "error", "{ev:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("osm-agent:"));
    last["message"].as_str().unwrap_or_default().to_string()
}

/// A number from a JSON line.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// Fills a file with `n` pseudo-random bytes (a volume a non-zeroing backend handed out).
pub fn garbage_file(path: &Path, n: usize, seed: u64) {
    fs::write(path, random_bytes(n, seed)).expect("write garbage");
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `cmd` and waits until `socket` exists.
pub fn spawn_server(cmd: &mut Command, socket: &Path) -> Proc {
    let p = Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
    );
    wait_until(&format!("{}", socket.display()), || socket.exists());
    p
}

/// A file of `n` explicit zero bytes (allocated, not sparse).
pub fn zeros_file(path: &Path, n: usize) {
    let mut f = File::create(path).expect("create");
    f.write_all(&vec![0u8; n]).expect("write");
}
