//! The link between the conversion hosts: the destination's key, authorized on the source host
//! for the agent's bridge only, and the source's host key recorded on the destination.

use std::path::Path;

use osm_ssh::Host;

use super::{ConvHost, HostError};

/// Lines of a known_hosts file for an entry (`addr` or `[addr]:port`).
pub fn known_host_lines(known_hosts: &Path, entry: &str) -> Result<Vec<String>, HostError> {
    let text = std::fs::read_to_string(known_hosts).map_err(|e| HostError::Local {
        path: known_hosts.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|hosts| hosts.split(',').any(|h| h == entry))
        })
        .map(str::to_string)
        .collect())
}

/// The `authorized_keys` line of the link key on the source host: everything off (`restrict`: no
/// port forwarding in either direction, no pty, no agent or X11 forwarding, no `~/.ssh/rc`) and one
/// forced command, the agent's bridge to the sockets under its own directory, whatever the client
/// asks to run. (An `ssh -L` key cannot be narrowed to Unix sockets: `permitopen` has no form for
/// them and would refuse them all, while without it the key reaches every TCP service the source
/// host reaches; and `permitlisten` has no form that refuses every remote forward.)
pub fn link_key_line(src: &ConvHost, public: &str) -> Result<String, HostError> {
    let (agent, root) = (src.agent(), src.osm_dir());
    for (field, value) in [("agent path", &agent), ("agent directory", &root)] {
        // The forced command is a shell line inside a quoted option: plain paths only.
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+@%=:,".contains(&b))
        {
            return Err(HostError::Setting {
                role: src.role,
                name: src.spec.name.clone(),
                field,
                value: value.clone(),
                message: "is not a plain path (the login's home holds unusual characters); the link key's forced command cannot name it",
            });
        }
    }
    Ok(format!(
        "restrict,command=\"{agent} bridge --root {root}\" {public}"
    ))
}

/// Lets the destination host reach the source host for the tunnel, idempotently: a link key made on
/// the destination host (its private half never leaves it), its public half authorized on the source
/// host for tunnels only ([`link_key_line`]), and the source host's key, as the migrator recorded
/// it, in the destination host's known_hosts for the tunnel. Returns what it changed.
pub fn ensure_link(
    src: &ConvHost,
    dst: &ConvHost,
    migrator_known_hosts: &Path,
) -> Result<Vec<String>, HostError> {
    let mut changed = Vec::new();
    dst.run(&["mkdir", "-p", "-m", "0700", "--", &dst.osm_dir()])?;
    let key = dst.link_key();
    if dst
        .conn
        .run_unchecked(&["test", "-f", &key])
        .map_err(|e| dst.ssh(e))?
        .status
        != 0
    {
        dst.run(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "osm-link",
            "-f",
            &key,
        ])?;
        changed.push(format!("made the link key on {}", dst.spec.name));
    }
    let public = dst.run(&["cat", "--", &format!("{key}.pub")])?;
    let public = public.trim();
    if !public.starts_with("ssh-") {
        return Err(dst.agent_err(format!(
            "the link key's public half is unreadable: {public:?}"
        )));
    }
    let line = link_key_line(src, public)?;
    // The key's blob (type and base64) finds every line of this key, so that an older line with
    // weaker options (sshd uses the first line that matches) is replaced, never left before ours.
    let blob = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let authorize = "umask 077 && mkdir -p \"$HOME/.ssh\" && f=\"$HOME/.ssh/authorized_keys\" && touch \"$f\" && \
                     if grep -qxF -- \"$1\" \"$f\" && [ \"$(grep -cF -- \"$2\" \"$f\")\" = 1 ]; then exit 0; fi && \
                     { grep -vF -- \"$2\" \"$f\" || [ $? = 1 ]; } > \"$f.osm-new\" && \
                     printf '%s\\n' \"$1\" >> \"$f.osm-new\" && mv -f -- \"$f.osm-new\" \"$f\" && exit 10";
    let out = src
        .conn
        .run_unchecked(&["sh", "-c", authorize, "sh", &line, &blob])
        .map_err(|e| src.ssh(e))?;
    match out.status {
        0 => {}
        10 => changed.push(format!(
            "authorized the link key on {} (tunnels to osm's sockets only: no command, no port forward)",
            src.spec.name
        )),
        s => {
            return Err(src.agent_err(format!(
                "authorizing the link key failed (status {s}): {}",
                out.stderr.trim()
            )))
        }
    }
    let entry =
        Host::new(src.spec.address.clone(), src.spec.ssh_port, "", "", "").known_hosts_entry();
    let lines = known_host_lines(migrator_known_hosts, &entry)?;
    if lines.is_empty() {
        return Err(HostError::Local {
            path: migrator_known_hosts.to_path_buf(),
            message: format!("no host key recorded for the source conversion host {entry}"),
        });
    }
    let want = format!("{}\n", lines.join("\n"));
    let have = dst
        .conn
        .run_unchecked(&["cat", "--", &dst.link_known_hosts()])
        .map_err(|e| dst.ssh(e))?;
    if have.stdout != want {
        dst.conn
            .write_file(&dst.link_known_hosts(), want.as_bytes(), 0o600)
            .map_err(|e| dst.ssh(e))?;
        changed.push(format!(
            "recorded the host key of {} ({entry}) on {}",
            src.spec.name, dst.spec.name
        ));
    }
    Ok(changed)
}
