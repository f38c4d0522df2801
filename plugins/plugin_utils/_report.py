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

import os

from ansible_collections.onebox.deploy.plugins.plugin_utils._plan import rollback_cmd

PROBE_KEYS = ("sent", "failed", "errors", "p50_ms", "p99_ms", "max_ms")
SNAPSHOT_KEYS = ("name", "path", "bytes", "seconds", "files")


def megabytes(count):
    return "%.1f MB" % ((count or 0) / 1e6)


def new_release_ran(unit):
    """Whether the release of a roll ran against the site's data, from its
    ``rolling_restart`` result (None: the roll never reached it)."""
    if unit is None:
        return "never started"
    if unit.get("status") == "ready" or unit.get("answered"):
        return "started and answered requests"
    return "started, never answered a request"


def deploy_data(site, snapshot, unit, outcome, hooks):
    """The ``data`` of a deploy's audit record: the snapshot taken before the
    roll (or the files not created yet), never restored by a deploy; after a
    roll that did not succeed, what ran against the data since the snapshot."""
    snapshot = snapshot or {}
    out = dict(files=list(site.get("data") or []), restored=False, not_created=list(snapshot.get("not_created") or []),
               snapshot=dict((k, snapshot.get(k)) for k in SNAPSHOT_KEYS) if snapshot.get("taken") else None)
    if snapshot.get("skipped"):
        out["skipped"] = snapshot["skipped"]
    if outcome not in ("success", "would_roll"):
        out["before_roll_hooks"] = len(hooks or [])
        out["new_release"] = new_release_ran(unit)
    return out


def rollback_data(plan, unit, entry, outcome):
    """The ``data`` of a rollback's audit record: restored or not, from which
    snapshot, where the replaced files went; after a failure whether the swap
    was undone."""
    plan = plan or {}
    swap = (unit or {}).get("data")
    out = dict(files=plan.get("files") or [], requested=bool(plan.get("requested")),
               restored=bool(swap) and outcome == "success", last_written_by=plan.get("last_written_by"),
               snapshot=plan.get("snapshot"))
    if swap:
        out["aside"] = swap.get("aside")
        out["swap_seconds"] = swap.get("seconds")
    if (entry or {}).get("data"):
        out["undone"] = entry["data"].get("aside")
    return out


def audit_records(result, sites, preflight, action="deploy", owner="unknown", run_id=None, targets=None, data=None,
                  hooks=None):
    """One record per site of a ``rolling_restart`` run over ``sites`` (in
    roll order): who, from and to which release, time to ready, the probe's
    numbers, the outcome and, after a failure, what the rollback did.

    For a site that declares ``data``, its record's ``data``: for a deploy
    (*data* the ``sites`` of ``onebox.deploy.snapshots``, *hooks* the
    ``before_roll`` hooks that ran) the snapshot taken before the roll and,
    after a failure, what ran against the data since; for a rollback (*data*
    the ``data`` of its plan) whether the data was restored."""
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
        unit = entry = None
        if index < len(results):
            unit = results[index]
            record["time_to_ready_s"] = unit.get("time_to_ready")
            record["time_to_stop_s"] = unit.get("time_to_stop")
            back = entry = rollback.get(unit.get("name"))
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
        if site.get("data"):
            if action == "rollback":
                record["data"] = rollback_data((data or {}).get(name), unit, entry, record["outcome"])
            else:
                record["data"] = deploy_data(site, (data or {}).get(name), unit, record["outcome"], hooks)
        if probe:
            record["probe"] = dict((k, probe.get(k)) for k in PROBE_KEYS)
        record["roll_duration_s"] = result.get("duration")
        records.append(record)
    return records


def deploy_data_notes(records):
    """What a failed deploy did to the data of its sites, one line each: never
    restored by the deploy; what ran against it since the snapshot; the
    command that puts the snapshot back."""
    notes = []
    for record in records or []:
        data = record.get("data")
        if not data or record.get("outcome") in ("success", "would_roll", "probe_failed"):
            continue
        ran = []
        if data.get("before_roll_hooks"):
            ran.append("the before_roll hooks")
        if data.get("new_release") != "never started":
            ran.append("%s (it %s)" % (record.get("to_version"), data.get("new_release")))
        if not ran:
            continue
        files = ", ".join(data.get("files") or [])
        snapshot = data.get("snapshot")
        serving = record.get("serving") or record.get("from_version")
        note = "%s: data not restored: since its snapshot, %s ran against %s" % (
            record.get("site"), " and ".join(ran), files)
        if serving:
            note += ", which %s now serves as they left it" % serving
        if snapshot and serving and record.get("from_version") == serving:
            note += ". To put back the snapshot taken before the deploy (%s, %s): %s" % (
                snapshot.get("path"), megabytes(snapshot.get("bytes")), rollback_cmd(record.get("site"), serving))
        elif not snapshot:
            note += "; no snapshot of it was taken (%s)" % ("not created yet" if data.get("not_created") else "none")
        notes.append(note)
    return notes


def rollback_data_notes(plan, result=None):
    """What a rollback did to the data of its sites, one line each: restored
    from which snapshot and where the replaced files are, or, when it was not
    asked for, that the data stays as the release rolled back wrote it and the
    command that restores the snapshot."""
    plan = plan or {}
    units = dict((unit.get("name"), unit) for unit in (result or {}).get("results") or [])
    notes = []
    for site, target in sorted((plan.get("targets") or {}).items()):
        data = (plan.get("data") or {}).get(site)
        if not data:
            continue
        files = ", ".join(data.get("files") or [])
        snapshot = data.get("snapshot") or {}
        unit_name = next((u.get("name") for u in plan.get("units") or [] if (u.get("data") or {}).get("site") == site),
                         None)
        swap = (units.get(unit_name) or {}).get("data") if unit_name else None
        if data.get("requested"):
            if swap and (units.get(unit_name) or {}).get("status") == "ready":
                notes.append("%s: data restored from the snapshot %s (taken when %s was replaced by %s); the files "
                             "%s wrote are kept in %s" % (site, snapshot.get("path"), snapshot.get("from_version"),
                                                          snapshot.get("to_version"), data.get("last_written_by"),
                                                          swap.get("aside")))
            continue
        if data.get("last_written_by") == target:
            continue
        note = ("%s: data not restored: %s was last written by %s, the release rolled back; %s runs on it as it is"
                % (site, files, data.get("last_written_by"), target))
        if snapshot:
            note += (". To restore the snapshot taken when %s was replaced (%s, %s, %s): %s (what was written since is "
                     "moved to %s/aside/, not deleted)" % (target, snapshot.get("name"), snapshot.get("time"),
                                                           megabytes(snapshot.get("bytes")), data.get("command"),
                                                           os.path.dirname(os.path.dirname(snapshot.get("path")))))
        else:
            note += "; no snapshot of it was taken when %s was replaced, so it cannot be restored" % target
        notes.append(note)
    return notes


def serving(sites, host, records=None):
    """``{site: release}`` each selected site serves after this host's run:
    what its roll record says (new release, or the one it was rolled back
    to), else what served before."""
    out = dict((site["name"], ((host or {}).get(site["name"]) or {}).get("current_release")) for site in sites)
    for record in records or []:
        if record.get("site") in out and record.get("outcome") != "not_started":
            out[record["site"]] = record.get("serving")
    return out


def deploy_failure(result, host, scope="site", records=None):
    """The message of a failed roll on *host*, saying what serves now and,
    for sites with data (their audit *records*), what ran against it."""
    result = result or {}
    msg = "deploy on %s failed: %s" % (host, result.get("msg"))
    rolled = result.get("rolled") or []
    units = result.get("results") or []
    if units and all(unit.get("status") == "ready" for unit in units):
        return msg + " Every site rolled and serves its new release; the probe counted the failures above."
    if rolled and scope != "all":
        msg += (" Sites rolled before it keep their new release: %s (onebox_rollback_scope: all returns them too)."
                % ", ".join(rolled))
    notes = deploy_data_notes(records)
    if notes:
        msg += "\n" + "\n".join(notes)
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


def snapshot_text(entry, check_mode=False):
    """A site's data snapshot of this run, for the report (empty without one)."""
    if not entry:
        return ""
    if entry.get("would"):
        # what the files and their -wal hold on disk: the copy is no larger
        paths = ", ".join(f["path"] for f in entry.get("files") or [])
        return "after a snapshot of %s (at most %s)" % (paths, megabytes(entry.get("bytes")))
    if entry.get("taken"):
        text = "data snapshot before it: %s in %.2f s" % (megabytes(entry.get("bytes")), entry.get("seconds") or 0)
    else:
        text = ""
    if entry.get("not_created"):
        text += "%sdata %s not created yet, nothing to snapshot" % (
            "; " if text else "", ", ".join(entry["not_created"]))
    if entry.get("skipped"):
        text += "%s%s" % ("; " if text else "", entry["skipped"])
    return text


def serving_report(hostvars, hosts):
    """One line per host: the release each of its sites serves after the run
    (the ``serving`` of the ``onebox_deploy_result`` fact each host notes), or
    why there is none; in check mode also the release each site would roll to
    (its ``planned``); with the data snapshot taken (or not) before a roll
    (its ``data``)."""
    lines = []
    for host in hosts:
        result = (hostvars[host] or {}).get("onebox_deploy_result") or {}
        serving = result.get("serving")
        planned = result.get("planned") or {}
        data = result.get("data") or {}
        if serving is None:
            lines.append("%s: not deployed in this run (it failed before its roll, or was not reached)" % host)
            continue
        releases = []
        for name, release in sorted(serving.items()):
            text = "%s %s" % (name, release or "(nothing)")
            snap = snapshot_text(data.get(name))
            if name in planned:
                text += " (check mode: would roll to %s%s)" % (planned[name], " " + snap if snap else "")
            elif snap:
                text += " (%s)" % snap
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


def data_line(action, data):
    """The ``data`` of an audit record, for :func:`audit_line`."""
    if action == "rollback":
        if data.get("restored"):
            return "data restored from %s (replaced files in %s)" % (
                (data.get("snapshot") or {}).get("name"), data.get("aside"))
        if data.get("undone"):
            return "data restore undone (the restored files are in %s)" % data["undone"]
        return "data not restored (last written by %s)" % data.get("last_written_by")
    snapshot = data.get("snapshot")
    text = ("snapshot %s in %s s" % (megabytes(snapshot.get("bytes")), snapshot.get("seconds")) if snapshot
            else "no snapshot")
    if data.get("not_created"):
        text += " (%s not created yet)" % ", ".join(data["not_created"])
    if data.get("new_release"):
        text += ", data not restored (new release %s)" % data["new_release"]
    return text


def audit_line(record):
    """One audit record as a line of text for people."""
    if record.get("action") == "remove":
        return "%s remove %s: %s (stopped %s; account %s%s), by %s (run %s)" % (
            record.get("time"), record.get("site"), record.get("outcome"), ", ".join(record.get("stopped") or [])
            or "nothing", "deleted" if record.get("account_deleted") else "kept",
            "; purged %s" % record["purged"] if record.get("purged") else "", record.get("by"), record.get("run_id"))
    if record.get("action") == "run":
        return "%s run %s %s: %s exited with status %s after %s s: %s, by %s (run %s)" % (
            record.get("time"), record.get("site"), record.get("release"), record.get("command"),
            record.get("exit_status"),
            record.get("seconds"), record.get("outcome"), record.get("by"), record.get("run_id"))
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
    data = record.get("data")
    if data:
        parts.append(data_line(record.get("action"), data))
    probe = record.get("probe")
    if probe:
        parts.append("probe %s/%s failed, max %s ms" % (probe.get("failed"), probe.get("sent"), probe.get("max_ms")))
    parts.append("by %s (run %s)" % (record.get("by"), record.get("run_id")))
    return ", ".join(parts)


#: The columns of the status table, in order.
STATUS_COLUMNS = ("site", "release", "current", "units", "since", "restarts", "memory", "last deploy", "readyz")
STATUS_FORMATS = ("table", "json")


def mebibytes(count):
    return "-" if count is None else "%.1f MiB" % (count / 1048576.0)


def status_row(status):
    """One site's status (M(onebox.deploy.site_status)) as the table's cells."""
    units = ", ".join("%s %s" % (u.get("unit"), u.get("sub") if u.get("active") in ("active", "inactive")
                                 else "%s/%s" % (u.get("active"), u.get("sub")))
                      for u in list(status.get("units") or []) + list(status.get("jobs") or []))
    answers = status.get("readyz") or {}
    readyz = ", ".join("%s in %s ms" % (a.get("result"), a.get("ms")) for _unit, a in sorted(answers.items()))
    record = status.get("last_deploy")
    last = "-"
    if record:
        last = "%s %s %s -> %s %s by %s" % (record.get("time"), record.get("action"),
                                            record.get("from_version") or "(first)", record.get("to_version") or "-",
                                            record.get("outcome"), record.get("by"))
    current = status.get("current") or "-"
    if status.get("current") and status.get("release") and status["current"] != status["release"]:
        current += " (inventory: %s)" % status["release"]
    return {"site": status.get("site"), "release": status.get("release") or "-", "current": current,
            "units": units, "since": status.get("since") or "-",
            "restarts": "-" if status.get("restarts") is None else str(status["restarts"]),
            "memory": mebibytes(status.get("memory_bytes")), "last deploy": last,
            "readyz": readyz or "not asked (no process runs)"}


def status_report(statuses, host, output="table"):
    """The status of a host's sites: a table as a list of lines (*output*
    ``table``), or ``{host, sites}`` with every site's status (``json``)."""
    if output not in STATUS_FORMATS:
        raise ValueError("onebox_status_format must be one of %s, got %r" % (", ".join(STATUS_FORMATS), output))
    statuses = list(statuses or [])
    if output == "json":
        return {"host": host, "sites": statuses}
    rows = [status_row(status) for status in statuses]
    widths = [max([len(c)] + [len(row[c]) for row in rows]) for c in STATUS_COLUMNS]
    lines = ["%s: %d site(s)" % (host, len(rows)),
             "  ".join(c.ljust(w) for c, w in zip(STATUS_COLUMNS, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(row[c].ljust(w) for c, w in zip(STATUS_COLUMNS, widths)).rstrip())
    return lines


def run_record(result, site, owner="unknown", run_id=None):
    """The audit record of an ``onebox.deploy.run``, from the result of
    M(onebox.deploy.site_command): the command as it masked it, never its output."""
    result = result or {}
    status = result.get("exit_status")
    record = dict(action="run", site=site, by=owner, run_id=run_id, release=result.get("release"),
                  command=result.get("command"), exit_status=status, seconds=result.get("seconds"),
                  outcome="success" if status == 0 and not result.get("failed") else "failed")
    if result.get("failed") and status is None:
        record["error"] = result.get("msg")
    return record


def run_report(result, site):
    """What an ``onebox.deploy.run`` printed: a line with the exit status, then
    the command's output (stdout, then stderr)."""
    result = result or {}
    if result.get("exit_status") is None:
        head = "%s %s: %s would run (check mode)" % (site, result.get("release"), result.get("command"))
    else:
        head = "%s %s: %s exited with status %s after %s s" % (site, result.get("release"), result.get("command"),
                                                               result.get("exit_status"), result.get("seconds"))
    lines = [head]
    for stream in ("stdout", "stderr"):
        text = result.get(stream) or ""
        if text:
            lines.append("%s:" % stream)
            lines.extend("  " + line for line in text.splitlines())
    return lines


__all__ = ["PROBE_KEYS", "STATUS_COLUMNS", "STATUS_FORMATS", "audit_line", "audit_records", "data_line",
           "deploy_data_notes", "deploy_failure", "failed_hosts", "removal_records", "rollback_data_notes", "run_record",
           "run_report", "serving", "serving_report", "snapshot_text", "status_report", "status_row"]
