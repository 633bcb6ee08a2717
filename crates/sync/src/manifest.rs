//! Manifests: every chunk digest of a disk and one root digest over them, as a compact file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::digest::{digests_from, hex, Digest, Hasher, ALGORITHM_ID, DIGEST_LEN};

/// The file's first bytes.
const MAGIC: &[u8; 8] = b"OSMMANIF";
/// The file format's version.
const FORMAT: u16 = 1;
/// Bytes before the digests: magic, format, algorithm, chunk size, disk size, seed, root.
const HEADER_LEN: usize = 8 + 2 + 2 + 4 + 8 + 8 + 32;

/// What is wrong with a manifest file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading or writing the file failed.
    #[error("manifest {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The file is not a manifest this version understands.
    #[error("manifest {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The digests of every chunk of a disk, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// The disk's size in bytes.
    pub size: u64,
    /// The digests' seed ([`Hasher`]): digests of different seeds do not compare.
    pub seed: u64,
    /// One digest per chunk.
    pub digests: Vec<Digest>,
}

/// How many chunks a disk of `size` bytes has.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size))
}

impl Manifest {
    /// A manifest of a disk that reads as zeros everywhere.
    pub fn zeros(size: u64, chunk_size: u32, seed: u64) -> Manifest {
        let z = Hasher::new(seed).zeros(chunk_size.into(), size);
        Manifest {
            chunk_size,
            size,
            seed,
            digests: (0..chunk_count(size, chunk_size))
                .map(|i| z.of(i))
                .collect(),
        }
    }

    /// The root digest: BLAKE3 over the chunk size, the disk size, the seed and every chunk
    /// digest, so two disks have the same root exactly when every chunk digest matches.
    pub fn root(&self) -> Digest32 {
        let mut h = blake3::Hasher::new();
        h.update(b"osm manifest v1\0");
        h.update(&ALGORITHM_ID.to_be_bytes());
        h.update(&self.chunk_size.to_be_bytes());
        h.update(&self.size.to_be_bytes());
        h.update(&self.seed.to_be_bytes());
        for d in &self.digests {
            h.update(&d.0);
        }
        Digest32(*h.finalize().as_bytes())
    }

    /// Byte offsets of the first `limit` chunks whose digests differ from `other`'s.
    pub fn differences(&self, other: &Manifest, limit: usize) -> Vec<u64> {
        let cs = u64::from(self.chunk_size);
        self.digests
            .iter()
            .zip(
                other
                    .digests
                    .iter()
                    .chain(std::iter::repeat(&Digest::default())),
            )
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i as u64 * cs)
            .take(limit)
            .collect()
    }

    /// The file form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.digests.len() * DIGEST_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_be_bytes());
        out.extend_from_slice(&ALGORITHM_ID.to_be_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.seed.to_be_bytes());
        out.extend_from_slice(&self.root().0);
        for d in &self.digests {
            out.extend_from_slice(&d.0);
        }
        out
    }

    /// Reads the file form back, checking its root.
    pub fn decode(bytes: &[u8], path: &str) -> Result<Manifest, ManifestError> {
        let bad = |message: String| ManifestError::Invalid {
            path: path.to_string(),
            message,
        };
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(bad("not an osm manifest".into()));
        }
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        if u16_at(8) != FORMAT || u16_at(10) != ALGORITHM_ID {
            return Err(bad(format!(
                "format {} with digest algorithm {} (this osm reads format {FORMAT}, algorithm {ALGORITHM_ID})",
                u16_at(8),
                u16_at(10)
            )));
        }
        let chunk_size = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let u64_at = |i: usize| {
            let mut s = [0u8; 8];
            s.copy_from_slice(&bytes[i..i + 8]);
            u64::from_be_bytes(s)
        };
        let (size, seed) = (u64_at(16), u64_at(24));
        if chunk_size == 0 {
            return Err(bad("chunk size 0".into()));
        }
        let body = &bytes[HEADER_LEN..];
        let n = chunk_count(size, chunk_size);
        if body.len() as u64 != n * DIGEST_LEN as u64 {
            return Err(bad(format!(
                "{} bytes of digests for {n} chunks",
                body.len()
            )));
        }
        let digests = digests_from(body);
        let m = Manifest {
            chunk_size,
            size,
            seed,
            digests,
        };
        if m.root().0[..] != bytes[32..64] {
            return Err(bad(
                "its root digest does not match its chunk digests".into()
            ));
        }
        Ok(m)
    }

    /// Writes the file atomically: a temporary file beside it, synced, then renamed over it.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ManifestError> {
        let err = |source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&self.encode())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(err)
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|source| ManifestError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Manifest::decode(&bytes, &path.display().to_string())
    }
}

/// A full 256-bit BLAKE3 digest: the root of a manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Digest32(pub [u8; 32]);

impl std::fmt::Display for Digest32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::zeros((5 << 20) + 100, 1 << 20, 9);
        m.digests[2] = Hasher::new(9).digest(b"data");
        m
    }

    #[test]
    fn round_trip_and_root() {
        let m = sample();
        assert_eq!(m.digests.len(), 6);
        let bytes = m.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 6 * DIGEST_LEN);
        assert_eq!(Manifest::decode(&bytes, "m").unwrap(), m);
        assert_ne!(
            m.root(),
            Manifest::zeros((5 << 20) + 100, 1 << 20, 9).root()
        );
        let mut reseeded = m.clone();
        reseeded.seed = 10;
        assert_ne!(m.root(), reseeded.root());
        // A different disk size with the same digests is a different root.
        let mut other = m.clone();
        other.size += 1;
        assert_ne!(m.root(), other.root());
    }

    #[test]
    fn damaged_files_are_refused() {
        let mut bytes = sample().encode();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        let e = Manifest::decode(&bytes, "m").unwrap_err().to_string();
        assert!(e.contains("root digest does not match"), "{e}");
        let e = Manifest::decode(&bytes[..n - 3], "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bytes of digests"), "{e}");
        assert!(Manifest::decode(b"nonsense", "m").is_err());
    }

    #[test]
    fn differences_name_offsets() {
        let a = sample();
        let b = Manifest::zeros(a.size, a.chunk_size, a.seed);
        assert_eq!(a.differences(&b, 10), vec![2 << 20]);
        assert!(a.differences(&a, 10).is_empty());
    }

    #[test]
    fn atomic_write_and_load() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("boot.manifest");
        sample().write_atomic(&p).unwrap();
        assert_eq!(Manifest::load(&p).unwrap(), sample());
        let names: Vec<_> = fs::read_dir(t.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }

    #[test]
    fn a_two_tib_manifest_stays_small() {
        let n = chunk_count(2 << 40, 1 << 20);
        assert_eq!((HEADER_LEN as u64 + n * DIGEST_LEN as u64) >> 20, 32);
    }
}
