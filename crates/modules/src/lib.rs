/*!
Pieces shared by the module binaries of the `osm.workloads` collection (one `src/bin/<module>.rs` per
Ansible module; each `main` parses options, calls the `osm-workload` library and returns its result).
*/
#![deny(missing_docs)]
