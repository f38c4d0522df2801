# -*- coding: utf-8 -*-
"""Unit tests for onebox.deploy.deploy_lock (plugins/modules/deploy_lock.py).

The module runs in-process on real lock files under tmp_path. Abandoned locks
are simulated by writing a lock whose heartbeat lies in the past, so no test
waits for a TTL to expire.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import threading
import time

import pytest

from ansible_collections.onebox.deploy.plugins.modules import deploy_lock
from module_runner import invoke

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --------------------------------------------------------------------------
# module invocation
# --------------------------------------------------------------------------

class Run(object):
    def __init__(self, failed, result, seconds, warnings):
        self.failed = failed
        self.result = result
        self.seconds = seconds
        self.warnings = warnings

    @property
    def msg(self):
        return self.result.get('msg', '')


def run_module(args, check_mode=False):
    warnings = []
    failed, result, seconds = invoke(deploy_lock.main, args, check_mode,
                                     {'warn': lambda self, w: warnings.append(w)})
    return Run(failed, result, seconds, warnings)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

@pytest.fixture
def lock(tmp_path):
    return str(tmp_path / "onebox" / ".deploy.lock")


def write_lock(path, owner="bob@desk", run_id="bbbbbbbbbbbbbbbb", age=0.0, ttl=900,
               started="2026-11-25T17:40:02Z"):
    """A lock as the module writes it, with its heartbeat ``age`` seconds ago."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    record = dict(owner=owner, run_id=run_id, started=started, heartbeat=time.time() - age, ttl=ttl)
    with open(path, "w") as handle:
        json.dump(record, handle, sort_keys=True)
        handle.write("\n")
    return record


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def leftovers(path):
    """Files next to the lock other than the lock and the audit log."""
    directory = os.path.dirname(path)
    return sorted(n for n in os.listdir(directory)
                  if n != os.path.basename(path) and not n.endswith(".jsonl"))


def audit_lines(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --------------------------------------------------------------------------
# acquired
# --------------------------------------------------------------------------

def test_acquire_creates_json_lock(lock):
    before = time.time()
    run = run_module(dict(path=lock, owner="alice@laptop", ttl=600))
    after = time.time()
    assert not run.failed, run.msg
    res = run.result
    assert res['changed'] is True
    assert res['taken_over'] is False
    assert res['holder'] is None
    assert re.match(r"^[0-9a-f]{16}$", res['run_id'])
    data = read_json(lock)
    assert set(data) == {"owner", "run_id", "started", "heartbeat", "ttl"}
    assert data['owner'] == "alice@laptop"
    assert data['run_id'] == res['run_id']
    assert data['ttl'] == 600
    assert before - 1 <= data['heartbeat'] <= after + 1
    assert ISO_RE.match(data['started'])
    assert data['started'] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(data['heartbeat']))
    # created through a temporary file: nothing else is left next to the lock
    assert leftovers(lock) == []
    assert os.stat(lock).st_mode & 0o777 == 0o644


def test_acquire_uses_given_run_id(lock):
    run = run_module(dict(path=lock, owner="alice", run_id="my-run-1"))
    assert not run.failed, run.msg
    assert run.result['run_id'] == "my-run-1"
    assert read_json(lock)['run_id'] == "my-run-1"


def test_acquire_creates_missing_directory(tmp_path):
    path = str(tmp_path / "a" / "b" / ".deploy.lock")
    run = run_module(dict(path=path, owner="alice"))
    assert not run.failed, run.msg
    assert os.path.isfile(path)


def test_acquire_again_by_same_run_is_a_no_op(lock):
    first = run_module(dict(path=lock, owner="alice", run_id="r1"))
    content = read_json(lock)
    again = run_module(dict(path=lock, owner="alice", run_id="r1"))
    assert not again.failed, again.msg
    assert again.result['changed'] is False
    assert again.result['holder'] == content
    assert read_json(lock) == content
    assert first.result['changed'] is True


def test_second_acquire_fails_at_once_naming_holder(lock):
    first = run_module(dict(path=lock, owner="alice@laptop", run_id="run-alice-1"))
    assert not first.failed
    held = read_json(lock)
    second = run_module(dict(path=lock, owner="bob@desk", run_id="run-bob-2"))
    assert second.failed
    assert second.seconds < 0.5
    msg = second.msg
    assert "alice@laptop" in msg
    assert held['started'] in msg
    assert "run-alice-1" in msg
    assert "is held by" in msg
    assert "waited" not in msg
    assert second.result['holder'] == held
    assert second.result['taken_over'] is False
    # the lock still belongs to the first run
    assert read_json(lock) == held


def test_second_acquire_with_wait_fails_after_about_wait_seconds(lock):
    write_lock(lock, owner="alice@laptop", run_id="run-alice-1", age=1)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", wait=1))
    assert run.failed
    assert run.seconds >= 0.9
    assert run.seconds < 5
    assert "(waited 1s)" in run.msg
    assert "alice@laptop" in run.msg and "run-alice-1" in run.msg
    assert read_json(lock)['run_id'] == "run-alice-1"


def test_failed_wait_reports_waited_seconds(lock):
    write_lock(lock, owner="alice@laptop", run_id="run-alice-1", age=1)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", wait=1))
    assert run.failed
    assert run.result['waited'] >= 0.9


def test_acquire_with_wait_succeeds_when_holder_releases(lock):
    write_lock(lock, owner="alice", run_id="run-alice-1", age=1)

    def release():
        time.sleep(0.2)
        os.unlink(lock)

    thread = threading.Thread(target=release)
    thread.start()
    try:
        run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", wait=5))
    finally:
        thread.join()
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    assert run.result['taken_over'] is False
    assert 0.2 <= run.result['waited'] < 5
    assert read_json(lock)['run_id'] == "run-bob-2"


def test_fresh_lock_within_ttl_is_not_taken_over(lock):
    held = write_lock(lock, owner="alice", run_id="run-alice-1", age=50)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", ttl=60))
    assert run.failed
    assert run.result['taken_over'] is False
    assert read_json(lock) == held


def test_abandoned_lock_is_taken_over(lock, tmp_path):
    audit = str(tmp_path / "log" / "deploy.jsonl")
    held = write_lock(lock, owner="alice@laptop", run_id="run-alice-1", age=120, started="2026-11-25T17:40:02Z")
    run = run_module(dict(path=lock, owner="bob@desk", run_id="run-bob-2", ttl=60, audit_log=audit))
    assert not run.failed, run.msg
    res = run.result
    assert res['changed'] is True
    assert res['taken_over'] is True
    assert res['holder'] == held
    # the lock is now ours
    data = read_json(lock)
    assert data['owner'] == "bob@desk" and data['run_id'] == "run-bob-2" and data['ttl'] == 60
    assert abs(data['heartbeat'] - time.time()) < 5
    # reported as a warning naming the previous holder
    assert len(run.warnings) == 1
    assert "took over" in run.warnings[0]
    assert "alice@laptop" in run.warnings[0] and "run-alice-1" in run.warnings[0]
    # and as an audit line
    lines = audit_lines(audit)
    assert len(lines) == 1
    entry = lines[0]
    assert entry['event'] == "lock_takeover"
    assert entry['previous_owner'] == "alice@laptop"
    assert entry['previous_run_id'] == "run-alice-1"
    assert entry['previous_started'] == "2026-11-25T17:40:02Z"
    assert entry['by'] == "bob@desk"
    assert entry['run_id'] == "run-bob-2"
    assert ISO_RE.match(entry['time'])
    assert 115 <= entry['heartbeat_age_s'] <= 130
    assert os.stat(audit).st_mode & 0o777 == 0o640
    # the abandoned lock moved aside was cleaned up
    assert leftovers(lock) == []


def test_takeover_without_audit_log(lock):
    write_lock(lock, owner="alice", run_id="run-alice-1", age=1000)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", ttl=900))
    assert not run.failed, run.msg
    assert run.result['taken_over'] is True
    assert read_json(lock)['run_id'] == "run-bob-2"
    assert leftovers(lock) == []


def test_takeover_appends_to_existing_audit_log(lock, tmp_path):
    audit = tmp_path / "deploy.jsonl"
    audit.write_text('{"action": "deploy", "site": "blog"}\n')
    write_lock(lock, owner="alice", run_id="run-alice-1", age=1000)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", ttl=900, audit_log=str(audit)))
    assert not run.failed, run.msg
    lines = audit_lines(str(audit))
    assert [line.get('event') for line in lines] == [None, "lock_takeover"]


def test_garbage_lock_file_is_taken_over(lock, tmp_path):
    """An unreadable lock has no heartbeat (0): it counts as abandoned."""
    os.makedirs(os.path.dirname(lock))
    with open(lock, "w") as handle:
        handle.write("{not json")
    audit = str(tmp_path / "deploy.jsonl")
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", audit_log=audit))
    assert not run.failed, run.msg
    assert run.result['taken_over'] is True
    assert run.result['holder'] == {}
    assert any("unreadable lock file" in w for w in run.warnings)
    assert read_json(lock)['run_id'] == "run-bob-2"
    entry = audit_lines(audit)[0]
    assert entry['event'] == "lock_takeover"
    assert entry['previous_owner'] is None


@pytest.mark.parametrize("content", ["", "[1, 2]", "null", '"text"'])
def test_non_mapping_lock_file_is_taken_over(lock, content):
    os.makedirs(os.path.dirname(lock))
    with open(lock, "w") as handle:
        handle.write(content)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2"))
    assert not run.failed, run.msg
    assert run.result['taken_over'] is True
    assert read_json(lock)['run_id'] == "run-bob-2"


def test_lock_with_non_numeric_heartbeat_is_handled(lock):
    os.makedirs(os.path.dirname(lock))
    with open(lock, "w") as handle:
        json.dump(dict(owner="alice", run_id="run-alice-1", started="x", heartbeat="yesterday", ttl=900), handle)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2"))
    # either outcome is acceptable, as long as the module answers
    assert run.failed or run.result['taken_over'] is True


# --------------------------------------------------------------------------
# refreshed
# --------------------------------------------------------------------------

def test_refresh_by_holder_bumps_heartbeat(lock):
    held = write_lock(lock, owner="alice", run_id="run-alice-1", age=300)
    run = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"))
    assert not run.failed, run.msg
    data = read_json(lock)
    assert data['heartbeat'] > held['heartbeat'] + 250
    assert abs(data['heartbeat'] - time.time()) < 5
    for key in ("owner", "run_id", "started", "ttl"):
        assert data[key] == held[key]
    assert run.result['holder']['run_id'] == "run-alice-1"
    assert leftovers(lock) == []


def test_refresh_reports_holder_as_found(lock):
    held = write_lock(lock, owner="alice", run_id="run-alice-1", age=300)
    run = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"))
    assert not run.failed, run.msg
    assert run.result['holder'] == held


def test_refresh_keeps_lock_from_being_taken_over(lock):
    write_lock(lock, owner="alice", run_id="run-alice-1", age=100)
    assert not run_module(dict(path=lock, state="refreshed", run_id="run-alice-1")).failed
    other = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", ttl=60))
    assert other.failed
    assert read_json(lock)['run_id'] == "run-alice-1"


def test_refresh_by_run_that_lost_the_lock_fails_naming_new_holder(lock):
    taken = write_lock(lock, owner="bob@desk", run_id="run-bob-2", started="2026-11-25T18:00:00Z")
    run = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"))
    assert run.failed
    assert "no longer held by run run-alice-1" in run.msg
    assert "bob@desk" in run.msg and "run-bob-2" in run.msg and "2026-11-25T18:00:00Z" in run.msg
    assert read_json(lock) == taken


def test_refresh_when_lock_is_gone_fails(lock):
    os.makedirs(os.path.dirname(lock))
    run = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"))
    assert run.failed
    assert "lock file is gone" in run.msg
    assert not os.path.exists(lock)


def test_refresh_of_garbage_lock_fails(lock):
    os.makedirs(os.path.dirname(lock))
    with open(lock, "w") as handle:
        handle.write("garbage")
    run = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"))
    assert run.failed
    assert "unreadable lock file" in run.msg


def test_refresh_requires_run_id(lock):
    write_lock(lock)
    run = run_module(dict(path=lock, state="refreshed"))
    assert run.failed
    assert "run_id" in run.msg


# --------------------------------------------------------------------------
# released
# --------------------------------------------------------------------------

def test_release_by_other_run_leaves_lock(lock):
    held = write_lock(lock, owner="alice", run_id="run-alice-1")
    run = run_module(dict(path=lock, state="released", run_id="run-bob-2"))
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.result['holder'] == held
    assert read_json(lock) == held


def test_release_by_holder_removes_lock(lock):
    acquired = run_module(dict(path=lock, owner="alice"))
    run = run_module(dict(path=lock, state="released", run_id=acquired.result['run_id']))
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    assert run.result['holder']['owner'] == "alice"
    assert not os.path.lexists(lock)


def test_release_without_lock_is_a_no_op(lock):
    run = run_module(dict(path=lock, state="released", run_id="run-alice-1"))
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.result['holder'] is None


def test_released_lock_can_be_acquired_by_next_run(lock):
    first = run_module(dict(path=lock, owner="alice"))
    assert not run_module(dict(path=lock, state="released", run_id=first.result['run_id'])).failed
    second = run_module(dict(path=lock, owner="bob"))
    assert not second.failed, second.msg
    assert second.result['taken_over'] is False
    assert read_json(lock)['owner'] == "bob"


def test_release_requires_run_id(lock):
    run = run_module(dict(path=lock, state="released"))
    assert run.failed
    assert "run_id" in run.msg


# --------------------------------------------------------------------------
# check mode
# --------------------------------------------------------------------------

def test_check_mode_acquire_writes_nothing(lock):
    os.makedirs(os.path.dirname(lock))
    run = run_module(dict(path=lock, owner="alice"), check_mode=True)
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    assert not os.path.lexists(lock)
    assert os.listdir(os.path.dirname(lock)) == []


def test_check_mode_acquire_creates_no_directory(tmp_path):
    path = str(tmp_path / "missing" / ".deploy.lock")
    run = run_module(dict(path=path, owner="alice"), check_mode=True)
    assert not run.failed, run.msg
    assert not os.path.exists(os.path.dirname(path))


def test_check_mode_acquire_in_missing_directory_reports_change(tmp_path):
    path = str(tmp_path / "missing" / ".deploy.lock")
    run = run_module(dict(path=path, owner="alice"), check_mode=True)
    assert run.result['changed'] is True


def test_check_mode_takeover_writes_nothing(lock, tmp_path):
    audit = str(tmp_path / "deploy.jsonl")
    held = write_lock(lock, owner="alice", run_id="run-alice-1", age=1000)
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", ttl=60, audit_log=audit), check_mode=True)
    assert not run.failed, run.msg
    assert run.result['taken_over'] is True
    assert run.result['changed'] is True
    assert read_json(lock) == held
    assert not os.path.exists(audit)
    assert leftovers(lock) == []


def test_check_mode_held_lock_fails_without_waiting(lock):
    held = write_lock(lock, owner="alice", run_id="run-alice-1")
    run = run_module(dict(path=lock, owner="bob", run_id="run-bob-2", wait=30), check_mode=True)
    assert run.failed
    assert run.seconds < 1
    assert "alice" in run.msg
    assert read_json(lock) == held


def test_check_mode_refresh_and_release_write_nothing(lock):
    held = write_lock(lock, owner="alice", run_id="run-alice-1", age=300)
    refresh = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"), check_mode=True)
    assert not refresh.failed, refresh.msg
    assert read_json(lock) == held
    release = run_module(dict(path=lock, state="released", run_id="run-alice-1"), check_mode=True)
    assert not release.failed, release.msg
    assert release.result['changed'] is True
    assert read_json(lock) == held


def test_check_mode_refresh_without_lock_succeeds(lock):
    """A check-mode acquire wrote nothing, so the check-mode refresh finds no lock."""
    run = run_module(dict(path=lock, state="refreshed", run_id="run-alice-1"), check_mode=True)
    assert not run.failed, run.msg
    assert not os.path.exists(lock)


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [dict(ttl=0), dict(ttl=-5), dict(wait=-1)])
def test_bad_ttl_or_wait_fails(lock, extra):
    args = dict(path=lock, owner="alice")
    args.update(extra)
    run = run_module(args)
    assert run.failed
    assert "ttl must be >= 1 and wait >= 0" in run.msg
    assert not os.path.exists(lock)
