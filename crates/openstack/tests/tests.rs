//! Integration tests: one binary, modules per concern, fixtures in util.rs.

mod federation;
mod http;
mod paths;
mod retries;
mod tls;
mod util;
