//! Integration tests: one binary, modules per concern, fixtures in util.rs.

mod http;
mod paths;
mod tls;
mod util;
