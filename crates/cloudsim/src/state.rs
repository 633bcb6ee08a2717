//! The simulated clouds' state, its bootstrap and its persistence.
//!
//! All resources of all clouds live in one [`State`] behind one mutex (see [`crate::sim::Sim`]).
//! Handlers hold the lock only while reading or changing records, never across an `.await` or a
//! file copy. The state is written to `DIR/state.json` atomically (write, fsync, rename) shortly
//! after every change and at shutdown, and read back at start.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::SimError;
use crate::{compute, identity, image, network, util, volume};

/// Version of the state file layout; bumped on incompatible changes.
pub const FORMAT: u32 = 1;

/// Every cloud the simulator serves.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT`] of the file this was read from.
    pub format: u32,
    /// Monotonic counter giving every resource its creation order (list ordering, markers).
    pub seq: u64,
    /// Clouds by name (`src`, `dst`).
    pub clouds: BTreeMap<String, Cloud>,
}

/// One simulated cloud: its own Keystone, catalog, projects and resources.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cloud {
    /// Name in clouds.yaml and the first URL segment.
    pub name: String,
    /// Small number unique per cloud; picks the loopback range of its conversion hosts.
    pub index: u8,
    /// Region of every catalog endpoint.
    pub region: String,
    /// Keystone.
    pub identity: identity::IdentityData,
    /// Nova.
    pub compute: compute::ComputeData,
    /// Cinder.
    pub volume: volume::VolumeData,
    /// Glance.
    pub image: image::ImageData,
    /// Neutron.
    pub network: network::NetworkData,
}

impl Cloud {
    fn bootstrap(name: &str, index: u8, seq: &mut u64) -> Cloud {
        let identity = identity::IdentityData::bootstrap(name);
        let project_id = identity.main_project_id().to_string();
        let mut cloud = Cloud {
            name: name.to_string(),
            index,
            region: "RegionOne".to_string(),
            identity,
            compute: compute::ComputeData::default(),
            volume: volume::VolumeData::bootstrap(),
            image: image::ImageData::default(),
            network: network::NetworkData::default(),
        };
        // Neutron creates a project's `default` security group on first use; creating it up front
        // gives the same view to every client.
        network::ensure_default_security_group(&mut cloud.network, &project_id, seq);
        cloud
    }

    /// Directory of this cloud's data files (volumes, images, snapshots, root disks).
    pub fn data_dir(state_dir: &Path, cloud: &str) -> PathBuf {
        state_dir.join("clouds").join(cloud)
    }
}

impl State {
    /// Fresh clouds `src` and `dst`, each with a project, an admin user with a random password,
    /// the `Default` domain, the `__DEFAULT__` volume type and a default security group.
    pub fn bootstrap() -> State {
        let mut seq = 0;
        let mut clouds = BTreeMap::new();
        for (i, name) in ["src", "dst"].iter().enumerate() {
            clouds.insert(
                name.to_string(),
                Cloud::bootstrap(name, i as u8 + 1, &mut seq),
            );
        }
        State {
            format: FORMAT,
            seq,
            clouds,
        }
    }

    /// The next creation sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Drops expired tokens so the state file does not grow forever.
    pub fn prune_tokens(&mut self) {
        let now = util::now();
        for c in self.clouds.values_mut() {
            c.identity.tokens.retain(|_, t| t.expires_at > now);
            c.identity
                .federation
                .tokens
                .retain(|_, t| t.expires_at > now);
        }
    }

    /// Reads `path` if it exists.
    pub fn load(path: &Path) -> Result<Option<State>, SimError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SimError::io(format!("reading {}", path.display()), e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|source| SimError::BadState {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Some(state))
    }

    /// Serializes the state (done under the lock; the write happens outside it).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data structures into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix: a
/// temporary file in the same directory, then a rename. Not fsynced: a simulated cloud need not
/// survive a crash of its machine, and an fsync per save waited on the test volumes' writeback.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{}.tmp{}", file_name, std::process::id()));
    let io = |e| SimError::io(format!("writing {}", path.display()), e);
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}
