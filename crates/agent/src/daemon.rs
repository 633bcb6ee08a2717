//! Running in the background: pid files, detaching, and `stop`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sys;

/// Writes `pid` to `path` atomically, so a reader never sees a half-written file.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, format!("{pid}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Forks; the parent waits until the child calls `ready` (then exits 0) or dies (then fails).
/// The child, detached from the terminal, runs `child` and exits with its result.
///
/// Must be called while the process has one thread.
pub fn daemonize(
    pid_file: &Path,
    child: impl FnOnce(Box<dyn FnOnce() -> Result<()>>) -> Result<()>,
) -> Result<()> {
    let (mut parent_end, child_end) = UnixStream::pair().context("creating the readiness pipe")?;
    match sys::fork().context("fork")? {
        sys::Forked::Parent(pid) => {
            drop(child_end);
            let mut b = [0u8; 1];
            match parent_end.read(&mut b) {
                Ok(1) => Ok(()),
                _ => bail!("the background process {pid} exited before it was ready"),
            }
        }
        sys::Forked::Child => {
            drop(parent_end);
            let pid_file = pid_file.to_path_buf();
            let ready: Box<dyn FnOnce() -> Result<()>> = Box::new(move || {
                sys::setsid().context("setsid")?;
                write_pid_file(&pid_file, std::process::id() as i32)?;
                sys::stdio_to_null().context("detaching stdio")?;
                let mut end = child_end;
                end.write_all(b"1").context("signalling readiness")?;
                Ok(())
            });
            let code = match child(ready) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("osm-agent: {e:#}");
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

/// Ends the processes named in `pid_files` with SIGTERM, all at once, and waits up to `timeout`
/// for them to exit. A missing pid file or a process already gone is success: stopping is
/// idempotent.
pub fn stop(pid_files: &[PathBuf], timeout: Duration) -> Result<()> {
    let mut signalled = Vec::new();
    for f in pid_files {
        if let Some(pid) = signal(f)? {
            signalled.push((f, pid));
        }
    }
    let start = Instant::now();
    for (f, pid) in signalled {
        while sys::alive(pid) {
            if start.elapsed() > timeout {
                sys::kill(pid, libc::SIGKILL).with_context(|| format!("killing process {pid}"))?;
                bail!(
                    "process {pid} ({}) did not exit within {}s of SIGTERM; sent SIGKILL",
                    f.display(),
                    timeout.as_secs()
                );
            }
            sleep(Duration::from_millis(20));
        }
        remove_pid_file(f)?;
    }
    Ok(())
}

/// Sends SIGTERM to the process `pid_file` names, if it is alive and ours; returns its pid then.
/// Removes a pid file whose process is gone.
fn signal(pid_file: &Path) -> Result<Option<i32>> {
    let text = match fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", pid_file.display())),
    };
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 1)
        .with_context(|| {
            format!(
                "{} does not hold a process id: {text:?}",
                pid_file.display()
            )
        })?;
    // A stale pid file may name a recycled pid: only signal what this tool started.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let ours = matches!(comm.trim(), "osm-agent" | "ssh");
    if ours && sys::alive(pid) {
        sys::kill(pid, libc::SIGTERM).with_context(|| format!("signalling process {pid}"))?;
        return Ok(Some(pid));
    }
    remove_pid_file(pid_file)?;
    Ok(None)
}

fn remove_pid_file(pid_file: &Path) -> Result<()> {
    match fs::remove_file(pid_file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", pid_file.display())),
    }
}
