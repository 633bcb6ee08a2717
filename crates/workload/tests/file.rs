//! The workloads file: upstream compatibility (a real upstream 1.0.5 export, and a hand-written file
//! of an older 1.x version), validation messages, stable writing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use osm_workload::model::{BootSource, FloatingIpMode, PortCreationMode};
use osm_workload::{FileError, WorkloadsFile};

const SAMPLE: &str = include_str!("data/workloads-1.0.1.yml");
/// Exported by upstream OS Migrate 1.0.5's own serialization code (scripts/upstream_fixture.py).
const UPSTREAM: &str = include_str!("data/upstream-1.0.5.yml");

fn parse(text: &str) -> Result<WorkloadsFile, FileError> {
    WorkloadsFile::parse(Path::new("workloads.yml"), text)
}

#[test]
fn reads_a_real_upstream_export() {
    let f = parse(UPSTREAM).expect("upstream 1.0.5 export");
    assert_eq!(f.os_migrate_version, "1.0.5");
    let names: Vec<&str> = f.resources.iter().map(|s| s.name()).collect();
    assert_eq!(names, vec!["up-app", "up-db", "up-scsi"]);

    let app = &f.resources[0];
    // Upstream writes a flavor reference without project: nulls, read as the authenticated project's.
    assert_eq!(app.params.flavor_ref.name, "m1.small");
    assert_eq!(app.params.flavor_ref.project_name, None);
    assert!(app.params.flavor_ref.is_auth_project());
    assert!(matches!(app.boot_source(), BootSource::Image(r) if r.name == "cirros"));
    let port = &app.params.ports[0].params;
    assert!(port.mac_address.is_some());
    assert_eq!(port.binding_vnic_type.as_deref(), Some("normal"));
    let fip = &app.params.floating_ips[0].params;
    assert_eq!(fip.dns_name.as_deref(), Some("app"));
    assert_eq!(fip.dns_domain.as_deref(), Some("example.org."));
    assert_eq!(
        fip.qos_policy_ref.as_ref().map(|r| r.name.as_str()),
        Some("up-gold")
    );
    assert_eq!(
        fip.floating_network_ref.as_ref().map(|r| r.name.as_str()),
        Some("public")
    );
    assert_eq!(app.additional_volumes().len(), 1);
    assert_eq!(app.migration_params.additional_volumes.len(), 1);
    assert!(!app.migration_params.use_nbdkit_direct);

    let db = &f.resources[1];
    assert!(db.boots_from_volume() && db.migration_params.boot_disk_copy);
    assert_eq!(db.boot_source(), BootSource::CopiedVolume);
    assert_eq!(
        db.boot_volume().and_then(|v| v.params.name.as_deref()),
        Some("up-db-boot")
    );
    assert_eq!(db.additional_volumes().len(), 2);
    assert_eq!(db.disk_prefix(), "vd");

    let scsi = &f.resources[2];
    let boot = scsi.boot_volume().expect("boot volume at /dev/sda");
    assert_eq!(scsi.device_of(boot).as_deref(), Some("/dev/sda"));
    assert_eq!(scsi.disk_prefix(), "sd");
    let meta = boot
        .params
        .volume_image_metadata
        .as_ref()
        .expect("image metadata");
    assert_eq!(meta["hw_disk_bus"], "scsi");
    assert_eq!(meta["hw_scsi_model"], "virtio-scsi");
}

#[test]
fn reads_an_older_hand_written_file() {
    let f = parse(SAMPLE).expect("sample file");
    assert_eq!(f.os_migrate_version, "1.0.1");
    assert_eq!(f.resources.len(), 2);
    let app = &f.resources[0];
    assert_eq!(app.name(), "app-01");
    assert!(app.params.flavor_ref.is_auth_project());
    assert!(app.boot_volume().is_none());
    assert_eq!(app.additional_volumes().len(), 1);
    assert!(app.migration_params.sparsify());
    let db = &f.resources[1];
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

/// Writing keeps every value (nulls included) and writes the keys upstream's deserializers index,
/// at the version upstream 1.0.5's loader accepts.
#[test]
fn upstream_files_round_trip() {
    for (text, what) in [(UPSTREAM, "upstream export"), (SAMPLE, "hand-written file")] {
        let f = parse(text).expect(what);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("workloads.yml");
        assert!(f.save(&path).expect("save"));
        let written = std::fs::read_to_string(&path).expect("read");
        let again = WorkloadsFile::load(&path).expect("reload");
        assert_eq!(again.os_migrate_version, "1.0.5", "{what}");
        assert_eq!(again.resources, f.resources, "{what}");
        let original: serde_json::Value = serde_yaml::from_str(text).expect("yaml");
        let written_v: serde_json::Value = serde_yaml::from_str(&written).expect("yaml");
        let mut lost = Vec::new();
        compare_leaves(&original, &written_v, String::new(), &mut lost);
        lost.retain(|p| p != ".os_migrate_version");
        assert!(
            lost.is_empty(),
            "{what}: values lost or changed on writing: {lost:?}"
        );
        for key in [
            "qos_policy_ref:",
            "floating_network_ref:",
            "use_nbdkit_direct: false",
            "nbdkit_socket_uri: null",
            "nbdkit_export_name: null",
            "mac_address:",
            "volume_image_metadata:",
        ] {
            assert!(written.contains(key), "{what}: no {key}");
        }
    }
    // Upstream writes nulls: they stay nulls.
    let f = parse(UPSTREAM).expect("upstream");
    let text = f.to_yaml(Path::new("w.yml")).expect("yaml");
    assert!(
        text.contains("      domain_name: null\n      name: m1.small\n      project_name: null")
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
    let f = parse(SAMPLE).expect("upstream file");
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
    assert_eq!(top, vec!["os_migrate_version: 1.0.5", "resources:"]);
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
    let mut f = parse(SAMPLE).expect("upstream file");
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
    let no_flavor = SAMPLE.replacen("    flavor_ref:\n      domain_name: '%auth%'\n      name: m1.small\n      project_name: '%auth%'\n", "", 1);
    assert_eq!(err(&no_flavor), "workloads file workloads.yml: resource 'app-01' (resources[0]): params: missing field `flavor_ref`");
    let no_id = SAMPLE.replacen("    id: 8b4d3b63-9f67-4b3c-8e6f-2c7d3e4f5a6b\n", "", 1);
    assert_eq!(
        err(&no_id),
        "workloads file workloads.yml: resource 'db-01' (resources[1]): _info: missing field `id`"
    );
    let bad_type = SAMPLE.replacen(
        "  type: openstack.compute.Server",
        "  type: openstack.compute.Flavor",
        1,
    );
    assert_eq!(err(&bad_type), "workloads file workloads.yml: resource 'app-01' (resources[0]): type: unknown type 'openstack.compute.Flavor', expected 'openstack.compute.Server'");
    let bad_port = SAMPLE.replacen(
        "type: openstack.network.ServerPort",
        "type: openstack.network.Port",
        1,
    );
    assert!(err(&bad_port)
        .contains("resource 'app-01' (resources[0]): params.ports[0].type: unknown type"));
    let bad_size = SAMPLE.replacen("size: 10", "size: ten", 1);
    assert!(err(&bad_size).starts_with("workloads file workloads.yml: resource 'db-01' (resources[1]): params.volumes[0]._info.size: invalid type"), "{}", err(&bad_size));
    let bad_mode = SAMPLE.replacen("floating_ip_mode: skip", "floating_ip_mode: sometimes", 1);
    assert!(err(&bad_mode).contains("resource 'db-01' (resources[1]): _migration_params.floating_ip_mode: unknown variant `sometimes`"), "{}", err(&bad_mode));
    let empty_name = SAMPLE.replacen("name: db-01", "name: ''", 1);
    assert_eq!(err(&empty_name), "workloads file workloads.yml: resource resources[1]: params.name: a server name must not be empty");
    let dup = SAMPLE.replacen("name: db-01", "name: app-01", 1);
    assert_eq!(err(&dup), "workloads file workloads.yml: servers resources[0] and resources[1] have the same name 'app-01'; server names must be unique");
    assert!(
        err("os_migrate_version: [").starts_with("workloads file workloads.yml is not valid YAML")
    );
}

/// `data_copy: false` as upstream: a boot volume ID boots the server from it even when the source
/// booted from an image; null additional volume IDs are skipped, and every ID given is attached.
#[test]
fn data_copy_false_semantics_as_upstream() {
    let mut f = parse(UPSTREAM).expect("upstream");
    let app = &mut f.resources[0];
    app.migration_params.data_copy = false;
    assert!(matches!(app.boot_source(), BootSource::Image(_)));
    app.migration_params.boot_volume.uuid = Some("vol-boot".into());
    assert_eq!(app.boot_source(), BootSource::ReusedVolume("vol-boot"));
    assert!(app.migration_params.reused_additional_volumes().is_empty());
    let mut slots: Vec<osm_workload::model::VolumeUuid> =
        serde_json::from_value(serde_json::json!([{"uuid": null}, {"uuid": "a"}, {"uuid": "b"}]))
            .expect("slots");
    app.migration_params.additional_volumes = std::mem::take(&mut slots);
    assert_eq!(
        app.migration_params.reused_additional_volumes(),
        vec!["a", "b"]
    );
    let db = &mut f.resources[1];
    db.migration_params.data_copy = false;
    assert_eq!(db.boot_source(), BootSource::Nothing);
}
