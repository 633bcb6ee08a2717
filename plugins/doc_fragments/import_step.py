# Documentation only: the options shared by the import step modules.


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  data:
    description:
      - The workload, one server entry of the workloads file as C(read_workloads) returns it.
    type: dict
    required: true
  data_dir:
    description:
      - C(os_migrate_data_dir). The workload's log and state files are C(workload_logs/<name>.log) and
        C(workload_logs/<name>.state) under it.
    type: path
    required: true
    aliases: [os_migrate_data_dir]
  phase:
    description:
      - The part of the migration this run does (C(os_migrate_workload_phase)).
      - C(cold) - the whole migration with the source SHUTOFF.
      - C(precopy) - a sync while the source runs (ACTIVE or SHUTOFF) from snapshots of its volumes (a live
        createImage for an image-booted server); the destination volumes are kept for the next round or the
        cutover.
      - C(cutover) - the source stopped, the final sync of what changed since the last pre-copy, the server created.
        Refused (nothing changed) when no pre-copy round finished.
    type: str
    choices: [cold, precopy, cutover]
    default: cold
  resume:
    description:
      - After a failure during or after the sync, keep (and then reuse) the destination volumes, so that the
        next run's sync sends only what they lack (C(os_migrate_workload_resume)).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for one cloud resource (volume, snapshot, image, server) to reach a status.
    type: int
    default: 1800
'''
