//! Running commands: quoted argument vectors, input, output drained as it comes, silence limits.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ssh2::Session;

use crate::{Conn, SshError, KEEPALIVE};

/// Quotes one argument for a POSIX shell: the result is always a single word with the exact bytes
/// of `arg`, whatever it holds (spaces, `$(...)`, quotes, newlines). A NUL byte is refused: no
/// command line can carry it (the remote shell would end the argument there, running another
/// command than the one asked for).
pub fn quote(arg: &str) -> Result<String, SshError> {
    if arg.contains('\0') {
        return Err(SshError::Nul {
            argument: arg.to_string(),
        });
    }
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return Ok(arg.to_string());
    }
    Ok(format!("'{}'", arg.replace('\'', r"'\''")))
}

/// The command line for an argument vector, each argument quoted.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> Result<String, SshError> {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map(|words| words.join(" "))
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status.
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// What a command printed, as bytes.
pub(crate) struct Raw {
    pub(crate) status: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Raw {
    pub(crate) fn text(self) -> Output {
        Output {
            status: self.status,
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
        }
    }
}

impl Conn {
    pub(crate) fn channel_err(&self, doing: &str, e: impl std::fmt::Display) -> SshError {
        SshError::Channel {
            host: self.host.label(),
            doing: doing.to_string(),
            message: e.to_string(),
        }
    }

    /// Runs `argv` (quoted) and returns its output, whatever its exit status.
    pub fn run_unchecked<S: AsRef<str>>(&self, argv: &[S]) -> Result<Output, SshError> {
        self.exec(&command_line(argv)?, None, |_| {}, self.silence)
            .map(Raw::text)
    }

    /// Runs `argv` (quoted); a non-zero exit status is an error carrying stderr.
    pub fn run<S: AsRef<str>>(&self, argv: &[S]) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, |_| {}, self.silence)?;
        self.checked(cmd, out.text())
    }

    /// Runs `argv` (quoted), a command known to stay silent for up to `quiet` (it waits for
    /// something); a non-zero exit status is an error.
    pub fn run_quiet<S: AsRef<str>>(
        &self,
        argv: &[S],
        quiet: Duration,
    ) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, |_| {}, self.silence + quiet)?;
        self.checked(cmd, out.text())
    }

    /// Runs `argv` (quoted) with `input` on its stdin; a non-zero exit status is an error.
    pub fn run_with_input<S: AsRef<str>>(
        &self,
        argv: &[S],
        input: &mut dyn Read,
    ) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, Some(input), |_| {}, self.silence)?;
        self.checked(cmd, out.text())
    }

    /// Runs `argv` (quoted), calling `on_line` with each line of stdout as it arrives.
    pub fn stream<S: AsRef<str>>(
        &self,
        argv: &[S],
        on_line: impl FnMut(&str),
    ) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, on_line, self.silence)?;
        self.checked(cmd, out.text())
    }

    pub(crate) fn checked(&self, command: String, out: Output) -> Result<Output, SshError> {
        if out.status == 0 {
            return Ok(out);
        }
        let tail: String = {
            let s = out.stderr.trim();
            let start = s.char_indices().rev().nth(1999).map_or(0, |(i, _)| i);
            s[start..].to_string()
        };
        Err(SshError::Command {
            host: self.host.label(),
            command,
            status: out.status,
            stderr: tail,
        })
    }

    fn silent(&self, command: &str, silence: Duration) -> SshError {
        SshError::Silent {
            host: self.host.label(),
            doing: format!("running `{command}`"),
            silence,
        }
    }

    pub(crate) fn exec(
        &self,
        command: &str,
        input: Option<&mut dyn Read>,
        mut on_line: impl FnMut(&str),
        silence: Duration,
    ) -> Result<Raw, SshError> {
        let timed_out = |e: &ssh2::Error| {
            matches!(
                e.code(),
                ssh2::ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_TIMEOUT)
            )
        };
        let mut ch = self
            .session
            .channel_session()
            .map_err(|e| self.channel_err("opening a session", e))?;
        ch.exec(command).map_err(|e| {
            if timed_out(&e) {
                self.silent(command, self.silence)
            } else {
                self.channel_err(&format!("starting `{command}`"), e)
            }
        })?;
        if let Some(input) = input {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| self.channel_err("reading the local input", e))?;
                if n == 0 {
                    break;
                }
                ch.write_all(&buf[..n]).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        self.silent(command, self.silence)
                    } else {
                        self.channel_err("sending input", e)
                    }
                })?;
            }
            ch.send_eof()
                .map_err(|e| self.channel_err("closing input", e))?;
        }
        // Both streams are read as data arrives, without blocking on either: a command that
        // fills its stderr while we wait for stdout (or the reverse) would otherwise stall.
        self.session.set_blocking(false);
        let drained = self.drain(&mut ch, command, &mut on_line, silence);
        self.session.set_blocking(true);
        let (stdout, stderr) = drained?;
        ch.wait_close().map_err(|e| {
            if timed_out(&e) {
                self.silent(command, self.silence)
            } else {
                self.channel_err("closing the channel", e)
            }
        })?;
        let status = ch
            .exit_status()
            .map_err(|e| self.channel_err("reading the exit status", e))?;
        Ok(Raw {
            status,
            stdout,
            stderr,
        })
    }

    fn drain(
        &self,
        ch: &mut ssh2::Channel,
        command: &str,
        on_line: &mut impl FnMut(&str),
        silence: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>), SshError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut line_start = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut out_done, mut err_done) = (false, false);
        let mut heard = Instant::now();
        let mut kept_alive = Instant::now();
        loop {
            let mut progressed = false;
            for (id, done) in [(0, &mut out_done), (1, &mut err_done)] {
                if *done {
                    continue;
                }
                match ch.stream(id).read(&mut buf) {
                    // libssh2 may also return 0 when a packet for something else arrived.
                    Ok(0) if ch.eof() => *done = true,
                    Ok(0) => {}
                    Ok(n) => {
                        progressed = true;
                        if id == 0 {
                            stdout.extend_from_slice(&buf[..n]);
                            while let Some(nl) =
                                stdout[line_start..].iter().position(|&b| b == b'\n')
                            {
                                let line =
                                    String::from_utf8_lossy(&stdout[line_start..line_start + nl]);
                                on_line(line.trim_end_matches('\r'));
                                line_start += nl + 1;
                            }
                        } else {
                            stderr.extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(self.channel_err("reading output", e)),
                }
            }
            // Checked before any wait: once both streams ended, the socket stays quiet and a
            // wait would last its whole timeout (it cost every command 0.2 s).
            if out_done && err_done {
                break;
            }
            if progressed {
                heard = Instant::now();
                continue;
            }
            if heard.elapsed() >= silence {
                return Err(self.silent(command, silence));
            }
            if kept_alive.elapsed() >= KEEPALIVE {
                // Only keeps middleboxes from dropping an idle session; silence ends the wait.
                let _ = self.session.keepalive_send();
                kept_alive = Instant::now();
            }
            wait_readable(&self.session, Duration::from_millis(200));
        }
        if line_start < stdout.len() {
            let line = String::from_utf8_lossy(&stdout[line_start..]);
            on_line(line.trim_end_matches(['\n', '\r']));
        }
        Ok((stdout, stderr))
    }

    /// The login's home directory on the host.
    pub fn home(&self) -> Result<String, SshError> {
        let out = self.exec("printf %s \"$HOME\"", None, |_| {}, self.silence)?;
        let out = self.checked("printf %s \"$HOME\"".into(), out.text())?;
        if out.stdout.starts_with('/') {
            Ok(out.stdout)
        } else {
            Err(self.channel_err(
                "finding the home directory",
                format!("unexpected answer {:?}", out.stdout),
            ))
        }
    }
}

/// Waits until the session's socket has something to read (or `max` passes).
fn wait_readable(session: &Session, max: Duration) {
    use std::os::unix::io::AsRawFd;
    let mut events = libc::POLLIN;
    if session
        .block_directions()
        .eq(&ssh2::BlockDirections::Outbound)
        || session.block_directions() == ssh2::BlockDirections::Both
    {
        events |= libc::POLLOUT;
    }
    let mut fd = libc::pollfd {
        fd: session.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd; poll only writes its revents.
    unsafe {
        libc::poll(&mut fd, 1, max.as_millis() as libc::c_int);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_byte_in_one_word() {
        let q = |s| quote(s).expect("quotable");
        assert_eq!(q("plain-name_1.2"), "plain-name_1.2");
        assert_eq!(q(""), "''");
        assert_eq!(q("web 01; $(id)"), "'web 01; $(id)'");
        assert_eq!(q("it's"), r"'it'\''s'");
        assert_eq!(q("a\nb"), "'a\nb'");
        assert_eq!(
            command_line(&["echo", "a b", "`id`"]).expect("quotable"),
            "echo 'a b' '`id`'"
        );
    }

    #[test]
    fn a_nul_byte_is_refused_not_cut() {
        let e = quote("vol\0; rm -rf /").expect_err("refused");
        assert!(matches!(e, SshError::Nul { .. }), "{e:?}");
        assert!(e.to_string().contains("NUL"), "{e}");
        assert!(command_line(&["cat", "--", "a\0b"]).is_err());
    }
}
