//! Compression on the wire: the one place that decides whether a piece of data crosses
//! compressed.

use anyhow::{anyhow, bail, Context, Result};
use osm_sync::Encoding;

/// The zstd level, by measurement (see the README's benchmark): level 1 compresses a typical
/// system disk's used blocks (binaries, libraries, text) to about 0.43 of their size at about
/// 185 MB/s per core on the reference machine; level 3 gains 10% more ratio at less than half the
/// speed, and negative levels lose 15% of the ratio for 50% more speed.
pub const DEFAULT_LEVEL: i32 = 1;

/// Data that does not shrink below this fraction (in 1/16ths) crosses raw: decompressing it
/// would cost the receiver more than the few bytes it saves.
const WORTH_IT_SIXTEENTHS: usize = 15;
/// After this many incompressible pieces in a row, stop trying for a while: random or
/// already-compressed data is common (encrypted disks, media), and compressing it only burns the
/// CPU the link's encryption needs.
const MISSES_BEFORE_PAUSE: u32 = 2;
/// How many pieces go raw, untried, during such a pause.
const PAUSE: u32 = 16;

/// A compressor with its policy: what to try, when to give up trying.
pub struct Compressor {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    misses: u32,
    paused: u32,
}

impl Compressor {
    /// A compressor at `level`, or one that sends everything raw.
    pub fn new(enabled: bool, level: i32) -> Result<Compressor> {
        let zstd = if enabled {
            Some(zstd::bulk::Compressor::new(level).context("setting up zstd")?)
        } else {
            None
        };
        Ok(Compressor {
            zstd,
            misses: 0,
            paused: 0,
        })
    }

    /// Appends `raw`, encoded for the wire, to `out` and says how.
    pub fn encode(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Encoding {
        let start = out.len();
        if let Some(z) = self.zstd.as_mut().filter(|_| self.paused == 0) {
            out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            let mut tail = std::io::Cursor::new(&mut *out);
            tail.set_position(start as u64);
            if let Ok(n) = z.compress_to_buffer(raw, &mut tail) {
                if n * 16 < raw.len() * WORTH_IT_SIXTEENTHS {
                    self.misses = 0;
                    return Encoding::Zstd;
                }
            }
            self.misses += 1;
            if self.misses >= MISSES_BEFORE_PAUSE {
                self.misses = 0;
                self.paused = PAUSE;
            }
        } else {
            self.paused = self.paused.saturating_sub(1);
        }
        out.truncate(start);
        out.extend_from_slice(raw);
        Encoding::Raw
    }
}

/// Decodes a piece into `out`, which must end up exactly `raw_len` bytes long.
pub fn decode(
    d: &mut zstd::bulk::Decompressor<'static>,
    encoding: Encoding,
    payload: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    match encoding {
        Encoding::Raw => out.extend_from_slice(payload),
        Encoding::Zstd => {
            out.reserve(raw_len);
            d.decompress_to_buffer(payload, out)
                .map_err(|e| anyhow!("a compressed piece does not decompress: {e}"))?;
        }
        Encoding::Zeros | Encoding::Unknown(_) => {
            bail!("a piece in encoding {encoding:?} has no bytes to decode")
        }
    }
    if out.len() != raw_len {
        bail!(
            "a piece decoded to {} bytes instead of {raw_len}",
            out.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_shrinks_and_noise_goes_raw_then_pauses() {
        let mut c = Compressor::new(true, DEFAULT_LEVEL).unwrap();
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(1000);
        let (mut out, mut back) = (Vec::new(), Vec::new());
        out.extend_from_slice(b"head");
        assert_eq!(c.encode(&text, &mut out), Encoding::Zstd);
        assert_eq!(&out[..4], b"head");
        out.drain(..4);
        assert!(out.len() < text.len() / 10);
        decode(&mut d, Encoding::Zstd, &out, text.len(), &mut back).unwrap();
        assert_eq!(back, text);
        let mut x = 88172645463325252u64;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        out.clear();
        out.extend_from_slice(b"head");
        assert_eq!(c.encode(&noise, &mut out), Encoding::Raw);
        assert_eq!(&out[..4], b"head");
        assert_eq!(out[4..], noise);
        out.clear();
        assert_eq!(c.encode(&noise, &mut out), Encoding::Raw);
        // Paused: even compressible data goes raw, untried, for a while.
        out.clear();
        assert_eq!(c.encode(&text, &mut out), Encoding::Raw);
        for _ in 0..PAUSE {
            out.clear();
            c.encode(&text, &mut out);
        }
        out.clear();
        assert_eq!(c.encode(&text, &mut out), Encoding::Zstd);
        assert!(decode(&mut d, Encoding::Zstd, &out, text.len() + 1, &mut back).is_err());
        assert!(decode(&mut d, Encoding::Unknown(9), &out, 1, &mut back).is_err());
    }

    #[test]
    fn disabled_sends_raw() {
        let mut c = Compressor::new(false, DEFAULT_LEVEL).unwrap();
        let mut out = Vec::new();
        assert_eq!(c.encode(&[0; 4096], &mut out), Encoding::Raw);
        assert_eq!(out.len(), 4096);
    }
}
