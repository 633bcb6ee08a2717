//! Cloud configuration: clouds.yaml (+ secure.yaml), `OS_*` environment variables, and the
//! common options of the openstack.cloud Ansible modules.
//!
//! [`types`] parses what clouds.yaml and the module options say, [`loader`] finds the files and
//! merges them with the environment and the options, and [`resolve`] turns the result into the
//! [`CloudConfig`] a connection is built from.

mod loader;
mod resolve;
mod types;

pub use loader::ConfigLoader;
pub use resolve::{CloudConfig, RetryPolicy};
pub use types::{
    AuthMethod, AuthOptions, AuthType, CloudEntry, CloudOptions, CloudRef, Interface, RegionEntry,
};
