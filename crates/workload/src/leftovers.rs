//! Finding (and removing) what osm left in a cloud: every resource that still carries a transfer mark
//! (metadata `osm_transfer_id`, Neutron tag `osm-transfer-*`) or a temporary name (`osm-<id>-...`).
//!
//! A successful migration takes the marks off what the migrated server keeps, so anything found here
//! belongs to an interrupted or failed run whose cleanup did not finish.

use std::time::Duration;

use osm_openstack::{self as os, Connection, Query};
use serde::Serialize;

use crate::state::{NAME_PREFIX, TRANSFER_KEY, TRANSFER_TAG_PREFIX};

/// One leftover resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leftover {
    /// `server`, `floating_ip`, `port`, `volume`, `snapshot` or `image`.
    pub kind: &'static str,
    /// ID.
    pub id: String,
    /// Name (or address).
    pub name: String,
    /// The transfer id it carries, when it carries one.
    pub transfer_id: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// Servers it is attached to (volumes).
    pub attached_to: Vec<String>,
}

fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(id, _)| id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()))
}

fn tag_transfer(tags: &[String]) -> Option<String> {
    tags.iter()
        .find_map(|t| t.strip_prefix(TRANSFER_TAG_PREFIX).map(str::to_string))
}

/// Lists what osm left in the cloud of `conn` (in its project), optionally of one transfer only, in
/// the order they can be removed in.
pub fn find(conn: &Connection, transfer_id: Option<&str>) -> Result<Vec<Leftover>, os::Error> {
    let project = conn.project_id()?;
    let mine = Query::new().with("project_id", project);
    let wanted = |t: &Option<String>| transfer_id.is_none_or(|w| t.as_deref() == Some(w));
    let mut out = Vec::new();
    for s in conn.compute().list_servers()? {
        let t = s.metadata.get(TRANSFER_KEY).cloned();
        if t.is_some() && wanted(&t) {
            out.push(Leftover {
                kind: "server",
                id: s.id,
                name: s.name,
                transfer_id: t,
                status: Some(s.status),
                attached_to: vec![],
            });
        }
    }
    for f in conn.network().list_floating_ips(&mine)? {
        let t = tag_transfer(&f.tags);
        if t.is_some() && wanted(&t) {
            out.push(Leftover {
                kind: "floating_ip",
                id: f.id,
                name: f.floating_ip_address,
                transfer_id: t,
                status: f.status,
                attached_to: vec![],
            });
        }
    }
    for p in conn.network().list_ports(&mine)? {
        let t = tag_transfer(&p.tags);
        if (t.is_some() || is_temp_name(&p.name)) && wanted(&t) {
            out.push(Leftover {
                kind: "port",
                id: p.id,
                name: p.name,
                transfer_id: t,
                status: p.status,
                attached_to: vec![],
            });
        }
    }
    for v in conn.block_storage().list_volumes()? {
        let t = v.metadata.get(TRANSFER_KEY).cloned();
        if (t.is_some() || is_temp_name(&v.name)) && wanted(&t) {
            let attached_to = v
                .attachments
                .iter()
                .filter_map(|a| a.server_id.clone())
                .collect();
            out.push(Leftover {
                kind: "volume",
                id: v.id,
                name: v.name,
                transfer_id: t,
                status: Some(v.status),
                attached_to,
            });
        }
    }
    for s in conn.block_storage().list_snapshots()? {
        let t = s.metadata.get(TRANSFER_KEY).cloned();
        if (t.is_some() || is_temp_name(&s.name)) && wanted(&t) {
            out.push(Leftover {
                kind: "snapshot",
                id: s.id,
                name: s.name,
                transfer_id: t,
                status: Some(s.status),
                attached_to: vec![],
            });
        }
    }
    for i in conn.image().list_images()? {
        let t = i.property(TRANSFER_KEY).map(str::to_string);
        let owned = i
            .owner
            .as_deref()
            .is_none_or(|o| Some(o) == conn.project_id().ok().as_deref());
        if owned && (t.is_some() || is_temp_name(&i.name)) && wanted(&t) {
            out.push(Leftover {
                kind: "image",
                id: i.id,
                name: i.name,
                transfer_id: t,
                status: Some(i.status),
                attached_to: vec![],
            });
        }
    }
    Ok(out)
}

/// Removes leftovers, in order (servers, floating IPs, ports, volumes after detaching them,
/// snapshots, images). Returns what was removed and, for each failure, a message; one failure does
/// not stop the others.
pub fn remove(
    conn: &Connection,
    items: &[Leftover],
    timeout: Duration,
) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for l in items {
        let r = (|| -> Result<(), os::Error> {
            match l.kind {
                "server" => {
                    conn.compute().delete_server(&l.id)?;
                    conn.compute().wait_for_server_deleted(&l.id, timeout)
                }
                "floating_ip" => conn.network().delete_floating_ip(&l.id),
                "port" => conn.network().delete_port(&l.id),
                "volume" => {
                    for server in &l.attached_to {
                        match conn.compute().detach_volume(server, &l.id) {
                            Err(e) if !e.is_not_found() => return Err(e),
                            _ => {}
                        }
                    }
                    if !l.attached_to.is_empty() {
                        conn.block_storage().wait_for_volume(
                            &l.id,
                            &["available", "error"],
                            timeout,
                        )?;
                    }
                    conn.block_storage().delete_volume(&l.id, false)?;
                    conn.block_storage().wait_for_volume_deleted(&l.id, timeout)
                }
                "snapshot" => {
                    conn.block_storage().delete_snapshot(&l.id)?;
                    conn.block_storage()
                        .wait_for_snapshot_deleted(&l.id, timeout)
                }
                _ => conn.image().delete_image(&l.id),
            }
        })();
        match r {
            Ok(()) => removed.push(format!("{} {} ({})", l.kind, l.name, l.id)),
            Err(e) if e.is_not_found() => {}
            Err(e) => failed.push(format!("{} {} ({}): {e}", l.kind, l.name, l.id)),
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    use super::is_temp_name;

    #[test]
    fn temporary_names() {
        assert!(is_temp_name("osm-0badf00d-boot"));
        assert!(is_temp_name("osm-0badf00d-port-1"));
        assert!(!is_temp_name("osm-conv"));
        assert!(!is_temp_name("osm-whatever-x"));
        assert!(!is_temp_name("web-01"));
    }
}
