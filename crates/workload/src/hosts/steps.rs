//! The commands a cutover waits for within its downtime, each one command on its host: every
//! command costs a round trip and a login shell on the host, and the steps after the stop run
//! them one after the other, so what used to be two or three commands is one here.

use std::time::Duration;

use super::{ConvHost, HostError, HostSpec, FIND_DEVICE_MAX};

/// Prints the device of the attached volume `$s` (waiting up to `$t` seconds for it) as the
/// first line; the script that follows it finds the path in `$d`.
const FIND: &str = "a=$1 s=$2 t=$3; shift 3; \
                    d=$(\"$a\" device --serial \"$s\" --timeout \"$t\") || exit; \
                    printf '%s\\n' \"$d\"; ";

/// After [`FIND`]: the export's pid file, then `serve`'s remaining options. An export that is
/// already running (a retry) is left as it is.
const SERVE: &str = "f=$1; shift; \
                     p=$(cat -- \"$f\" 2>/dev/null) && [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null && exit 0; \
                     exec \"$a\" serve --device \"$d\" --expect-serial \"$s\" --daemon --pid-file \"$f\" \"$@\"";

/// After [`FIND`]: one tunnel per `(local socket, pid file)` pair, all started at once (each takes
/// a key exchange to come up).
const TUNNELS: &str = "r=$1 h=$2 p=$3 u=$4 k=$5 n=$6 g=$7; shift 7; pids=; \
                       while [ $# -ge 2 ]; do \
                         \"$a\" tunnel --remote-socket \"$r\" --local-socket \"$1\" --host \"$h\" --port \"$p\" \
                           --user \"$u\" --identity \"$k\" --known-hosts \"$n\" --remote-agent \"$g\" \
                           --daemon --pid-file \"$2\" & \
                         pids=\"$pids $!\"; shift 2; \
                       done; st=0; for x in $pids; do wait \"$x\" || st=1; done; exit $st";

/// Stops the processes of the pid files that exist (`$a stop`, with its messages on stderr and
/// status 97 when it fails), then prints the file `$m`.
const STOP_AND_CAT: &str = "a=$1 m=$2; shift 2; \
                            for x do shift; [ ! -e \"$x\" ] || set -- \"$@\" --pid-file \"$x\"; done; \
                            if [ $# -gt 0 ]; then \"$a\" stop \"$@\" >&2 || exit 97; fi; \
                            exec cat -- \"$m\"";

/// What `osm-agent serve --sparsify` said it recognised on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparsified {
    /// As the log shows it.
    pub summary: String,
    /// The disk's bytes less the free space found: what the sync will read and may send.
    pub used_bytes: u64,
}

fn sparsified(line: &str) -> Option<Sparsified> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["event"] == "sparsify").then(|| {
        let (free, size) = (
            v["free_bytes"].as_u64().unwrap_or(0),
            v["size"].as_u64().unwrap_or(0),
        );
        // The agent's summary already says how much is free and what it recognised.
        Sparsified {
            summary: v["summary"]
                .as_str()
                .unwrap_or("sparsify: nothing recognised")
                .to_string(),
            used_bytes: size.saturating_sub(free),
        }
    })
}

impl ConvHost {
    /// Runs [`FIND`] for the attached volume `serial` (waiting at most `timeout`, and never more
    /// than `FIND_DEVICE_MAX`), then the script `then` with `args`, as one command: the device,
    /// and the lines `then` printed.
    fn find_then(
        &self,
        serial: &str,
        timeout: Duration,
        then: &str,
        args: &[&str],
    ) -> Result<(String, String), HostError> {
        let quiet = timeout.min(FIND_DEVICE_MAX);
        let secs = quiet.as_secs().max(1).to_string();
        let script = format!("{FIND}{then}");
        let agent = self.agent();
        let mut argv: Vec<&str> = vec!["sh", "-c", &script, "sh", &agent, serial, &secs];
        argv.extend(args);
        let out = self
            .conn
            .run_quiet(&argv, quiet)
            .map_err(|e| self.ssh(e))?
            .stdout;
        let (first, rest) = out.split_once('\n').unwrap_or((&out, ""));
        let path = first.trim();
        if path.starts_with('/') {
            Ok((path.to_string(), rest.to_string()))
        } else {
            Err(self.agent_err(format!(
                "osm-agent device printed {path:?} for volume {serial}"
            )))
        }
    }

    /// Waits for an attached volume's device (at most `timeout`, and never more than
    /// `FIND_DEVICE_MAX`) and returns its path.
    pub fn find_device(&self, serial: &str, timeout: Duration) -> Result<String, HostError> {
        self.find_then(serial, timeout, "", &[])
            .map(|(device, _)| device)
    }

    /// Finds the attached volume `serial`'s device and starts its read-only NBD export on
    /// `socket` in the background, unless `pid_file` shows one running: the device, and with
    /// `sparsify` the agent's account of what it recognised on the disk and will not send.
    pub fn export(
        &self,
        serial: &str,
        timeout: Duration,
        socket: &str,
        export: &str,
        pid_file: &str,
        sparsify: bool,
    ) -> Result<(String, Option<Sparsified>), HostError> {
        let mut args = vec![pid_file, "--socket", socket, "--export", export];
        if sparsify {
            args.push("--sparsify");
        }
        let (device, said) = self.find_then(serial, timeout, SERVE, &args)?;
        Ok((device, said.lines().find_map(sparsified)))
    }

    /// Finds the attached volume `serial`'s device, and starts the tunnels that make the source
    /// host's export socket `remote` appear here as each `(local socket, pid file)` of `tunnels`,
    /// through the bridge of the source host's agent `remote_agent`; returns the device.
    #[allow(clippy::too_many_arguments)]
    pub fn tunnels_to(
        &self,
        serial: &str,
        timeout: Duration,
        src: &HostSpec,
        user: &str,
        remote: &str,
        remote_agent: &str,
        tunnels: &[(String, String)],
    ) -> Result<String, HostError> {
        let port = src.ssh_port.to_string();
        let (key, known) = (self.link_key(), self.link_known_hosts());
        let mut args = vec![
            remote,
            &src.address,
            &port,
            user,
            &key,
            &known,
            remote_agent,
        ];
        for (local, pid) in tunnels {
            args.push(local);
            args.push(pid);
        }
        self.find_then(serial, timeout, TUNNELS, &args)
            .map(|(device, _)| device)
    }

    /// Stops the processes of `pid_files` (those that exist) and returns the bytes of the file
    /// `path`: the end of a sync, the tunnels stopped and its manifest fetched.
    pub fn stop_and_read(&self, pid_files: &[String], path: &str) -> Result<Vec<u8>, HostError> {
        let agent = self.agent();
        let mut argv = vec!["sh", "-c", STOP_AND_CAT, "sh", &agent, path];
        argv.extend(pid_files.iter().map(String::as_str));
        self.conn.run_bytes(&argv).map_err(|e| self.ssh(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    /// What `osm-agent serve --sparsify` says of a disk (osm_fsmap's summary), as the stub says it.
    const SUMMARY: &str =
        "sparsify: 1.0 MiB of 2.0 MiB free (50.0%), not copied; recognised: ext4 at 0 B";

    /// An agent that logs each call's arguments to `calls` and answers `device` with a path
    /// named for the serial (or fails for the serial `missing`), `serve` with a sparsify line, and
    /// `stop` with success (or failure when `STOP_FAILS` exists beside it).
    fn stub_agent(dir: &Path) -> String {
        let agent = dir.join("agent");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {calls}\n\
             case $1 in\n\
             device) [ \"$3\" = missing ] && exit 4; echo \"/dev/disk/by-id/virtio-$3\" ;;\n\
             serve) echo '{{\"event\":\"sparsify\",\"free_bytes\":1048576,\"size\":2097152,\"summary\":\"{SUMMARY}\"}}' ;;\n\
             stop) [ ! -e {fails} ] || {{ echo 'cannot stop' >&2; exit 1; }} ;;\n\
             esac\n",
            calls = dir.join("calls").display(),
            fails = dir.join("STOP_FAILS").display(),
            SUMMARY = SUMMARY,
        );
        std::fs::write(&agent, script).unwrap();
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        agent.display().to_string()
    }

    fn run(script: &str, args: &[&str]) -> (i32, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn calls(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("calls")).unwrap_or_default()
    }

    #[test]
    fn an_export_finds_its_device_then_serves_it_unless_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let agent = stub_agent(dir.path());
        let script = format!("{FIND}{SERVE}");
        let pid = dir.path().join("boot.pid").display().to_string();
        let args = [
            &agent, "vol 1", "5", &pid, "--socket", "/s", "--export", "boot",
        ];
        let (status, out) = run(&script, &args);
        assert_eq!(status, 0, "{out}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("/dev/disk/by-id/virtio-vol 1"));
        assert_eq!(
            lines.find_map(sparsified),
            Some(Sparsified {
                summary: SUMMARY.into(),
                used_bytes: 1 << 20
            })
        );
        assert_eq!(
            calls(dir.path()),
            format!(
                "device --serial vol 1 --timeout 5\n\
                 serve --device /dev/disk/by-id/virtio-vol 1 --expect-serial vol 1 --daemon --pid-file {pid} --socket /s --export boot\n"
            )
        );
        // A retry whose export still runs: the device again, and no second serve.
        std::fs::write(&pid, std::process::id().to_string()).unwrap();
        std::fs::remove_file(dir.path().join("calls")).unwrap();
        let (status, out) = run(&script, &args);
        assert_eq!(
            (status, out.as_str()),
            (0, "/dev/disk/by-id/virtio-vol 1\n")
        );
        assert_eq!(calls(dir.path()), "device --serial vol 1 --timeout 5\n");
        // The lookup alone (find_device): the device, and nothing else runs.
        std::fs::remove_file(dir.path().join("calls")).unwrap();
        let (status, out) = run(FIND, &[&agent, "vol 1", "5"]);
        assert_eq!(
            (status, out.as_str()),
            (0, "/dev/disk/by-id/virtio-vol 1\n")
        );
        assert_eq!(calls(dir.path()), "device --serial vol 1 --timeout 5\n");
        // No device: nothing is served.
        std::fs::remove_file(&pid).unwrap();
        std::fs::remove_file(dir.path().join("calls")).unwrap();
        let args = [
            &agent, "missing", "5", &pid, "--socket", "/s", "--export", "boot",
        ];
        let (status, out) = run(&script, &args);
        assert_ne!(status, 0, "{out}");
        assert_eq!(calls(dir.path()), "device --serial missing --timeout 5\n");
    }

    #[test]
    fn the_end_of_a_sync_stops_the_tunnels_that_exist_then_prints_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let agent = stub_agent(dir.path());
        let manifest = dir.path().join("boot.manifest");
        std::fs::write(&manifest, b"\x00manifest\xff").unwrap();
        let m = manifest.display().to_string();
        let here = dir.path().join("t0.pid").display().to_string();
        let gone = dir.path().join("t1.pid").display().to_string();
        std::fs::write(&here, "1").unwrap();
        let (status, out) = run(STOP_AND_CAT, &[&agent, &m, &here, &gone]);
        assert_eq!((status, out.as_str()), (0, "\u{0}manifest\u{fffd}"));
        assert_eq!(calls(dir.path()), format!("stop --pid-file {here}\n"));
        // None left to stop: the agent is not called.
        std::fs::remove_file(dir.path().join("calls")).unwrap();
        let (status, _) = run(STOP_AND_CAT, &[&agent, &m, &gone]);
        assert_eq!((status, calls(dir.path()).as_str()), (0, ""));
        // A stop that fails fails the command, and the manifest is not read.
        std::fs::write(dir.path().join("STOP_FAILS"), "").unwrap();
        let (status, out) = run(STOP_AND_CAT, &[&agent, &m, &here]);
        assert_eq!((status, out.as_str()), (97, ""));
    }
}
