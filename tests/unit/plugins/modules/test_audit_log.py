# -*- coding: utf-8 -*-
"""onebox.deploy.audit_log (plugins/modules/audit_log.py): appending records and
querying them. The module runs in-process on real files under tmp_path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.onebox.deploy.plugins.modules import audit_log as audit_log_module
from module_runner import invoke

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def run_module(module, args, check_mode=False):
    """Run ``module.main()`` in-process; returns (failed, result)."""
    return invoke(module.main, args, check_mode)[:2]


# --------------------------------------------------------------------------
# audit_log
# --------------------------------------------------------------------------

def audit(path, **kw):
    args = dict(path=str(path))
    args.update(kw)
    return args


def lines(path):
    with open(str(path)) as handle:
        return [json.loads(line) for line in handle]


def test_audit_append_two_entries(tmp_path):
    path = tmp_path / "log" / "onebox" / "deploy.jsonl"
    entries = [
        dict(action="deploy", site="blog", by="alice", from_version="1.4.1", to_version="1.4.2", outcome="success"),
        dict(action="deploy", site="shop", by="alice", time="2026-01-01T00:00:00Z", outcome="failed"),
    ]
    failed, res = run_module(audit_log_module, audit(path, entries=entries))
    assert not failed, res.get('msg')
    assert res['changed'] is True
    assert res['written'] == 2
    got = lines(path)
    assert len(got) == 2
    assert ISO_RE.match(got[0]['time'])
    assert dict((k, v) for k, v in got[0].items() if k != 'time') == entries[0]
    assert got[1]['time'] == "2026-01-01T00:00:00Z"   # an existing time is kept
    assert got[1]['site'] == "shop"
    assert os.stat(str(path)).st_mode & 0o777 == 0o640
    assert os.stat(str(path.parent)).st_mode & 0o777 == 0o750


def test_audit_appends_to_existing_file(tmp_path):
    path = tmp_path / "deploy.jsonl"
    path.write_text('{"site": "old", "time": "t0"}\n')
    failed, res = run_module(audit_log_module, audit(path, entries=[dict(site="blog")]))
    assert not failed, res.get('msg')
    assert [r['site'] for r in lines(path)] == ["old", "blog"]


def test_audit_empty_entries_write_nothing(tmp_path):
    path = tmp_path / "deploy.jsonl"
    failed, res = run_module(audit_log_module, audit(path, entries=[]))
    assert not failed
    assert res['changed'] is False and res['written'] == 0
    assert not path.exists()


def test_audit_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "log" / "deploy.jsonl"
    failed, res = run_module(audit_log_module, audit(path, entries=[dict(site="blog")]), check_mode=True)
    assert not failed
    assert res['changed'] is True
    assert res['written'] == 0
    assert not (tmp_path / "log").exists()


def write_history(path):
    records = []
    for i in range(1, 6):
        records.append(dict(site="blog", to_version="1.%d" % i, time="2026-01-0%dT00:00:00Z" % i))
        if i % 2:
            records.append(dict(site="shop", to_version="2.%d" % i))
    records.append(dict(event="lock_takeover", by="bob"))
    with open(str(path), "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return records


def test_audit_query_site_with_limit_returns_newest_oldest_first(tmp_path):
    path = tmp_path / "deploy.jsonl"
    write_history(path)
    failed, res = run_module(audit_log_module, audit(path, site="blog", limit=3))
    assert not failed, res.get('msg')
    assert res['changed'] is False
    assert [r['to_version'] for r in res['records']] == ["1.3", "1.4", "1.5"]
    assert all(r['site'] == "blog" for r in res['records'])


def test_audit_query_without_site_returns_last_records(tmp_path):
    path = tmp_path / "deploy.jsonl"
    records = write_history(path)
    failed, res = run_module(audit_log_module, audit(path, limit=2))
    assert not failed
    assert res['records'] == records[-2:]
    failed, res = run_module(audit_log_module, audit(path))
    assert res['records'] == records   # default limit 20 covers all


def test_audit_query_skips_garbage_lines(tmp_path):
    path = tmp_path / "deploy.jsonl"
    with open(str(path), "w") as handle:
        handle.write('{"site": "blog", "n": 1}\n')
        handle.write("not json at all\n")
        handle.write('{"site": "blog", "n": 2, "trunc\n')
        handle.write("\n")
        handle.write('[1, 2, 3]\n')
        handle.write('"a string"\n')
        handle.write('{"site": "blog", "n": 3}\n')
    failed, res = run_module(audit_log_module, audit(path, site="blog"))
    assert not failed, res.get('msg')
    assert [r['n'] for r in res['records']] == [1, 3]


def test_audit_query_skips_undecodable_line(tmp_path):
    path = tmp_path / "deploy.jsonl"
    with open(str(path), "wb") as handle:
        handle.write(b'{"site": "blog", "n": 1}\n')
        handle.write(b'\xff\xfe\x00garbage\x80\n')
        handle.write(b'{"site": "blog", "n": 2}\n')
    failed, res = run_module(audit_log_module, audit(path, site="blog"))
    assert not failed, res.get('msg')
    assert [r['n'] for r in res['records']] == [1, 2]


def test_audit_query_missing_file_is_empty(tmp_path):
    failed, res = run_module(audit_log_module, audit(tmp_path / "nope.jsonl", site="blog"))
    assert not failed, res.get('msg')
    assert res['records'] == []
    assert res['changed'] is False


def test_audit_query_works_in_check_mode(tmp_path):
    path = tmp_path / "deploy.jsonl"
    write_history(path)
    failed, res = run_module(audit_log_module, audit(path, site="shop", limit=5), check_mode=True)
    assert not failed
    assert [r['to_version'] for r in res['records']] == ["2.1", "2.3", "2.5"]


def test_audit_query_limit_below_one_fails(tmp_path):
    path = tmp_path / "deploy.jsonl"
    write_history(path)
    failed, res = run_module(audit_log_module, audit(path, limit=0))
    assert failed
    assert "limit must be >= 1" in res['msg']


def test_audit_round_trip(tmp_path):
    path = tmp_path / "deploy.jsonl"
    for version in ("1.0", "1.1", "1.2"):
        failed = run_module(audit_log_module, audit(path, entries=[dict(site="blog", to_version=version)]))[0]
        assert not failed
    failed, res = run_module(audit_log_module, audit(path, site="blog", limit=2))
    assert [r['to_version'] for r in res['records']] == ["1.1", "1.2"]
    assert all(ISO_RE.match(r['time']) for r in res['records'])
