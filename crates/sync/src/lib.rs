/*!
How two osm agents prove a disk copy: chunk digests, manifests, and the sync protocol.

A disk is cut into fixed-size chunks (1 MiB by default). Each agent computes the [`Digest`] of
every chunk of its own device, locally and at disk speed, with the transfer's [`Hasher`] (seeded
XXH3-128 over the digests of the chunk's 4 KiB leaves; why, in its documentation); a chunk that
reads as zeros has a known digest ([`Zeros`]) and is never hashed. The destination agent sends its digests
([`Frame::Compare`]); the source agent answers each chunk with `Same`, `Zero`, or the data of
what differs (whole chunks where the destination holds zeros, only the differing blocks, found
with [`Hasher::block_sums`], where it holds other data). Every answer carries or implies the source's
digest, so the destination ends with the source's [`Manifest`]; reading back what it wrote (for
a patched chunk, only the leaves it wrote), it proves its own manifest equal, and both sides share one root digest ([`Manifest::root`]).

The first copy, a retry after any failure, a re-sync after the source changed and the final
delta of a warm migration are the same exchange: what crosses is what the destination lacks.

The protocol runs on an NBD connection upgraded with the private option [`UPGRADE_OPTION`], so
one socket serves both standard NBD clients and agents; frames are encoded and decoded here
without I/O ([`Frame`] implements [`osm_nbd::Codec`]).

```
use osm_sync::{Hasher, Manifest, Frame};
use osm_nbd::Codec;

// Two disks of 3 MiB + 1 byte: zeros, and the same with one chunk of data.
let h = Hasher::new(0x5eed);
let zeros = Manifest::zeros((3 << 20) + 1, 1 << 20, h.seed);
let mut data = zeros.clone();
data.digests[1] = h.digest(&[7u8; 1 << 20]);
assert_eq!(data.differences(&zeros, 10), vec![1 << 20]);
assert_eq!(zeros.digests[3], h.zeros(1 << 20, (3 << 20) + 1).of(3));

// Frames round-trip through their wire form.
let f = Frame::Compare { first: 0, digests: data.digests.clone() };
assert_eq!(Frame::from_bytes(&f.to_bytes())?, f);
# Ok::<(), osm_nbd::Error>(())
```
*/
#![deny(missing_docs)]

mod digest;
mod manifest;
mod msgs;

pub use crate::digest::{
    digests_from, hex, leaf_sums, Digest, Hasher, Zeros, ALGORITHM, ALGORITHM_ID, DIGEST_LEN, LEAF,
};
pub use crate::manifest::{chunk_count, Digest32, Manifest, ManifestError};
pub use crate::msgs::{
    upgrade_data, DataHead, Encoding, Frame, FrameHeader, Hello, Welcome, MAX_PAYLOAD,
    UPGRADE_OPTION, VERSION,
};
