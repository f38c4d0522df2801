# -*- coding: utf-8 -*-
"""What a host's sites run now (plugins/module_utils/status.py): units read in
one systemctl call, memory from systemd or from the cgroup's processes, the
last deploy from the audit log, and /readyz asked only of running services."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.onebox.deploy.plugins.module_utils import status as ST


class Systemd(object):
    def __init__(self, props):
        self.props = props
        self.asked = []

    def show_many(self, units, props):
        self.asked.append((list(units), tuple(props)))
        return dict((unit, self.props.get(unit, {})) for unit in units)


def site(tmp_path, name="blog", current="1.0.1", strategy="restart"):
    site_dir = tmp_path / name
    (site_dir / "releases" / "1.0.1").mkdir(parents=True)
    if current:
        os.symlink("releases/%s" % current, str(site_dir / "current"))
    units = ["%s@19001.service" % name, "%s@19002.service" % name] if strategy == "overlap" else [
        "%s.service" % name]
    url = "http://127.0.0.1:{instance}/readyz" if strategy == "overlap" else "http://127.0.0.1:19001/readyz"
    return dict(name=name, version="1.0.1", site_dir=str(site_dir), service_units=units, strategy=strategy,
                readiness_url=url)


def running(pid, memory="12582912", restarts="2"):
    return {"ActiveState": "active", "SubState": "running", "ActiveEnterTimestamp": "Mon 2026-12-07 06:41:12 UTC",
            "NRestarts": restarts, "MemoryCurrent": memory, "MainPID": str(pid), "ControlGroup": "/system.slice/x"}


def test_a_running_site_reads_its_units_memory_last_deploy_and_readyz(tmp_path):
    log = tmp_path / "deploy.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        dict(action="deploy", site="blog", to_version="1.0.0", outcome="success"),
        dict(event="lock_takeover", by="x"),
        "not a record",
        dict(action="rollback", site="shop", to_version="9", outcome="success"),
        dict(action="deploy", site="blog", from_version="1.0.0", to_version="1.0.1", outcome="success"),
    ]) + "\nbroken {\n")
    systemd = Systemd({"blog.socket": {"ActiveState": "active", "SubState": "running"},
                       "blog.service": running(42)})
    asked = []

    def http(url, timeout):
        asked.append(url)
        return 200, 0.0012

    out = ST.read_status(systemd, [site(tmp_path)], str(log), http=http)["blog"]
    assert len(systemd.asked) == 1 and systemd.asked[0][0] == ["blog.service", "blog.socket"]
    assert out["current"] == "1.0.1" and out["release"] == "1.0.1"
    assert out["since"] == "Mon 2026-12-07 06:41:12 UTC" and out["restarts"] == 2
    assert out["memory_bytes"] == 12582912 and out["units"][1]["memory_source"] == "cgroup"
    assert out["last_deploy"]["to_version"] == "1.0.1"
    assert out["readyz"] == {"blog.service": {"url": "http://127.0.0.1:19001/readyz", "result": 200, "ms": 1.2}}
    assert asked == ["http://127.0.0.1:19001/readyz"]


def test_a_stopped_site_is_not_asked_for_readyz_its_socket_would_start_it(tmp_path):
    systemd = Systemd({"blog.socket": {"ActiveState": "active", "SubState": "listening"},
                       "blog.service": {"ActiveState": "inactive", "SubState": "dead", "MainPID": "0", "ActiveEnterTimestamp": "a",
                                        "InactiveEnterTimestamp": "Mon 2026-12-07 06:50:00 UTC",
                                        "NRestarts": "0", "MemoryCurrent": "[not set]"}})

    def http(url, timeout):
        raise AssertionError("asked %s" % url)

    out = ST.read_status(systemd, [site(tmp_path, current=None)], str(tmp_path / "none.jsonl"), http=http)["blog"]
    assert out["current"] is None and out["readyz"] == {} and out["memory_bytes"] is None
    assert out["last_deploy"] is None and out["restarts"] == 0
    assert out["since"] == "Mon 2026-12-07 06:50:00 UTC"  # since it stopped


def test_overlap_asks_each_running_instance_on_its_own_port(tmp_path):
    systemd = Systemd({"blog.socket": {"ActiveState": "active"}, "blog@19002.service": running(7),
                       "blog@19001.service": {"ActiveState": "inactive", "SubState": "dead", "MainPID": "0"}})
    out = ST.read_status(systemd, [site(tmp_path, strategy="overlap")], None, http=lambda url, timeout: (503, 0.002))
    assert out["blog"]["readyz"] == {"blog@19002.service": {"url": "http://127.0.0.1:19002/readyz", "result": 503,
                                                            "ms": 2.0}}


def test_memory_without_memory_current_is_the_rss_of_the_cgroup_processes(tmp_path):
    proc = tmp_path / "proc"
    for pid, kib in ((10, 1000), (11, 24)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "status").write_text("Name:\tx\nVmRSS:\t    %d kB\n" % kib)
    procs = tmp_path / "cgroup.procs"
    procs.write_text("10\n11\n12\n")   # 12 is gone
    props = running(10, memory="[not set]")
    assert ST.unit_memory(props, find=lambda cg: str(procs), proc=str(proc)) == (1024 * 1024, "rss")
    assert ST.unit_memory(props, find=lambda cg: None, proc=str(proc)) == (None, None)
    assert ST.unit_memory(dict(props, MemoryCurrent="18446744073709551615"), find=lambda cg: None) == (None, None)


def test_last_records_reads_the_tail_and_skips_a_cut_first_line(tmp_path):
    log = tmp_path / "deploy.jsonl"
    lines = [json.dumps(dict(action="deploy", site="blog", to_version=str(i), pad="x" * 50)) for i in range(100)]
    log.write_text("\n".join(lines) + "\n")
    got = ST.last_records(str(log), ["blog", "shop"], tail=500)
    assert got == {"blog": json.loads(lines[-1]), "shop": None}
    assert ST.last_records(str(tmp_path / "missing"), ["blog"]) == {"blog": None}


def test_job_timers_and_their_services_are_read_in_the_same_call_and_never_asked_for_readyz(tmp_path):
    blog = dict(site(tmp_path), jobs=[dict(name="tick", timer_unit="blog_tick.timer", service_unit="blog_tick.service")])
    systemd = Systemd({"blog.socket": {"ActiveState": "active", "SubState": "running"}, "blog.service": running(42),
                       "blog_tick.timer": {"ActiveState": "active", "SubState": "waiting"},
                       "blog_tick.service": {"ActiveState": "activating", "SubState": "start", "MainPID": "77"}})
    asked = []

    def http(url, timeout):
        asked.append(url)
        return 200, 0.001

    out = ST.read_status(systemd, [blog], http=http)["blog"]
    assert len(systemd.asked) == 1
    assert systemd.asked[0][0] == ["blog.service", "blog.socket", "blog_tick.service", "blog_tick.timer"]
    assert [(u["unit"], u["active"], u["sub"]) for u in out["jobs"]] == [
        ("blog_tick.timer", "active", "waiting"), ("blog_tick.service", "activating", "start")]
    # the site's own figures leave its jobs out
    assert [u["unit"] for u in out["units"]] == ["blog.socket", "blog.service"] and out["restarts"] == 2
    assert asked == ["http://127.0.0.1:19001/readyz"]
