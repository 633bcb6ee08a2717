# Copyright: osm maintainers
# Apache License 2.0 (see LICENSE)
"""Inventory plugin osm.workloads.workloads: each selected workload of workloads.yml an inventory host."""

from __future__ import annotations

DOCUMENTATION = r"""
name: workloads
short_description: The workloads of workloads.yml as inventory hosts, grouped by conversion host pair
version_added: 1.0.0
author: osm maintainers (@osm-migrate)
description:
  - Reads C(workloads.yml) of the data dir, keeps the workloads that pass I(filter) (as C(os_migrate_workloads_filter)),
    and makes each one an inventory host of group C(os_migrate_workloads), with the workload in its variable
    C(os_migrate_workload).
  - Each workload is assigned a pair of the pool I(conversion_host_pairs) - the pair pinned by its
    C(_migration_params.conversion_host_pair), else the pair with the least disk assigned so far - and put in group
    C(osm_pair_<pair>); with I(pin_pairs), the assignment becomes its C(os_migrate_conversion_host_pair), which
    C(import_workloads) honours.
  - So an AWX job template running C(osm.workloads.import_workloads) with job slicing spreads the workloads over
    execution nodes (each slice a job of its own queue); a plain C(ansible-playbook) run with C(--limit) migrates only
    the workloads of the limit. The data dir must be on storage every slice reaches.
  - The host name is the workload's name when it is a safe host name, else C(osm-workload-<source server id>).
  - The configuration file's name must end with C(osm_workloads.yml) or C(osm_workloads.yaml).
options:
  plugin:
    description: The name of this plugin; C(osm.workloads.workloads).
    type: str
    required: true
    choices: [osm.workloads.workloads]
  data_dir:
    description:
      - The data dir (C(os_migrate_data_dir)) holding C(workloads.yml).
    type: path
    required: true
  workloads_file:
    description:
      - The workloads file, when not C(<data_dir>/workloads.yml).
    type: path
  filter:
    description:
      - "Which workloads - exact names and C({regex: PATTERN}) items (an unanchored search), as
        C(os_migrate_workloads_filter)."
    type: list
    elements: raw
    default: [{regex: '.*'}]
  conversion_host_pairs:
    description:
      - The pool of pairs, as C(os_migrate_conversion_host_pairs) - null (one pair, C(default)), a count N (pairs
        C(p1) to C(pN)), or a list of pair names or mappings with a C(name).
    type: raw
  pin_pairs:
    description:
      - Set each host's C(os_migrate_conversion_host_pair) to its assigned pair, so that the import runs it there.
        When false, only C(_migration_params.conversion_host_pair) pins, and the groups are a plan.
    type: bool
    default: true
"""

EXAMPLES = r"""
# migration.osm_workloads.yml
plugin: osm.workloads.workloads
data_dir: /srv/osm-data
filter:
  - regex: '^web-'
conversion_host_pairs: 2

# ansible-inventory -i migration.osm_workloads.yml --graph
# ansible-playbook -i migration.osm_workloads.yml osm.workloads.import_workloads --limit 'osm_pair_p1'
"""

import os
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

SAFE_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
PAIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def pool(spec):
    """Pair names of os_migrate_conversion_host_pairs, checked as the roles check them."""
    if spec is None:
        return ["default"]
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        count = int(spec)
        if count < 1:
            raise AnsibleParserError("conversion_host_pairs: a count must be at least 1")
        return [f"p{i}" for i in range(1, count + 1)]
    if not isinstance(spec, list) or not spec:
        raise AnsibleParserError("conversion_host_pairs: must be null, a count, or a non-empty list")
    names = []
    for i, entry in enumerate(spec):
        name = str(entry.get("name", "")) if isinstance(entry, dict) else str(entry)
        if not PAIR_NAME.match(name):
            raise AnsibleParserError(
                f"conversion_host_pairs[{i}]: pair name {name!r} must be 1 to 63 letters, digits, '-' or '_'")
        if name in names:
            raise AnsibleParserError(f"conversion_host_pairs[{i}]: pair {name!r} is listed twice")
        names.append(name)
    return names


def selector(items):
    """os_migrate_workloads_filter: exact names and {regex: ...} items."""
    exact, patterns = set(), []
    for i, item in enumerate(items or []):
        if isinstance(item, str):
            exact.add(item)
        elif isinstance(item, dict) and set(item) == {"regex"} and isinstance(item["regex"], str):
            try:
                patterns.append(re.compile(item["regex"]))
            except re.error as e:
                raise AnsibleParserError(f"filter[{i}].regex: invalid regular expression {item['regex']!r}: {e}")
        else:
            raise AnsibleParserError(f"filter[{i}]: must be a name or a mapping with the single key 'regex'")
    return lambda name: name in exact or any(p.search(name) for p in patterns)


def disk_bytes(workload):
    params = workload.get("params") or {}
    return sum(int(((v or {}).get("_info") or {}).get("size") or 0) for v in params.get("volumes") or []) or 1


class InventoryModule(BaseInventoryPlugin):
    NAME = "osm.workloads.workloads"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("osm_workloads.yml", "osm_workloads.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        data_dir = self.get_option("data_dir")
        source = self.get_option("workloads_file") or os.path.join(data_dir, "workloads.yml")
        try:
            with open(source, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as e:
            raise AnsibleParserError(f"osm.workloads.workloads: cannot read {source}: {e}")
        resources = doc.get("resources") if isinstance(doc, dict) else None
        if not isinstance(resources, list):
            raise AnsibleParserError(f"osm.workloads.workloads: {source} has no list 'resources'")
        pairs = pool(self.get_option("conversion_host_pairs"))
        pin = self.get_option("pin_pairs")
        wanted = selector(self.get_option("filter"))
        load = {p: 0 for p in pairs}
        self.inventory.add_group("os_migrate_workloads")
        for p in pairs:
            self.inventory.add_group(f"osm_pair_{p}")
        for i, w in enumerate(resources):
            if not isinstance(w, dict) or w.get("type") != "openstack.compute.Server":
                continue
            name = str((w.get("params") or {}).get("name") or "")
            sid = str((w.get("_info") or {}).get("id") or "")
            if not name or not sid:
                raise AnsibleParserError(f"osm.workloads.workloads: {source}: resources[{i}] has no params.name or _info.id")
            if not wanted(name):
                continue
            pinned = (w.get("_migration_params") or {}).get("conversion_host_pair")
            if pinned is not None and pinned not in pairs:
                raise AnsibleParserError(
                    f"osm.workloads.workloads: _migration_params.conversion_host_pair of workload {name!r}: "
                    f"pair {pinned!r} is not in the pool ({', '.join(pairs)})")
            pair = pinned or min(pairs, key=lambda p: load[p])
            load[pair] += disk_bytes(w)
            host = name if SAFE_HOST.match(name) else f"osm-workload-{sid}"
            self.inventory.add_host(host, group="os_migrate_workloads")
            self.inventory.add_child(f"osm_pair_{pair}", host)
            self.inventory.set_variable(host, "os_migrate_workload", w)
            self.inventory.set_variable(host, "ansible_connection", "local")
            if pin or pinned:
                self.inventory.set_variable(host, "os_migrate_conversion_host_pair", pair)
