//! Files on the host: atomic uploads and writes, checksums, reading back.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{command_line, Conn, SshError};

impl Conn {
    /// The bytes of a file on the host.
    pub fn read_file(&self, remote: &str) -> Result<Vec<u8>, SshError> {
        self.run_bytes(&["cat", "--", remote])
    }

    /// Runs `argv` (quoted) and returns its stdout as bytes; a non-zero exit status is an error
    /// carrying stderr.
    pub fn run_bytes<S: AsRef<str>>(&self, argv: &[S]) -> Result<Vec<u8>, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, |_| {}, self.silence)?;
        if out.status != 0 {
            return Err(self
                .checked(cmd, out.text())
                .err()
                .unwrap_or_else(|| self.channel_err("reading output", "the command failed")));
        }
        Ok(out.stdout)
    }

    /// The sha256 of a remote file, or None when it does not exist.
    pub fn remote_sha256(&self, path: &str) -> Result<Option<String>, SshError> {
        let out = self.run_unchecked(&["sha256sum", "--", path])?;
        if out.status != 0 {
            return Ok(None);
        }
        Ok(out.stdout.split_whitespace().next().map(str::to_string))
    }

    /// Uploads `local` to `remote` with `mode` unless the remote file already has the same sha256.
    /// The file appears atomically (written under a temporary name, then renamed). Returns whether it
    /// uploaded.
    pub fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<bool, SshError> {
        let local_err = |source| SshError::Local {
            path: local.to_path_buf(),
            source,
        };
        let want = sha256_file(local).map_err(local_err)?;
        if self.remote_sha256(remote)?.as_deref() == Some(want.as_str()) {
            return Ok(false);
        }
        let dir = match remote.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => remote[..i].to_string(),
            None => ".".to_string(),
        };
        let tmp = format!("{remote}.upload-{}", std::process::id());
        self.run(&["mkdir", "-p", "--", &dir])?;
        let mut f = std::fs::File::open(local).map_err(local_err)?;
        self.run_with_input(
            &["sh", "-c", "umask 077 && cat > \"$1\"", "sh", &tmp],
            &mut f,
        )?;
        let got = self.remote_sha256(&tmp)?;
        if got.as_deref() != Some(want.as_str()) {
            let _ = self.run_unchecked(&["rm", "-f", "--", &tmp]);
            return Err(self.channel_err(
                &format!("uploading {}", local.display()),
                "the checksum of the uploaded file differs",
            ));
        }
        self.run(&["chmod", &format!("{mode:o}"), "--", &tmp])?;
        self.run(&["mv", "-f", "--", &tmp, remote])?;
        Ok(true)
    }

    /// Writes `content` to `remote` (mode `mode`) atomically.
    pub fn write_file(&self, remote: &str, content: &[u8], mode: u32) -> Result<(), SshError> {
        let tmp = format!("{remote}.write-{}", std::process::id());
        let mut input: &[u8] = content;
        self.run_with_input(
            &["sh", "-c", "umask 077 && cat > \"$1\"", "sh", &tmp],
            &mut input,
        )?;
        self.run(&["chmod", &format!("{mode:o}"), "--", &tmp])?;
        self.run(&["mv", "-f", "--", &tmp, remote])?;
        Ok(())
    }
}

/// The sha256 of a local file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
