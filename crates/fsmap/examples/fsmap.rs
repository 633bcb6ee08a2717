//! Prints the free-space map of an image or device: `cargo run -p osm-fsmap --example fsmap -- IMAGE`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: fsmap IMAGE|DEVICE");
        return ExitCode::from(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Block devices report size 0 in metadata; seeking to the end works for both.
    let size = match std::io::Seek::seek(&mut &file, std::io::SeekFrom::End(0)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let map = osm_fsmap::scan(&file, size);
    println!("{}", map.summary());
    for f in &map.findings {
        println!(
            "{:>14} {:>14} {:<8} {:>14} {}",
            f.offset, f.length, f.kind, f.free_bytes, f.detail
        );
    }
    if std::env::args().any(|a| a == "-v") {
        for r in &map.free {
            println!("free {}..{}", r.start, r.end);
        }
    }
    ExitCode::SUCCESS
}
