"""Tests for the verdict of the load harness (tests/harness/restart_under_load.py), which
`make demo` prints and fails on."""

import importlib.util
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "tests" / "harness" / "restart_under_load.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("restart_under_load", str(HARNESS))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def site(**changes):
    """A clean site report: every restart done, nothing failed."""
    report = {"asked": 10, "restarts": 10, "errors": [], "auto_restarts": 0, "journal": [],
              "socket_states": ["active"], "requests": 100000, "failed": 0, "connect_errors": 0,
              "read_errors": 0, "write_errors": 0, "timeouts": 0, "non_2xx_3xx": 0}
    report.update(changes)
    return report


def test_a_clean_run_has_no_problem(harness):
    assert harness.problems({"blog": site(), "wiki": site()}) == []


def test_every_reason_for_failing_is_named_with_its_site(harness):
    wiki = site(restarts=9, errors=["wiki: restart 10: not ready within 30s after systemctl restart returned"],
                auto_restarts=1, journal=["systemd[1]: wiki.service: start operation timed out. Terminating."],
                socket_states=["active", "failed"], failed=8, timeouts=8)
    assert harness.problems({"blog": site(), "wiki": wiki}) == [
        "wiki: 9 of 10 restarts done",
        "wiki: restart 10: not ready within 30s after systemctl restart returned",
        "wiki: systemd restarted it 1 times on its own (Restart=on-failure)",
        "wiki: journal: systemd[1]: wiki.service: start operation timed out. Terminating.",
        "wiki: socket states seen: active, failed (want only active)",
        "wiki: 8 failed requests (connect 0, read 0, write 0, timeout 8, non-2xx/3xx 0)",
    ]


def test_a_site_that_answered_nothing_is_a_problem(harness):
    assert harness.problems({"shop": site(requests=0)}) == ["shop: wrk got no answer at all"]


@pytest.mark.parametrize("line", [
    "systemd[1]: wiki.service: start operation timed out. Terminating.",
    "systemd[1]: wiki.service: State 'stop-sigterm' timed out. Killing.",
    "systemd[1]: wiki.service: Failed with result 'timeout'.",
    "systemd[1]: Failed to start wiki.service - onebox site wiki.",
    "systemd[1]: wiki.service: Main process exited, code=exited, status=2/INVALIDARGUMENT",
    "systemd[1]: wiki.service: Scheduled restart job, restart counter is at 1.",
    "systemd[1]: wiki.service: Killing process 4242 (python3) with signal SIGKILL.",
    "onebox-app[4242]: onebox-app[wiki]: sd_notify(READY=1 STATUS=serving) failed: [Errno 11] Resource temporarily unavailable",
    "onebox-app[4242]: onebox-app[wiki]: cannot bind health socket 127.0.0.1:19021: [Errno 98] Address already in use",
    "onebox-app[4242]: onebox-app[wiki]: accept failed: [Errno 24] Too many open files",
    "onebox-app[4242]: onebox-app[wiki]: drain timeout after 10.00s: cutting 3 connections, exiting",
    "onebox-app[4242]: Traceback (most recent call last):",
])
def test_journal_lines_of_a_start_or_stop_gone_wrong_are_trouble(harness, line):
    assert harness.JOURNAL_TROUBLE.search(line)


@pytest.mark.parametrize("line", [
    "systemd[1]: Starting wiki.service - onebox site wiki...",
    "systemd[1]: Started wiki.service - onebox site wiki.",
    "systemd[1]: Stopping wiki.service - onebox site wiki...",
    "systemd[1]: wiki.service: Deactivated successfully.",
    "systemd[1]: Stopped wiki.service - onebox site wiki.",
    "onebox-app[4242]: onebox-app[wiki]: starting pid 4242 version 1.0.0 (warmup 0.80s, drain-timeout 10.00s, idle-grace 0.20s)",
    "onebox-app[4242]: onebox-app[wiki]: inherited socket fd 3 (http) for 127.0.0.1:8003",
    "onebox-app[4242]: onebox-app[wiki]: health endpoints on 127.0.0.1:19021",
    "onebox-app[4242]: onebox-app[wiki]: ready after 0.81s",
    "onebox-app[4242]: onebox-app[wiki]: draining: 8 open connections (SIGTERM)",
    "onebox-app[4242]: onebox-app[wiki]: drained in 0.00s, exiting",
])
def test_the_lines_of_a_clean_restart_are_not(harness, line):
    assert not harness.JOURNAL_TROUBLE.search(line)
