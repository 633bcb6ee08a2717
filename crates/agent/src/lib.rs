/*!
The conversion-host agent, `osm-agent`: one static binary that moves a disk between clouds.

- [`serve`] exports a device read-only over NBD on a private Unix socket, sending zero runs as
  hole chunks and answering `base:allocation` block status (`SEEK_HOLE` on sparse files, a zero
  scan elsewhere). [`disk::Device`] takes "known free" ranges, the hook for sparsification.
- [`sync`] makes a local device or file hold exactly a source's bytes and proves it: both sides
  digest their own disk chunk by chunk, only what differs crosses (compressed), zero ranges go
  through one zeroing policy, and what was written is read back and digested again. The source is
  another agent (`serve` answers the sync protocol on its NBD socket) or any NBD server.
- [`tunnel`] makes a remote socket reachable over OpenSSH through `bridge`, the link key's only
  command; [`device`] finds an attached volume by serial;
  [`daemon`] runs things in the background and stops them.

The command line ([`cli::Cli`]) maps one-to-one onto these; `main` only parses and picks the exit
code.

```
use osm_agent::disk::AlignedBuf;
use osm_agent::sync::target::{Layout, Target};
use osm_sync::Hasher;

// A new sparse file reads as zeros: its digests prove it without reading a byte.
let dir = tempfile::tempdir()?;
let disk = Target::open(&dir.path().join("disk.img"), 4 << 20)?;
let layout = Layout::new(Hasher::new(7), 1 << 20, 4 << 20);
let zeros = layout.zeros;
let scanned = disk.digests(&layout, 0, 4, &mut AlignedBuf::default())?;
assert_eq!(scanned.read, 0);
assert!(scanned.digests.iter().enumerate().all(|(i, d)| *d == zeros.of(i as u64)));
# Ok::<(), anyhow::Error>(())
```
*/
#![deny(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod device;
pub mod disk;
pub mod serve;
pub mod sync;
pub mod tunnel;

mod queue;
mod sys;
mod zero;

pub use crate::cli::{run, Cli};
