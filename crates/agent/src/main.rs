// musl's allocator maps and unmaps every MiB-sized buffer of the copy: the page faults and page
// clearing cost more CPU than the copy's memcpys (see crates/agent/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match osm_agent::run(osm_agent::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osm-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
