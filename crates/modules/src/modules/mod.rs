//! The Ansible modules, one file each; [`MODULES`] maps a module name to its entry point.

mod export_workload;
mod import_workload_create_instance;
mod import_workload_dst_check;
mod import_workload_dst_failure_cleanup;
mod import_workload_export_volumes;
mod import_workload_prelim;
mod import_workload_src_check;
mod import_workload_src_cleanup;
mod import_workload_transfer_volumes;
mod os_conversion_host;
mod os_conversion_host_info;
mod os_conversion_host_link;
mod os_migrate_leftovers;
mod os_migrate_preflight;
mod os_server_action;
mod os_workloads_info;
mod read_workloads;

/// Every module of the collection, by name.
pub const MODULES: &[(&str, fn() -> std::process::ExitCode)] = &[
    ("export_workload", export_workload::main),
    (
        "import_workload_create_instance",
        import_workload_create_instance::main,
    ),
    ("import_workload_dst_check", import_workload_dst_check::main),
    (
        "import_workload_dst_failure_cleanup",
        import_workload_dst_failure_cleanup::main,
    ),
    (
        "import_workload_export_volumes",
        import_workload_export_volumes::main,
    ),
    ("import_workload_prelim", import_workload_prelim::main),
    ("import_workload_src_check", import_workload_src_check::main),
    (
        "import_workload_src_cleanup",
        import_workload_src_cleanup::main,
    ),
    (
        "import_workload_transfer_volumes",
        import_workload_transfer_volumes::main,
    ),
    ("os_conversion_host", os_conversion_host::main),
    ("os_conversion_host_info", os_conversion_host_info::main),
    ("os_conversion_host_link", os_conversion_host_link::main),
    ("os_migrate_leftovers", os_migrate_leftovers::main),
    ("os_migrate_preflight", os_migrate_preflight::main),
    ("os_server_action", os_server_action::main),
    ("os_workloads_info", os_workloads_info::main),
    ("read_workloads", read_workloads::main),
];
