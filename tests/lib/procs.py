"""Processes of a running migration, found by command line, for the tests that kill them mid-way."""
import os
import signal
import subprocess


def pids(pattern):
    """Processes whose command line matches; callers put a path of their own test into the pattern,
    so that tests running in parallel (pytest -n) never hit each other's processes."""
    out = subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.PIPE, text=True).stdout
    return [int(p) for p in out.split()]


def signal_all(pids_, sig=signal.SIGKILL):
    """Sends `sig` to each process that still exists and returns those it reached: a process listed a
    moment ago (a short ssh session of the copy, say) may have ended meanwhile."""
    reached = []
    for p in pids_:
        try:
            os.kill(p, sig)
            reached.append(p)
        except ProcessLookupError:
            pass
    return reached


def kill_matching(pattern, sig=signal.SIGKILL):
    """Signals the processes matching `pattern`; fails if none was there to signal, since a test that
    meant to interrupt something and did not would pass without testing anything."""
    reached = signal_all(pids(pattern), sig)
    assert reached, f"no running process matches {pattern!r}"
    return reached


def stop_group(proc):
    """Kills a process started with start_new_session and everything it started (ansible-playbook's
    module processes), so that a failed test leaves no migration running into the next one."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
