//! Integration tests: each starts the `osm-cloudsim` binary in a temporary state directory and
//! talks HTTP to it (see `util.rs`).

mod util;

mod api;
mod dirty_volumes;
mod faults;
mod federation;
mod identity;
mod lifecycle;
mod persistence;
mod upstream;
