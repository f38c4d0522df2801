# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run did, on the controller: the audit records of a roll, a rollback
or a removal, an audit record as a line of text, what each host serves after
its run, the message of a failed roll, and the report the playbooks print.
Used by the ``onebox.deploy`` report filters (``plugins/filter/report.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PROBE_KEYS = ("sent", "failed", "errors", "p50_ms", "p99_ms", "max_ms")


def audit_records(result, sites, preflight, action="deploy", owner="unknown", run_id=None, targets=None):
    """One record per site of a ``rolling_restart`` run over ``sites`` (in
    roll order): who, from and to which release, time to ready, the probe's
    numbers, the outcome and, after a failure, what the rollback did."""
    result = result or {}
    if result.get("skipped") or not sites:
        return []
    targets = targets or {}
    results = result.get("results") or []
    rollback = dict((entry.get("name"), entry) for entry in result.get("rollback") or [])
    probe = result.get("probe")
    any_unit_failed = any(r.get("status") not in ("ready", "would_restart", "would_wait") for r in results)
    records = []
    for index, site in enumerate(sites):
        name = site["name"]
        state = (preflight or {}).get(name) or {}
        record = dict(
            action=action, site=name, by=owner, run_id=run_id, strategy=site.get("strategy", "restart"),
            from_version=state.get("current_release"), to_version=targets.get(name) or site.get("version"),
            time_to_ready_s=None, time_to_stop_s=None, outcome="not_started", serving=state.get("current_release"),
        )
        if index < len(results):
            unit = results[index]
            record["time_to_ready_s"] = unit.get("time_to_ready")
            record["time_to_stop_s"] = unit.get("time_to_stop")
            back = rollback.get(unit.get("name"))
            if unit.get("status") == "ready":
                record["outcome"] = "success"
                record["serving"] = record["to_version"]
                if result.get("failed") and not any_unit_failed:
                    record["outcome"] = "probe_failed"
            elif unit.get("status") in ("would_restart", "would_wait"):
                # check mode: nothing changed; what serves is what served
                record["outcome"] = "would_roll"
            else:
                record["outcome"] = "failed"
                record["serving"] = None
                record["reason"] = unit.get("reason")
                record["given_up_after_s"] = unit.get("elapsed")
            if back is not None:
                record["rollback"] = dict((k, back.get(k)) for k in ("status", "version", "time_to_stop", "time_to_ready",
                                                                     "time_to_recover", "reason"))
                if back.get("status") == "ready":
                    record["outcome"] = "rolled_back"
                    record["serving"] = back.get("version")
        if probe:
            record["probe"] = dict((k, probe.get(k)) for k in PROBE_KEYS)
        record["roll_duration_s"] = result.get("duration")
        records.append(record)
    return records


def serving(sites, host, records=None):
    """``{site: release}`` each selected site serves after this host's run:
    what its roll record says (new release, or the one it was rolled back
    to), else what served before."""
    out = dict((site["name"], ((host or {}).get(site["name"]) or {}).get("current_release")) for site in sites)
    for record in records or []:
        if record.get("site") in out and record.get("outcome") != "not_started":
            out[record["site"]] = record.get("serving")
    return out


def deploy_failure(result, host, scope="site"):
    """The message of a failed roll on *host*, saying what serves now."""
    result = result or {}
    msg = "deploy on %s failed: %s" % (host, result.get("msg"))
    rolled = result.get("rolled") or []
    units = result.get("results") or []
    if units and all(unit.get("status") == "ready" for unit in units):
        return msg + " Every site rolled and serves its new release; the probe counted the failures above."
    if rolled and scope != "all":
        msg += (" Sites rolled before it keep their new release: %s (onebox_rollback_scope: all returns them too)."
                % ", ".join(rolled))
    return msg


def failed_hosts(hostvars, hosts):
    """The hosts of *hosts* whose deploy failed in this run, with the message
    (the ``failure`` of each host's ``onebox_deploy_result``)."""
    out = []
    for host in hosts:
        failure = ((hostvars[host] or {}).get("onebox_deploy_result") or {}).get("failure")
        if failure:
            out.append(failure)
    return out


def serving_report(hostvars, hosts):
    """One line per host: the release each of its sites serves after the run
    (the ``serving`` of the ``onebox_deploy_result`` fact each host notes), or
    why there is none; in check mode also the release each site would roll to
    (its ``planned``)."""
    lines = []
    for host in hosts:
        result = (hostvars[host] or {}).get("onebox_deploy_result") or {}
        serving = result.get("serving")
        planned = result.get("planned") or {}
        if serving is None:
            lines.append("%s: not deployed in this run (it failed before its roll, or was not reached)" % host)
            continue
        releases = []
        for name, release in sorted(serving.items()):
            text = "%s %s" % (name, release or "(nothing)")
            if name in planned:
                text += " (check mode: would roll to %s)" % planned[name]
            releases.append(text)
        lines.append("%s: %s" % (host, ", ".join(releases) or "no sites"))
    return lines


def removal_records(removed, owner="unknown", run_id=None):
    """One audit record per site that ``onebox.deploy.site_files`` removed
    (``state: absent``); sites that were not on the host get none."""
    records = []
    for name, entry in sorted((removed or {}).items()):
        if not entry.get("changed"):
            continue
        records.append(dict(action="remove", site=name, by=owner, run_id=run_id, outcome="removed",
                            stopped=entry.get("stopped") or [], removed=entry.get("removed") or [],
                            account_deleted=bool(entry.get("account_deleted")), purged=entry.get("purged")))
    return records


def audit_line(record):
    """One audit record as a line of text for people."""
    if record.get("action") == "remove":
        return "%s remove %s: %s (stopped %s; account %s%s), by %s (run %s)" % (
            record.get("time"), record.get("site"), record.get("outcome"), ", ".join(record.get("stopped") or [])
            or "nothing", "deleted" if record.get("account_deleted") else "kept",
            "; purged %s" % record["purged"] if record.get("purged") else "", record.get("by"), record.get("run_id"))
    if record.get("event") == "lock_takeover":
        return "%s lock takeover by %s (run %s) of %s's abandoned lock (run %s, started %s, silent %ss)" % (
            record.get("time"), record.get("by"), record.get("run_id"), record.get("previous_owner"),
            record.get("previous_run_id"), record.get("previous_started"), record.get("heartbeat_age_s"))
    first = record.get("action") == "deploy" and record.get("from_version") is None
    parts = ["%s %s %s %s -> %s: %s" % (
        record.get("time"), record.get("action"), record.get("site"),
        "(first deploy)" if first else record.get("from_version"), record.get("to_version"), record.get("outcome"))]
    if record.get("time_to_ready_s") is not None:
        parts.append("ready in %s s" % record["time_to_ready_s"])
    back = record.get("rollback")
    if back:
        parts.append("rollback %s to %s" % (back.get("status"), back.get("version")))
    probe = record.get("probe")
    if probe:
        parts.append("probe %s/%s failed, max %s ms" % (probe.get("failed"), probe.get("sent"), probe.get("max_ms")))
    parts.append("by %s (run %s)" % (record.get("by"), record.get("run_id")))
    return ", ".join(parts)


__all__ = ["PROBE_KEYS", "audit_line", "audit_records", "deploy_failure", "failed_hosts", "removal_records",
           "serving", "serving_report"]
