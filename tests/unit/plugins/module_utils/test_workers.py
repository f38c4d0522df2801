# -*- coding: utf-8 -*-
"""Worker churn of a starting unit (plugins/module_utils/workers.py): which
processes count as the main process's workers, when their exits make a crash
loop, and the sampling thread, on real processes where it matters."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess
import sys
import time

from ansible_collections.onebox.deploy.plugins.module_utils import workers as W

MAIN = 100
CMD = b"/usr/bin/python3\x00/usr/bin/gunicorn\x00app:app\x00"


class FakeProcs(object):
    """``pid -> (ppid, forked without exec, cmdline)`` for WorkerExits."""

    def __init__(self):
        self.table = {MAIN: (1, False, CMD)}

    def info(self, pid):
        return self.table.get(pid)

    def fork(self, pid, parent=MAIN, cmdline=CMD, noexec=True):
        self.table[pid] = (parent, noexec, cmdline)


def test_forked_workers_that_die_and_are_replaced_are_a_crash_loop():
    procs = FakeProcs()
    exits = W.WorkerExits(procs.info)
    pid = 200
    for _round in range(3):
        procs.fork(pid)
        procs.fork(pid + 1)
        exits.sample(MAIN, {MAIN, pid, pid + 1})
        pid += 2
        exits.sample(MAIN, {MAIN})          # both gone again
    assert exits.exits == 6 and exits.peak == 2
    assert exits.crash_loop


def test_a_pool_that_did_its_work_and_helpers_a_script_runs_are_not():
    procs = FakeProcs()
    exits = W.WorkerExits(procs.info)
    pool = [300, 301, 302, 303]
    for pid in pool:
        procs.fork(pid)
    exits.sample(MAIN, {MAIN} | set(pool))
    exits.sample(MAIN, {MAIN})
    assert exits.exits == 4 and not exits.crash_loop     # 4 exits of 4 at once: a pool, not a loop
    helpers = FakeProcs()
    script = W.WorkerExits(helpers.info)
    for pid in range(400, 420):                          # `sleep 1` in a wait loop: exec'd, another program
        helpers.fork(pid, cmdline=b"sleep\x001\x00", noexec=False)
        script.sample(MAIN, {MAIN, pid})
        script.sample(MAIN, {MAIN})
    assert script.exits == 0 and not script.crash_loop


def test_children_of_children_and_a_new_main_process_start_anew():
    procs = FakeProcs()
    exits = W.WorkerExits(procs.info)
    procs.fork(500, parent=999)                          # not a child of the main process
    procs.fork(501, noexec=False)                        # exec'd, same command line (a Node cluster worker)
    exits.sample(MAIN, {MAIN, 500, 501})
    assert exits.workers == {501}
    exits.sample(MAIN, {MAIN})
    assert exits.exits == 1
    procs.table[101] = (1, False, CMD)
    exits.sample(101, {101})                             # the service restarted: a new count
    assert exits.exits == 0 and exits.main == 101
    exits.sample(0, set())                               # no main process: nothing to look at
    assert exits.main == 101


def test_process_info_reads_a_real_fork_and_a_real_exec():
    code = "import os, time, sys\npid = os.fork()\nif pid == 0:\n    time.sleep(5)\n    os._exit(0)\n" \
           "print(pid, flush=True)\ntime.sleep(5)\n"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    exe_child = subprocess.Popen(["sleep", "5"])
    try:
        child = int(parent.stdout.readline())
        ppid, noexec, cmdline = W.process_info(child)
        assert ppid == parent.pid and noexec and cmdline.startswith(sys.executable.encode())
        assert W.process_info(exe_child.pid)[1] is False
        assert W.process_info(2 ** 22 + 12345) is None
    finally:
        for proc in (parent, exe_child):
            proc.kill()
            proc.wait()


def test_procs_path_and_read_pids(tmp_path):
    group = tmp_path / "unified" / "system.slice" / "blog.service"
    group.mkdir(parents=True)
    (group / "cgroup.procs").write_text("12\n34\n")
    roots = (str(tmp_path / "unified"), str(tmp_path / "other"))
    path = W.procs_path("/system.slice/blog.service", roots)
    assert path == str(group / "cgroup.procs")
    assert W.read_pids(path) == {12, 34}
    assert W.procs_path("/system.slice/gone.service", roots) is None
    assert W.procs_path("", roots) is None and W.procs_path(None, roots) is None
    assert W.read_pids(str(tmp_path / "missing")) == set()


def test_the_watch_samples_in_a_thread_until_stopped(tmp_path):
    procs = FakeProcs()
    listing = {"pids": {MAIN}}
    watch = W.WorkerWatch(interval=0.01, exits=W.WorkerExits(procs.info), find=lambda group: group,
                          read=lambda path: set(listing["pids"]))
    assert watch.count() == (0, False)
    watch.update("/system.slice/blog.service", str(MAIN))
    pid = 600
    deadline = time.monotonic() + 5
    while not watch.count()[1] and time.monotonic() < deadline:
        procs.fork(pid)
        listing["pids"] = {MAIN, pid}
        time.sleep(0.03)
        listing["pids"] = {MAIN}
        time.sleep(0.03)
        pid += 1
    watch.stop()
    exits, crash_loop = watch.count()
    assert crash_loop and exits >= W.WORKER_EXIT_LIMIT
    assert not watch._thread.is_alive()
    idle = W.WorkerWatch()
    idle.update(None, "0")                               # no control group yet: no thread
    assert idle._thread is None
    idle.stop()
