//! The workloads file: upstream compatibility, validation messages, stable writing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use osm_workload::model::{FloatingIpMode, PortCreationMode};
use osm_workload::{FileError, WorkloadsFile};

const UPSTREAM: &str = include_str!("data/upstream-1.0.yml");

fn parse(text: &str) -> Result<WorkloadsFile, FileError> {
    WorkloadsFile::parse(Path::new("workloads.yml"), text)
}

#[test]
fn reads_an_upstream_file() {
    let f = parse(UPSTREAM).expect("upstream file");
    assert_eq!(f.os_migrate_version, "1.0.1");
    assert_eq!(f.resources.len(), 2);
    let app = &f.resources[0];
    assert_eq!(app.name(), "app-01");
    assert_eq!(app.params.flavor_ref.name, "m1.small");
    assert!(app.params.flavor_ref.is_auth_project());
    assert_eq!(
        app.params.image_ref.as_ref().map(|r| r.name.as_str()),
        Some("cirros-0.6")
    );
    assert_eq!(
        app.params.ports[0].params.fixed_ips_refs[0]
            .ip_address
            .as_deref(),
        Some("192.168.20.7")
    );
    assert_eq!(
        app.params.floating_ips[0]
            .params
            .floating_ip_address
            .as_deref(),
        Some("172.20.9.135")
    );
    assert!(app.boot_volume().is_none());
    assert_eq!(app.additional_volumes().len(), 1);
    assert!(app.migration_params.sparsify());
    let db = &f.resources[1];
    assert!(db.boots_from_volume());
    assert_eq!(
        db.boot_volume().map(|v| v.info.id.as_str()),
        Some("9c5e4c74-8888-4b3c-8e6f-2c7d3e4f5a6b")
    );
    assert_eq!(db.migration_params.floating_ip_mode, FloatingIpMode::Skip);
    assert_eq!(
        db.migration_params.port_creation_mode,
        PortCreationMode::Neutron
    );
}

#[test]
fn upstream_file_round_trips_unchanged() {
    let f = parse(UPSTREAM).expect("upstream file");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("workloads.yml");
    assert!(f.save(&path).expect("save"));
    let again = WorkloadsFile::load(&path).expect("reload");
    assert_eq!(again, f);
    let original: serde_json::Value = serde_yaml::from_str(UPSTREAM).expect("yaml");
    let written: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
    let mut lost = Vec::new();
    compare_leaves(&original, &written, String::new(), &mut lost);
    assert!(
        lost.is_empty(),
        "values of the upstream file lost or changed on writing: {lost:?}"
    );
}

/// Every non-null value of `a` is in `b` at the same path (`b` may add keys with default values).
fn compare_leaves(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: String,
    lost: &mut Vec<String>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Null, _) => {}
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                match mb.get(k) {
                    Some(vb) => compare_leaves(va, vb, format!("{path}.{k}"), lost),
                    None if va.is_null() => {}
                    None => lost.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(la), Value::Array(lb)) if la.len() == lb.len() => {
            for (i, (va, vb)) in la.iter().zip(lb).enumerate() {
                compare_leaves(va, vb, format!("{path}[{i}]"), lost);
            }
        }
        (a, b) if a == b => {}
        _ => lost.push(path),
    }
}

#[test]
fn save_is_atomic_sorted_0600_and_idempotent() {
    let f = parse(UPSTREAM).expect("upstream file");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("workloads.yml");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert!(f.save(&path).expect("first save"));
    assert_eq!(
        mode(&path),
        0o600,
        "user data carries secrets: the owner's alone"
    );
    let first = std::fs::read(&path).expect("read");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(
        !f.save(&path).expect("second save"),
        "same content must not be rewritten"
    );
    assert_eq!(std::fs::read(&path).expect("read"), first);
    assert_eq!(
        mode(&path),
        0o600,
        "a file left readable by others is narrowed"
    );
    let text = String::from_utf8(first).expect("utf8");
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '-']))
        .collect();
    assert_eq!(top, vec!["os_migrate_version: 1.0.1", "resources:"]);
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("- ").or_else(|| l.strip_prefix("  ")))
        .filter(|l| !l.starts_with(' '))
        .collect();
    assert_eq!(
        keys,
        vec![
            "_info:",
            "_migration_params:",
            "params:",
            "type: openstack.compute.Server",
            "_info:",
            "_migration_params:",
            "params:",
            "type: openstack.compute.Server"
        ]
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn add_or_replace_by_id() {
    let mut f = parse(UPSTREAM).expect("upstream file");
    let mut app = f.resources[0].clone();
    assert!(!f.add_or_replace(app.clone()));
    app.params.description = Some("changed".into());
    assert!(f.add_or_replace(app.clone()));
    assert_eq!(f.resources.len(), 2);
    assert_eq!(
        f.resources[0].params.description.as_deref(),
        Some("changed")
    );
    app.info.id = "new-id".into();
    app.params.name = "app-02".into();
    assert!(f.add_or_replace(app));
    assert_eq!(f.resources.len(), 3);
}

fn err(text: &str) -> String {
    parse(text).expect_err("must be rejected").to_string()
}

#[test]
fn errors_name_the_resource_and_key_path() {
    assert_eq!(
        err("resources: []"),
        "workloads file workloads.yml: missing key os_migrate_version"
    );
    assert_eq!(
        err("os_migrate_version: 1.0.1"),
        "workloads file workloads.yml: missing key resources"
    );
    let no_flavor = UPSTREAM.replacen("    flavor_ref:\n      domain_name: '%auth%'\n      name: m1.small\n      project_name: '%auth%'\n", "", 1);
    assert_eq!(err(&no_flavor), "workloads file workloads.yml: resource 'app-01' (resources[0]): params: missing field `flavor_ref`");
    let no_id = UPSTREAM.replacen("    id: 8b4d3b63-9f67-4b3c-8e6f-2c7d3e4f5a6b\n", "", 1);
    assert_eq!(
        err(&no_id),
        "workloads file workloads.yml: resource 'db-01' (resources[1]): _info: missing field `id`"
    );
    let bad_type = UPSTREAM.replacen(
        "  type: openstack.compute.Server",
        "  type: openstack.compute.Flavor",
        1,
    );
    assert_eq!(err(&bad_type), "workloads file workloads.yml: resource 'app-01' (resources[0]): type: unknown type 'openstack.compute.Flavor', expected 'openstack.compute.Server'");
    let bad_port = UPSTREAM.replacen(
        "type: openstack.network.ServerPort",
        "type: openstack.network.Port",
        1,
    );
    assert!(err(&bad_port)
        .contains("resource 'app-01' (resources[0]): params.ports[0].type: unknown type"));
    let bad_size = UPSTREAM.replacen("size: 10", "size: ten", 1);
    assert!(err(&bad_size).starts_with("workloads file workloads.yml: resource 'db-01' (resources[1]): params.volumes[0]._info.size: invalid type"), "{}", err(&bad_size));
    let bad_mode = UPSTREAM.replacen("floating_ip_mode: skip", "floating_ip_mode: sometimes", 1);
    assert!(err(&bad_mode).contains("resource 'db-01' (resources[1]): _migration_params.floating_ip_mode: unknown variant `sometimes`"), "{}", err(&bad_mode));
    let empty_name = UPSTREAM.replacen("name: db-01", "name: ''", 1);
    assert_eq!(err(&empty_name), "workloads file workloads.yml: resource resources[1]: params.name: a server name must not be empty");
    let dup = UPSTREAM.replacen("name: db-01", "name: app-01", 1);
    assert_eq!(err(&dup), "workloads file workloads.yml: servers resources[0] and resources[1] have the same name 'app-01'; server names must be unique");
    assert!(
        err("os_migrate_version: [").starts_with("workloads file workloads.yml is not valid YAML")
    );
}
