//! Authenticates (clouds.yaml cloud from argv[1] or `OS_CLOUD`, else `OS_*` variables) and lists
//! the project's servers. Also the size yardstick of a module binary that links this crate:
//! `cargo build --release -p osm-openstack --example list_servers`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let conn = match std::env::args().nth(1) {
        Some(name) => osm_openstack::Connection::from_cloud(&name),
        None => osm_openstack::Connection::from_env(),
    };
    let result = conn.and_then(|c| c.compute().list_servers());
    match result {
        Ok(servers) => {
            for s in servers {
                println!("{}\t{}\t{}", s.id, s.name, s.status);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
