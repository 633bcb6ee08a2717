//! `osm.workloads.os_conversion_host`: create or delete a conversion host and its network, security group, keypair and floating IP.

use std::time::Duration;

use crate::{cloud_options, connect, must_wait};
use osm_module::{run, Failure, Opt, Outcome, Spec, Type};
use osm_workload::conversion::{delete, deploy, HostSettings};

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_conversion_host")
        .opts(cloud_options())
        .opt(Opt::new("name", Type::Str).required())
        .opt(
            Opt::new("state", Type::Str)
                .choices(&["present", "absent"])
                .default("present"),
        )
        .opt(Opt::new("image", Type::Str))
        .opt(Opt::new("flavor", Type::Str))
        .opt(Opt::new("keypair_name", Type::Str).default("os_migrate_conv"))
        .opt(Opt::new("public_key_path", Type::Path))
        .opt(Opt::new("manage_network", Type::Bool).default(true))
        .opt(Opt::new("network_name", Type::Str).default("os_migrate_conv"))
        .opt(Opt::new("subnet_name", Type::Str).default("os_migrate_conv"))
        .opt(Opt::new("subnet_cidr", Type::Str).default("192.168.199.0/24"))
        .opt(Opt::new("dns_nameservers", Type::List).elements(Type::Str))
        .opt(Opt::new("router_name", Type::Str).default("os_migrate_conv"))
        .opt(Opt::new("external_network", Type::Str))
        .opt(Opt::new("security_group_name", Type::Str).default("os_migrate_conv"))
        .opt(Opt::new("ssh_cidr", Type::Str))
        .opt(
            Opt::new("ssh_from", Type::List)
                .elements(Type::Str)
                .default(serde_json::json!([])),
        )
        .opt(Opt::new("ssh_port", Type::Int).default(22))
        .opt(Opt::new("boot_volume_size", Type::Int))
        .opt(Opt::new("availability_zone", Type::Str))
        .opt(Opt::new("floating_ip", Type::Bool).default(true))
        .opt(Opt::new("floating_ip_address", Type::Str))
        .opt(Opt::new("delete_floating_ip", Type::Bool).default(true))
        .opt(Opt::new("network_mtu", Type::Int))
        .opt(Opt::new("allocation_pool_start", Type::Str))
        .opt(Opt::new("allocation_pool_end", Type::Str))
        .opt(Opt::new("gateway_ip", Type::Str))
        .opt(Opt::new("timeout", Type::Int).default(900))
        .required_if("state", "present", &["image", "flavor", "public_key_path"]);
    run(&spec, |ctx| {
        must_wait(
            ctx.params(),
            "a conversion host is returned ACTIVE with the address to reach it, and deleted before \
             the network, security group and keypair it uses; 'timeout' bounds the wait",
        )?;
        let mut p = ctx.params().clone();
        if p["allocation_pool_start"].is_null() != p["allocation_pool_end"].is_null() {
            return Err(Failure::new(
                "options 'allocation_pool_start' and 'allocation_pool_end' go together: give both, or neither",
            ));
        }
        if let Some(path) = p["public_key_path"].as_str().map(str::to_string) {
            match std::fs::read_to_string(&path) {
                Ok(key) => {
                    p.insert("public_key".into(), key.trim().into());
                }
                // In check mode the key pair may not have been generated yet (the task that would
                // generate it did not run); the keypair is then reported as to be created.
                Err(_) if ctx.check_mode() => {
                    p.insert(
                        "public_key".into(),
                        "ssh-ed25519 (generated at deploy)".into(),
                    );
                }
                // Without the local key, delete cannot prove the keypair is osm's: it keeps it.
                Err(_) if p["state"].as_str() == Some("absent") => {}
                Err(e) => {
                    return Err(Failure::new(format!(
                        "option 'public_key_path': cannot read {path}: {e}"
                    )))
                }
            }
        }
        if p["dns_nameservers"].is_null() {
            p.insert("dns_nameservers".into(), serde_json::json!([]));
        }
        let settings: HostSettings =
            serde_json::from_value(serde_json::Value::Object(p.clone()))
                .map_err(|e| Failure::new(format!("conversion host options: {e}")))?;
        let conn = connect(&p)?;
        let timeout = Duration::from_secs(p["timeout"].as_u64().unwrap_or(900));
        let report = if p["state"].as_str() == Some("absent") {
            delete(&conn, &settings, ctx.check_mode(), timeout)?
        } else {
            deploy(&conn, &settings, ctx.check_mode(), timeout)?
        };
        for k in &report.kept {
            ctx.warn(format!("left alone: {k}"));
        }
        let mut out = Outcome::changed(!report.changes.is_empty())
            .with("changes", &report.changes)
            .with("kept", &report.kept);
        if let Some(h) = &report.host {
            out = out.with("openstack_conversion_host", h).msg(format!(
                "conversion host '{}' is {} at {}",
                h.name, h.status, h.address
            ));
        }
        Ok(out)
    })
}
