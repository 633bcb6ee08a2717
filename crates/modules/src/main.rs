//! `osm-modules`: every Ansible module of the collection in one static binary.
//!
//! `plugins/modules/<module>` is a symlink to this binary; Ansible copies it to the target as
//! `AnsiballZ_<module>` and runs it with the args file, so the module is chosen by the name it is run
//! under. (One binary instead of one per module keeps the collection under Galaxy's 20 MB limit.)

use std::process::ExitCode;

use osm_modules::MODULES;

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let base = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = base.strip_prefix("AnsiballZ_").unwrap_or(base);
    let name = name.split('.').next().unwrap_or(name);
    if std::env::args().nth(1).as_deref() == Some("--list") && name == "osm-modules" {
        for (n, _) in MODULES {
            println!("{n}");
        }
        return ExitCode::SUCCESS;
    }
    match MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, module)) => module(),
        None => {
            let names: Vec<&str> = MODULES.iter().map(|(n, _)| *n).collect();
            println!(
                "{}",
                serde_json::json!({"failed": true, "msg": format!(
                    "osm-modules was run as {base:?}, which is not a module of osm.workloads; run it through a module name: {}",
                    names.join(", "))})
            );
            ExitCode::FAILURE
        }
    }
}
