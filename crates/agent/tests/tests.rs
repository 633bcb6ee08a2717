//! Integration tests of the `osm-agent` binary against real peers: qemu-nbd, nbdkit, nbdinfo,
//! nbdcopy, qemu-img, the crates.io `nbd` client, and OpenSSH.

mod util;

mod content;
mod failure;
mod interop;
mod lifecycle;
mod security;
mod sparsify;
mod ssh;
