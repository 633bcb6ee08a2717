# Copyright: osm maintainers
# Apache License 2.0 (see LICENSE)
"""Strategy plugin osm.workloads.lanes: the free strategy, waiting for results instead of polling."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lanes
short_description: The free strategy, which waits for a result when no host can move
version_added: 1.0.0
author: osm maintainers (@osm-migrate)
description:
  - Runs the play as C(ansible.builtin.free) does - each host goes through its tasks as fast as it can,
    without waiting for the others - with one difference that matters for long plays on few cores.
  - The free strategy looks at every host for its next task about every millisecond
    (C(internal_poll_interval)), whether or not anything changed; with many hosts and long included task
    lists, that look costs about a core while the hosts' tasks run. This strategy looks again only once
    something happened - a task was started, a meta task ran, or a result came back - and otherwise waits
    for the next result, checking for it every few milliseconds.
  - C(osm.workloads.import_workloads) runs its lanes with it. Every option and behaviour of the free
    strategy (forks, throttle, failures, includes) is unchanged.
"""

import time

from ansible.plugins.strategy.free import StrategyModule as FreeStrategyModule

# How often a waiting strategy checks for a result: the delay a finished task can add before the
# host's next task starts.
CHECK_EVERY = 0.002
# The longest wait before the strategy looks at the hosts again anyway, so that it still notices an
# interrupted run or a dead worker promptly.
WAIT_AT_MOST = 0.5


class StrategyModule(FreeStrategyModule):
    def __init__(self, tqm):
        super().__init__(tqm)
        # Whether anything changed since the strategy last looked at the hosts.
        self._osm_moved = True

    def _queue_task(self, *args, **kwargs):
        self._osm_moved = True
        return super()._queue_task(*args, **kwargs)

    def _execute_meta(self, *args, **kwargs):
        self._osm_moved = True
        return super()._execute_meta(*args, **kwargs)

    def _process_pending_results(self, *args, **kwargs):
        # Nothing started and nothing came back since the last look, and tasks are running: the next
        # look could only find the same, until a result arrives.
        if not self._osm_moved and self._pending_results > 0:
            deadline = time.monotonic() + WAIT_AT_MOST
            while not self._results and time.monotonic() < deadline and not self._tqm._terminated:
                time.sleep(CHECK_EVERY)
        self._osm_moved = False
        results = super()._process_pending_results(*args, **kwargs)
        if results:
            self._osm_moved = True
        return results
