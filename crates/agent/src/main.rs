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
