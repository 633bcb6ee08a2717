//! The few system calls std does not wrap, each checked and turned into `io::Error`.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `lseek(SEEK_DATA)`/`lseek(SEEK_HOLE)`: `None` when there is no data (or hole) at or after `at`.
pub fn seek(f: &File, at: u64, data: bool) -> io::Result<Option<u64>> {
    let whence = if data {
        libc::SEEK_DATA
    } else {
        libc::SEEK_HOLE
    };
    // SAFETY: lseek on a valid descriptor has no memory effects.
    let r = unsafe { libc::lseek(f.as_raw_fd(), at as libc::off_t, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// `fallocate(2)` with `mode`.
pub fn fallocate(f: &File, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on a valid descriptor has no memory effects.
    check(unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    })
    .map(drop)
}

/// `ioctl(BLKZEROOUT)`: the device zeroes the range itself (offset and length 512-aligned).
pub fn blkzeroout(f: &File, offset: u64, len: u64) -> io::Result<()> {
    // _IO(0x12, 127), from linux/fs.h; libc does not export it.
    const BLKZEROOUT: libc::c_ulong = 0x127f;
    let range: [u64; 2] = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64s from the pointer, which points at `range`.
    check(unsafe { libc::ioctl(f.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) }).map(drop)
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` over the whole file: starts writing dirty pages back
/// without waiting for them.
pub fn start_writeback(f: &File) -> io::Result<()> {
    // SAFETY: no memory effects.
    check(unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) })
        .map(drop)
}

/// `fdatasync(2)`.
pub fn fdatasync(f: &File) -> io::Result<()> {
    // SAFETY: no memory effects.
    check(unsafe { libc::fdatasync(f.as_raw_fd()) }).map(drop)
}

/// Sends `sig` to `pid`; `Ok(false)` if there is no such process.
pub fn kill(pid: i32, sig: libc::c_int) -> io::Result<bool> {
    // SAFETY: kill has no memory effects.
    match check(unsafe { libc::kill(pid, sig) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `pid` is a live process (a zombie counts as gone: it only waits for its parent).
pub fn alive(pid: i32) -> bool {
    if !matches!(kill(pid, 0), Ok(true)) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain spaces.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Sets the umask, returning the old one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Blocks `signals` in this thread (and in threads it spawns later), so one thread can wait for
/// them with [`wait_signal`].
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
    }
    Ok(())
}

/// Waits for one of `signals` (which must be blocked) and returns it.
pub fn wait_signal(signals: &[libc::c_int]) -> io::Result<libc::c_int> {
    // SAFETY: as in block_signals; sigwait writes the signal number into `sig`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let mut sig: libc::c_int = 0;
        let r = libc::sigwait(&set, &mut sig);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(sig)
    }
}

/// What [`fork`] returned in this process.
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// `fork(2)`. Only sound while the process has a single thread, which callers ensure by forking
/// before they start any.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: see above; the child continues with a copy of the single thread.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// `setsid(2)`: leaves the caller's session and terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no memory effects.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Points stdin, stdout and stderr at /dev/null, so a daemon holds no terminal or pipe open.
pub fn stdio_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; `null` stays open across the calls.
        check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}
