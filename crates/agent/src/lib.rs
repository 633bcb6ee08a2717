/*!
The conversion-host agent, `osm-agent`: one static binary that moves a disk between clouds.

- [`serve`] exports a device read-only over NBD on a private Unix socket, sending zero runs as
  hole chunks and answering `base:allocation` block status (`SEEK_HOLE` on sparse files, a zero
  scan elsewhere). [`serve::Device`] takes "known free" ranges, the hook for sparsification.
- [`copy`] reads an NBD export into a local device or file, nbdcopy-style, with JSON progress
  lines, zeroing policy, checkpoint/resume and verification.
- [`tunnel`] forwards a remote socket over OpenSSH; [`device`] finds an attached volume by serial;
  [`daemon`] runs things in the background and stops them.

The command line ([`cli::Cli`]) maps one-to-one onto these; `main` only parses and picks the exit
code.

```
use osm_agent::copy::RangeSet;

let mut done = RangeSet::default();
done.insert(0..4096);
done.insert(8192..12288);
assert_eq!(done.missing(16384), vec![4096..8192, 12288..16384]);
```
*/
#![deny(missing_docs)]

pub mod cli;
pub mod copy;
pub mod daemon;
pub mod device;
pub mod serve;
pub mod tunnel;

mod sys;
mod zero;

pub use crate::cli::{run, Cli};
