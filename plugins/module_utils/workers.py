# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Worker churn of a starting unit, read from its cgroup.

A pre-fork server whose workers die at start (an import error, ``exit()``
in the app module) keeps its master alive and forks new workers for ever:
systemd sees an active unit, and the site's socket queues requests that no
process accepts. What does show is the churn: processes forked from the main
process (same executable, its children) appear in the unit's cgroup and are
gone again a moment later.

:class:`WorkerExits` counts such exits; :class:`WorkerWatch` samples the
cgroup from a thread while the roll waits for readiness, so a worker that
lives 50 ms is still seen. Linux ``/proc`` and cgroup files only; the
standard library only (runs on the target host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading

#: Where a unit's ``ControlGroup`` path is looked up, in this order: the
#: unified hierarchy of a hybrid host, a pure cgroup v2 host, the legacy
#: hierarchy systemd names after itself.
CGROUP_ROOTS = ('/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/systemd')
#: Exits of the main process's workers before the unit answered ready that
#: can make a crash loop (see :attr:`WorkerExits.crash_loop`). A healthy
#: start exits none (a server that recycles workers does so while serving,
#: after it came ready).
WORKER_EXIT_LIMIT = 4
#: Seconds between two samples of the cgroup.
SAMPLE_INTERVAL = 0.05


def procs_path(control_group, roots=None):
    """The ``cgroup.procs`` file of a unit's ``ControlGroup``, or None."""
    if not control_group or not control_group.startswith('/'):
        return None
    for root in roots or CGROUP_ROOTS:
        path = root + control_group.rstrip('/') + '/cgroup.procs'
        if os.path.isfile(path):
            return path
    return None


def read_pids(path):
    """The pids listed in a ``cgroup.procs`` file (empty when it is gone)."""
    try:
        with open(path) as handle:
            return set(int(line) for line in handle.read().split())
    except (IOError, OSError, ValueError):
        return set()


#: The kernel's flag for a process that was forked and has not called exec()
#: (``PF_FORKNOEXEC``, in the flags field of ``/proc/PID/stat``).
PF_FORKNOEXEC = 0x40


def process_info(pid):
    """``(parent pid, forked without exec, command line)`` of a live process,
    or None. Reads only what ``/proc`` shows without ptrace rights (the
    module's root may lack CAP_SYS_PTRACE, in a container for one)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            stat = handle.read()
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            cmdline = handle.read()
    except (IOError, OSError):
        return None
    fields = stat[stat.rfind(')') + 2:].split()
    try:
        return int(fields[1]), bool(int(fields[6]) & PF_FORKNOEXEC), cmdline
    except (IndexError, ValueError):
        return None


class WorkerExits(object):
    """Counts workers of a main process that were seen alive, then gone.

    A worker is a child of the main process that is a fork of it: forked
    without exec (gunicorn's workers, Python's multiprocessing with fork), or
    running the main process's own command line (Node's cluster workers).
    Helpers a start script runs (``sleep``, ``curl``) exec other programs and
    never count. A new main process (the service restarted) starts anew.

    :attr:`crash_loop` is true once at least :data:`WORKER_EXIT_LIMIT` workers
    exited and more than twice as many as ever ran at once: workers that are
    replaced as they die, not a pool that did its work and ended.
    """

    def __init__(self, info=process_info):
        self.info = info
        self.main = None
        self.main_cmdline = None
        self.workers = set()
        self.exits = 0
        self.peak = 0

    @property
    def crash_loop(self):
        return self.exits >= WORKER_EXIT_LIMIT and self.exits > 2 * self.peak

    def sample(self, main_pid, pids):
        """Take one look at the unit's processes *pids* (a set) under *main_pid*."""
        if not main_pid or main_pid not in pids:
            return
        if main_pid != self.main:
            main = self.info(main_pid)
            if main is None:
                return
            self.main, self.main_cmdline, self.workers, self.exits, self.peak = main_pid, main[2], set(), 0, 0
        gone = self.workers - pids
        self.exits += len(gone)
        self.workers -= gone
        for pid in pids - self.workers - set([main_pid]):
            info = self.info(pid)
            if info is not None and info[0] == main_pid and (info[1] or info[2] == self.main_cmdline):
                self.workers.add(pid)
        self.peak = max(self.peak, len(self.workers))


class WorkerWatch(object):
    """Samples a unit's cgroup every :data:`SAMPLE_INTERVAL` seconds in a
    thread into a :class:`WorkerExits`; :meth:`update` tells it the unit's
    current ``ControlGroup`` and ``MainPID`` (from ``systemctl show``)."""

    def __init__(self, interval=SAMPLE_INTERVAL, exits=None, find=None, read=None):
        self.interval = interval
        self.exits = exits or WorkerExits()
        self.find = find or procs_path
        self.read = read or read_pids
        self._lock = threading.Lock()
        self._target = (None, 0)
        self._stop = threading.Event()
        self._thread = None

    def update(self, control_group, main_pid):
        try:
            main_pid = int(main_pid or 0)
        except ValueError:
            main_pid = 0
        with self._lock:
            self._target = (control_group, main_pid)
        if self._thread is None and control_group:
            self._thread = threading.Thread(target=self._run, name='onebox-worker-watch')
            self._thread.daemon = True
            self._thread.start()

    def sample(self):
        with self._lock:
            control_group, main_pid = self._target
            path = self.find(control_group)
            if path:
                self.exits.sample(main_pid, self.read(path))

    def count(self):
        """``(workers that exited, whether that is a crash loop)``."""
        with self._lock:
            return self.exits.exits, self.exits.crash_loop

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)


__all__ = ['CGROUP_ROOTS', 'PF_FORKNOEXEC', 'SAMPLE_INTERVAL', 'WORKER_EXIT_LIMIT', 'WorkerExits', 'WorkerWatch', 'procs_path',
           'process_info', 'read_pids']
