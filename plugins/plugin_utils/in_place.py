# -*- coding: utf-8 -*-
# Copyright: osm contributors
# Apache License 2.0 (see LICENSE at the collection root)
"""The action of every osm.workloads module: plugins/action/<module>.py links here.

Ansible runs a binary module by making a temporary directory, copying the module into it, making it
executable, running it and removing the directory, each through /bin/sh: measured here, 43 ms of CPU
per task against 15 ms for running the binary in place, and an import makes about ten such tasks per
workload. Where the module runs on the controller itself (the local connection, as the roles'
delegate_to the migrator does by default), this runs the module's executable where the collection
keeps it, with its arguments in a private file, and reads its result as Ansible would. Anywhere else
(another host, become, async, a task environment, an ansible-core release this was not tested with)
it is Ansible's own way, unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.release import __version__ as ansible_version
from ansible.vars.clean import remove_internal_keys

try:
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:
    get_module_encoder = None

# What binary modules are given and answer in (ansible-core's module_common).
PROFILE = "legacy"


class ActionModule(NormalAction):
    def _execute_module(self, module_name=None, module_args=None, tmp=None, task_vars=None, persist_files=False,
                        delete_remote_tmp=None, wrap_async=False, ignore_unknown_opts=False):
        module_name = module_name or self._task.action
        binary = self._in_place(module_name, wrap_async)
        if binary is None:
            return super()._execute_module(module_name=module_name, module_args=module_args, tmp=tmp,
                                           task_vars=task_vars, persist_files=persist_files,
                                           delete_remote_tmp=delete_remote_tmp, wrap_async=wrap_async,
                                           ignore_unknown_opts=ignore_unknown_opts)
        module_args = dict(self._task.args if module_args is None else module_args)
        self._update_module_args(module_name, module_args, task_vars or {}, ignore_unknown_opts=ignore_unknown_opts)
        # The arguments hold credentials: a file only this user reads, in Ansible's own local temporary
        # directory, gone when the module ends; the module's command line names only the file.
        with tempfile.TemporaryDirectory(prefix="osm-module-", dir=C.DEFAULT_LOCAL_TMP) as tmpdir:
            args_path = os.path.join(tmpdir, "args")
            fd = os.open(args_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(module_args, f, cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE))
            done = subprocess.run([binary, args_path], stdin=subprocess.DEVNULL, capture_output=True, check=False)
        data = self._parse_returned_data({
            "rc": done.returncode,
            "stdout": done.stdout.decode("utf-8", "surrogateescape"),
            "stderr": done.stderr.decode("utf-8", "surrogateescape"),
        }, PROFILE)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(data)
        return data

    def _in_place(self, module_name, wrap_async):
        """The module's executable, when it can run in place; None for Ansible's own way."""
        if get_module_encoder is None or not ansible_version.startswith("2.19."):
            return None
        if wrap_async or self._task.async_val or self._play_context.become or any(self._task.environment or ()):
            return None
        if getattr(self._connection, "transport", None) != "local":
            return None
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            module_name, collection_list=self._task.collections)
        path = found.plugin_resolved_path if found.resolved else None
        if not path or path.endswith(".py") or not os.access(path, os.X_OK):
            return None
        return path
