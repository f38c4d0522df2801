# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each site of a host is doing right now, read-only: its ``current``
release, the states of its units (its job timers and their services too),
since when, how often systemd restarted it, its memory, its last deploy or rollback from the audit log, and one
``/readyz`` request. Used by ``onebox.deploy.site_status``.

Nothing here changes the host. A site whose service runs no process is not
asked for ``/readyz``: a request to a socket-activated port would start it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.onebox.deploy.plugins.module_utils.files import tail_json_records
from ansible_collections.onebox.deploy.plugins.module_utils.readiness import http_get, substitute_instance
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import RUNNING_STATES
from ansible_collections.onebox.deploy.plugins.module_utils.workers import procs_path, read_pids

#: The properties read of every unit, in one ``systemctl show`` call for all.
STATUS_PROPS = ("ActiveState", "SubState", "ActiveEnterTimestamp", "InactiveEnterTimestamp", "NRestarts", "MemoryCurrent", "MainPID",
                "ControlGroup")
#: The audit log's tail that is read for the last record of each site.
AUDIT_TAIL_BYTES = 512 * 1024
#: Actions of the audit log that count as a site's last deploy.
DEPLOY_ACTIONS = ("deploy", "rollback", "remove")
#: MemoryCurrent= when systemd has no number (no accounting, no process).
NO_NUMBER = ("", "[not set]", "18446744073709551615")


def last_records(path, names, tail=AUDIT_TAIL_BYTES):
    """``{site: record or None}``: the newest deploy, rollback or removal
    record of each site in the last *tail* bytes of the audit log at *path*."""
    out = dict((name, None) for name in names)
    for record in tail_json_records(path, tail):
        if record.get("site") in out and record.get("action") in DEPLOY_ACTIONS:
            out[record["site"]] = record
    return out


def number(value):
    """An integer property of ``systemctl show``, or None when systemd has none."""
    value = (value or "").strip()
    if value in NO_NUMBER or not value.isdigit():
        return None
    return int(value)


def rss_bytes(pids, proc="/proc"):
    """The resident memory of the processes *pids* (their ``VmRSS``), or None
    when none of them could be read."""
    total = None
    for pid in pids:
        try:
            with open(os.path.join(proc, str(pid), "status")) as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total = (total or 0) + int(line.split()[1]) * 1024
                        break
        except (IOError, OSError, ValueError, IndexError):
            continue
    return total


def unit_memory(props, find=procs_path, proc="/proc"):
    """``(bytes, source)`` of a unit: systemd's ``MemoryCurrent`` (``cgroup``),
    else the resident memory of the processes in its cgroup (``rss``; cgroup v1
    hosts have no ``MemoryCurrent``), else ``(None, None)``."""
    current = number(props.get("MemoryCurrent"))
    if current is not None:
        return current, "cgroup"
    path = find(props.get("ControlGroup"))
    rss = rss_bytes(sorted(read_pids(path)), proc) if path else None
    return (rss, "rss") if rss is not None else (None, None)


def unit_state(name, props, find=procs_path, proc="/proc"):
    """One unit's state as the status reports it."""
    props = props or {}
    running = props.get("ActiveState") in RUNNING_STATES
    memory, source = unit_memory(props, find, proc) if running and name.endswith(".service") else (None, None)
    return dict(unit=name, active=props.get("ActiveState") or "unknown", sub=props.get("SubState") or "unknown",
                since=props.get("ActiveEnterTimestamp" if running else "InactiveEnterTimestamp") or None,
                restarts=number(props.get("NRestarts")),
                memory_bytes=memory, memory_source=source, main_pid=number(props.get("MainPID")))


def readyz(site, units, http=http_get, timeout=2.0):
    """One ``/readyz`` request per running service unit: ``{unit: {result, ms}}``.
    A unit without a running process is not asked (the socket would start it)."""
    out = {}
    for unit in units:
        if unit["active"] not in RUNNING_STATES or not unit["main_pid"]:
            continue
        instance = None
        if "@" in unit["unit"]:
            instance = unit["unit"].split("@", 1)[1][:-len(".service")]
        url = substitute_instance(site.get("readiness_url"), instance)
        if not url:
            continue
        result, seconds = http(url, timeout=timeout)
        out[unit["unit"]] = dict(url=url, result=result, ms=round(seconds * 1000.0, 1))
    return out


def read_status(systemd, sites, audit_log=None, http=http_get, timeout=2.0):
    """``{site: status}`` of the normalised *sites* (strategy overlap: both
    instances of the template unit)."""
    units = {}
    jobs = {}
    for site in sites:
        name = site["name"]
        units[name] = ["%s.socket" % name] + list(site.get("service_units") or ["%s.service" % name])
        jobs[name] = [u for job in site.get("jobs") or [] for u in (job["timer_unit"], job["service_unit"])]
    props = systemd.show_many(sorted(set(u for names in list(units.values()) + list(jobs.values()) for u in names)),
                              STATUS_PROPS)
    records = last_records(audit_log, [s["name"] for s in sites]) if audit_log else {}
    out = {}
    for site in sites:
        name = site["name"]
        current = os.path.join(site.get("site_dir") or "", "current")
        release = os.path.basename(os.readlink(current).rstrip("/")) if os.path.islink(current) else None
        states = [unit_state(unit, props.get(unit)) for unit in units[name]]
        services = states[1:]
        running = [u for u in services if u["active"] in RUNNING_STATES]
        out[name] = dict(
            site=name,
            release=site.get("version"),
            current=release,
            units=states,
            since=(running or services or [{}])[0].get("since"),
            restarts=sum(u["restarts"] or 0 for u in services),
            memory_bytes=(sum(u["memory_bytes"] for u in running if u["memory_bytes"] is not None)
                          if any(u["memory_bytes"] is not None for u in running) else None),
            last_deploy=records.get(name),
            readyz=readyz(site, services, http=http, timeout=timeout),
            # Its scheduled jobs: each timer, then the service it starts.
            jobs=[unit_state(unit, props.get(unit)) for unit in jobs[name]],
        )
    return out


__all__ = ["AUDIT_TAIL_BYTES", "DEPLOY_ACTIONS", "STATUS_PROPS", "last_records", "number", "read_status", "readyz",
           "rss_bytes", "unit_memory", "unit_state"]
