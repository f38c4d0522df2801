"""Fixtures of the traefik scenario: the shared ones (molecule/shared/conftest.py)
plus Traefik's journal and API in the report of every failing test."""

import importlib.util
import os
import subprocess

import pytest

_spec = importlib.util.spec_from_file_location(
    "onebox_shared_conftest", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "conftest.py"))
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

SCENARIO = shared.SCENARIO
CONTAINER = shared.CONTAINER
PROJECT = shared.PROJECT
scenario_vars = shared.scenario_vars
run_playbook = shared.run_playbook
host_snapshot = shared.host_snapshot
print_table = shared.print_table
host = shared.host
onebox_vars = shared.onebox_vars
sites = shared.sites
playbook = shared.playbook
snapshot = shared.snapshot
_shared_report = shared.pytest_runtest_makereport


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # The shared hook adds `journalctl -u <sites>`; this one adds Traefik's side.
    inner = _shared_report(item, call)
    next(inner)
    outcome = yield
    try:
        inner.send(outcome)
    except StopIteration:
        pass
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        proc = subprocess.run(
            ["podman", "exec", CONTAINER, "sh", "-c",
             "journalctl --no-pager -n 60 -u traefik; systemctl --no-pager status traefik | head -20; "
             "curl -sS --max-time 3 http://127.0.0.1:8080/api/http/services"],
            capture_output=True, text=True, check=False)
        report.sections.append(("journalctl -u traefik", proc.stdout + proc.stderr))
