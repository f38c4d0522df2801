# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run does, decided on the controller from the input and from what
the host reported: the role settings checked, the sites validated and
normalised (once per run, ``_sites.py``), the selection, the roll, the
rollback, what is staged, and each unit's timing from the site's history.

Pure functions; only :func:`plan_sites` reads the controller's artifacts.
Used by the ``onebox.deploy`` filters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os
import posixpath
import re
import shlex

from ansible_collections.onebox.deploy.plugins.module_utils.shared import restore_source
from ansible_collections.onebox.deploy.plugins.plugin_utils._artifacts import sha256_of
from ansible_collections.onebox.deploy.plugins.plugin_utils._sites import (
    PATH_SETTINGS,
    SERVICE_TYPES,
    SITE_SETTINGS,
    STRATEGIES,
    env_value,
    normalize_absent,
    normalize_site,
    parse_sites,
    resolve_artifact,
)

ROLLBACK_SCOPES = ("site", "all", "none")
HOOK_POINTS = ("before_roll", "after_roll", "after_rollback")
#: Host paths a setting may name; each must be absolute and free of '..'.
HOST_PATHS = ("root", "env_dir", "unit_dir", "audit_log", "lock_file")
#: Trees onebox_root may not be in, and directories it may not be.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
                "/run", "/sbin", "/sys", "/tmp", "/usr", "/var/tmp", "/var/run", "/var/lock")
SYSTEM_DIRS = ("/", "/home", "/mnt", "/media", "/opt", "/srv", "/var", "/var/lib", "/var/log", "/var/cache",
               "/var/spool", "/var/mail", "/var/backups", "/var/opt", "/var/www", "/var/local")


def select_sites(names, selection, field="onebox_deploy_sites"):
    """``(selected names in input order, errors)``.

    *selection* is a list of names, or a string as ``-e onebox_deploy_sites=blog``
    or ``-e onebox_deploy_sites=blog,shop`` gives it; empty selects every site.
    """
    if selection is None or selection == "" or selection == []:
        return list(names), []
    if isinstance(selection, str):
        wanted = [part for part in re.split(r"[\s,]+", selection.strip()) if part]
    elif isinstance(selection, (list, tuple)):
        wanted = [str(part) for part in selection]
    else:
        return [], ["%s must be a list of site names or a comma-separated string, got %s"
                    % (field, type(selection).__name__)]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        return [], ["%s names unknown sites: %s (known: %s)" % (field, ", ".join(unknown), ", ".join(names))]
    return [name for name in names if name in wanted], []


def maintenance_sites(names, value):
    """``(names in input order, errors)`` of ``onebox_maintenance_sites``: the
    sites Traefik answers 503 for in this run, besides those with
    ``maintenance: true``. A list of names, or a string as ``-e
    onebox_maintenance_sites=blog,shop`` gives it; empty names none. Every
    name must be a present site of *names*."""
    if value is None or value == "" or value == []:
        return [], []
    return select_sites(names, value, "onebox_maintenance_sites")


def _number(value, integer=False):
    if isinstance(value, bool):
        return None
    try:
        return int(value) if integer else float(value)
    except (TypeError, ValueError):
        return None


def root_problem(path):
    """Why ``onebox_root`` may not be *path* (None when it may)."""
    norm = "/" + posixpath.normpath(path).lstrip("/")
    if norm in SYSTEM_DIRS:
        return "%s is a system directory; use a directory of its own such as /srv/onebox" % path
    for tree in SYSTEM_TREES:
        if norm == tree or norm.startswith(tree + "/"):
            return "%s is inside the system directory %s; use a directory of its own such as /srv/onebox" % (
                path, tree)
    return None


def settings_errors(settings):
    """Problems in the role settings (``onebox_*`` variables), each naming the variable."""
    errors = []
    for key in HOST_PATHS:
        value = settings.get(key)
        if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/"):
            errors.append("onebox_%s must be an absolute path without '..', got %r" % (key, value))
        elif key == "root":
            problem = root_problem(value)
            if problem:
                errors.append("onebox_root: %s" % problem)
    if settings.get("strategy") not in STRATEGIES:
        errors.append("onebox_strategy must be one of %s, got %r" % (", ".join(STRATEGIES), settings.get("strategy")))
    if settings.get("service_type") not in SERVICE_TYPES:
        errors.append("onebox_service_type must be one of %s, got %r" % (
            ", ".join(SERVICE_TYPES), settings.get("service_type")))
    for key in ("drain_timeout", "start_timeout", "ready_timeout", "restart_sec"):
        number = _number(settings.get(key))
        if number is None or number <= 0:
            errors.append("onebox_%s must be a number greater than 0, got %r" % (key, settings.get(key)))
    backlog = _number(settings.get("backlog"), integer=True)
    if backlog is None or backlog < 1:
        errors.append("onebox_backlog must be a whole number greater than 0, got %r" % (settings.get("backlog"),))
    for key in ("readiness_path", "liveness_path"):
        value = settings.get(key)
        if not isinstance(value, str) or not value.startswith("/") or " " in value:
            errors.append("onebox_%s must be a URL path starting with '/', got %r" % (key, value))
    if "keep_releases" in settings:
        keep = _number(settings.get("keep_releases"), integer=True)
        if keep is None or keep < 2:
            errors.append("onebox_keep_releases must be >= 2 (the current release and the one before it are "
                          "always kept), got %r" % (settings.get("keep_releases"),))
    if "lock_ttl" in settings:
        ttl = _number(settings.get("lock_ttl"), integer=True)
        if ttl is None or ttl < 1:
            errors.append("onebox_lock_ttl must be a whole number >= 1, got %r" % (settings.get("lock_ttl"),))
    if "lock_wait" in settings:
        wait = _number(settings.get("lock_wait"), integer=True)
        if wait is None or wait < 0:
            errors.append("onebox_lock_wait must be a whole number >= 0, got %r" % (settings.get("lock_wait"),))
    if "rollback_scope" in settings and settings["rollback_scope"] not in ROLLBACK_SCOPES:
        errors.append("onebox_rollback_scope must be one of %s, got %r" % (
            ", ".join(ROLLBACK_SCOPES), settings["rollback_scope"]))
    if "hooks" in settings:
        hooks = settings["hooks"]
        if not isinstance(hooks, dict):
            errors.append("onebox_hooks must be a mapping with keys %s, got %s" % (
                ", ".join(HOOK_POINTS), type(hooks).__name__))
        else:
            for key in sorted(set(hooks) - set(HOOK_POINTS)):
                errors.append("onebox_hooks: unknown hook point %r (known: %s)" % (key, ", ".join(HOOK_POINTS)))
            for key, value in hooks.items():
                if key in HOOK_POINTS and not isinstance(value, list):
                    errors.append("onebox_hooks.%s must be a list of task files" % key)
    return errors


def undefined_sites(variables=None):
    """The error of a run without ``onebox_sites``, naming the defined
    variables (*variables*) that look like a misspelling of it."""
    msg = ("onebox_sites is not defined: set it to the list of sites of these hosts (onebox_sites: [] for none), "
           "in the inventory or with -e")
    # A misspelling (a letter missing, extra or swapped, another separator) scores
    # 0.9 or more; the collection's own variables score less (onebox_run_site
    # 0.82, onebox_deploy_sites 0.77) and are never named.
    close = difflib.get_close_matches("onebox_sites", [v for v in variables or [] if v != "onebox_sites"], 3, 0.85)
    if close:
        msg += "; did you mean it where you set %s?" % ", ".join(sorted(close))
    return msg


def run_argv(command):
    """``(argv, error)`` of ``onebox_run_command``: a command line parsed as a
    shell would split it, no argument with a ``..`` path part, no newline."""
    field = "onebox_run_command"
    if not isinstance(command, str) or not command.strip():
        return [], "%s is required: the command to run once in the site's environment, such as 'bin/blog migrate'" % (
            field)
    if "\n" in command or "\x00" in command:
        return [], "%s must be one line without NUL" % field
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return [], "%s cannot be parsed: %s" % (field, exc)
    for arg in argv:
        if ".." in arg.split("/"):
            return [], ("%s: the argument %r has a '..' path part; give paths inside the release (relative to "
                        "current) or absolute ones" % (field, arg))
    return argv, None


def run_errors(chosen, selection, absent_names, command, leftover=""):
    """Problems of an ``onebox.deploy.run``: exactly one site that is present,
    and a command :func:`run_argv` accepts. *leftover* is what ``-e key=value``
    did not take (Ansible's ``_raw_params``): ``-e onebox_run_command=bin/blog
    migrate`` sets the command to ``bin/blog`` and leaves ``migrate``."""
    errors = []
    if leftover:
        errors.append("onebox_run_command: -e key=value ends a value at a space, and %r was left over; quote the "
                      "command: -e 'onebox_run_command=\"%s %s\"'" % (leftover, command, leftover))
        return errors
    if selection in (None, "", []):
        errors.append("onebox_run_site is required: the site to run the command for")
    elif len(chosen) > 1:
        errors.append("onebox_run_site names %d sites (%s); give one" % (len(chosen), ", ".join(chosen)))
    elif chosen and chosen[0] in absent_names:
        errors.append("onebox_run_site names %s, which has state: absent" % chosen[0])
    error = run_argv(command)[1]
    if error:
        errors.append(error)
    return errors


def run_plan(site, command):
    """What ``onebox.deploy.site_command`` runs: the site's name and the
    command's argv, a relative executable resolved inside ``current`` (as
    ``command`` is for the service)."""
    argv = run_argv(command)[0]
    exe = argv[0] if os.path.isabs(argv[0]) else os.path.join(site["site_dir"], "current", argv[0])
    return dict(site=site["name"], argv=[exe] + argv[1:], command=command)


def plan_sites(sites, settings):
    """Validate and normalise ``onebox_sites`` once for the run.

    *sites* None means that ``onebox_sites`` is not defined at all: an error
    (an explicit empty list is a run with no sites).
    Returns ``dict(errors=[...], sites=[...], selected=[names], names=[...],
    absent=[...])``; ``absent`` holds the selected ``state: absent`` entries
    (name, user, group, site_dir, purge), to be removed.
    ``sites`` holds every site normalised (no secret values, only their
    names); each selected site also has ``sha256`` (its artifact's, hashed
    once here) and, for a tarball, ``artifact_strip`` (a lone top directory
    to leave out, see ``_artifacts.py``). With errors, ``sites`` is empty.
    """
    settings = dict(settings or {})
    base = settings.get("artifact_base") or os.getcwd()
    errors = settings_errors(settings)
    if sites is None:
        return dict(errors=errors + [undefined_sites(settings.get("variables"))], sites=[], selected=[], names=[],
                    selected_sites=[], absent=[])
    if not isinstance(sites, list):
        return dict(errors=errors + ["onebox_sites must be a list of site mappings, got %s"
                                     % type(sites).__name__], sites=[], selected=[], names=[], selected_sites=[],
                    absent=[])
    entries = [s for s in sites if isinstance(s, dict) and isinstance(s.get("name"), str)]
    names = [s["name"] for s in entries if s.get("state") != "absent"]
    field = settings.get("select_field") or "onebox_deploy_sites"
    chosen, select_errors = select_sites([s["name"] for s in entries], settings.get("select"), field)
    errors.extend(select_errors)
    maintenance, maintenance_errors = maintenance_sites(names, settings.get("maintenance_sites"))
    errors.extend(maintenance_errors)
    selected = [name for name in chosen if name in names]
    # A site with state: absent is removed by every run that selects it; a site
    # missing from onebox_sites is never touched.
    absent = [s for s in entries if s.get("state") == "absent" and s["name"] in chosen]
    # A rollback returns to releases on the host: it neither reads nor hashes artifacts.
    check_artifacts = settings.get("check_artifacts", True) not in (False, "false", "False")
    sums = {}
    for site in sites:
        if (not check_artifacts or not isinstance(site, dict) or site.get("name") not in selected
                or not isinstance(site.get("artifact"), str)):
            continue
        path = resolve_artifact(site["artifact"], base)
        if os.path.exists(path):
            try:
                sums[site["name"]] = sha256_of(path)
            except (IOError, OSError):
                pass
    site_errors, parsed = parse_sites(sites, base, check_artifacts, settings.get("strategy") or "restart", sums=sums)
    errors.extend(site_errors)
    # onebox.deploy.run: one site and its command, checked with the sites.
    running = settings.get("run") in (True, "true", "True")
    if running:
        errors.extend(run_errors(chosen, settings.get("select"), [s["name"] for s in absent], settings["run_command"],
                                 settings.get("run_leftover") or ""))
    if errors:
        return dict(errors=errors, sites=[], selected=[], names=names, selected_sites=[], absent=[])
    defaults = dict((key, settings[key]) for key in SITE_SETTINGS + PATH_SETTINGS)
    out = []
    for index, site in enumerate(sites):
        if site.get("state") == "absent":
            continue
        norm = normalize_site(site, defaults, base, parsed[index])
        norm["maintenance"] = norm["maintenance"] or norm["name"] in maintenance
        if norm["name"] in selected and check_artifacts:
            norm["sha256"] = sums.get(norm["name"])
            norm["artifact_strip"] = (parsed[index]["artifact"] or {}).get("strip") or ""
        out.append(norm)
    plan = dict(errors=errors, sites=out, selected=selected, names=names,
                selected_sites=[site for site in out if site["name"] in selected],
                absent=[normalize_absent(site, defaults) for site in absent],
                maintenance=[site["name"] for site in out if site["maintenance"]])
    if running:
        plan["run"] = run_plan(plan["selected_sites"][0], settings["run_command"])
    return plan


def secret_env(sites):
    """``{site name: {KEY: value as the environment file writes it}}`` of the
    sites' ``secret_env``; for the environment file only, never for display."""
    out = {}
    for site in sites or []:
        if isinstance(site, dict) and isinstance(site.get("secret_env"), dict):
            out[site.get("name")] = dict((str(k), env_value(v)) for k, v in site["secret_env"].items())
    return out


def artifact_sums(sites, artifact_base=None):
    """``{name: sha256}`` of the artifacts of sites (raw or normalised), read on the controller."""
    out = {}
    for site in sites:
        path = site.get("artifact_path") or resolve_artifact(site["artifact"], artifact_base)
        out[site["name"]] = sha256_of(path)
    return out


#: A site's start grace (rolling_restart's liveness_grace) without history.
START_GRACE_DEFAULT = 10.0
#: The least start grace a site's history can give.
START_GRACE_FLOOR = 3.0


def start_grace(history, ready_timeout):
    """Seconds a new process of a site may take before a health endpoint that
    never answered counts against it: twice the site's usual time to ready
    (the median of its recent rolls in *history*, ``[time_to_ready,
    time_to_stop]`` pairs from preflight, the stop time taken off where it is
    known), at least :data:`START_GRACE_FLOOR`, at most *ready_timeout*; and
    :data:`START_GRACE_DEFAULT` without history. A process whose workers keep
    dying, or that exits, is caught at once regardless."""
    starts = sorted(max(0.0, ready - (stop or 0.0)) for ready, stop in history or [])
    if not starts:
        return START_GRACE_DEFAULT
    middle = len(starts) // 2
    usual = starts[middle] if len(starts) % 2 else (starts[middle - 1] + starts[middle]) / 2.0
    return round(min(max(2 * usual, START_GRACE_FLOOR), float(ready_timeout)), 3)


def timing(unit, site, state):
    """Set a ``rolling_restart`` unit's liveness grace (from the site's history
    on the host, *state*) and stop timeout (the site's TimeoutStopSec)."""
    unit["liveness_grace"] = start_grace(state.get("ready_history"), site["ready_timeout"])
    unit["stop_timeout"] = float(site["stop_timeout"])
    return unit


def is_fresh(state):
    """No unit of the site was on the host before this run (a first install)."""
    return not (state or {}).get("units_present")


def roll_plan(sites, host, staged=None, files=None, restore=True):
    """Which selected sites roll, and their ``rolling_restart`` units.

    *sites* are the selected normalised sites, *host* the ``sites`` of
    ``onebox.deploy.preflight``, *staged* and *files* the ``sites`` of
    ``onebox.deploy.stage_releases`` and ``onebox.deploy.site_files``.
    A site rolls when its release, its current link, its units or its
    environment changed, when ``current`` names another release, or when
    nothing of it runs. Returns ``dict(names=[...], units=[...], probe_timeout=...)``;
    ``probe_timeout`` is the longest a request may wait during the roll of
    these sites (drain plus time to ready), the probe's request timeout.
    """
    staged = staged or {}
    files = files or {}
    names = []
    units = []
    probe_timeout = 0.0
    for site in sites:
        name = site["name"]
        state = (host or {}).get(name) or {}
        stage = staged.get(name) or {}
        installed = (files.get(name) or {}).get("installed") or []
        changed = (stage.get("changed") or bool(installed)
                   or state.get("current_release") != site["version"] or not state.get("service_active"))
        if not changed:
            continue
        socket_path = (files.get(name) or {}).get("socket_path")
        fresh = is_fresh(state)
        # A rollback puts back the service unit and environment file; a new
        # socket stays bound (documented). A first install that fails goes
        # as a whole: its socket unit file too.
        put_back = [e for e in installed if fresh or e.get("path") != socket_path]
        unit = timing(roll_unit(site, True, None, {name: put_back} if restore else None, fresh=fresh), site, state)
        # Units of a strategy the site left that still run; site_files disabled them.
        unit["stop_units"] = [u for u in state.get("stale_units") or [] if u in (state.get("active_units") or [])]
        unit["restart_socket"] = bool((files.get(name) or {}).get("socket_changed") and state.get("socket_active"))
        names.append(name)
        units.append(unit)
        # No healthy restart keeps a request waiting longer than the old
        # process's drain plus the new one's time to ready.
        probe_timeout = max(probe_timeout, float(site["stop_timeout"]) + float(site["ready_timeout"]))
    return dict(names=names, units=units, probe_timeout=probe_timeout)


def snapshot_plan(sites, host):
    """The sites whose data is snapshotted before this run's roll (the
    ``sites`` of ``onebox.deploy.snapshots``): every selected site that
    declares ``data`` and whose release changes (``current`` names another
    release, or the same version is replaced with other content). *host* is
    the ``sites`` of ``onebox.deploy.preflight``."""
    out = []
    for site in sites:
        state = (host or {}).get(site["name"]) or {}
        if not site.get("data"):
            continue
        current = state.get("current_release")
        if current == site["version"] and not state.get("release_differs"):
            continue
        out.append(dict(name=site["name"], site_dir=site["site_dir"], user=site["user"], group=site["group"],
                        data=list(site["data"]), from_version=current, to_version=site["version"]))
    return out


def rollback_cmd(name, target):
    """The command that puts the data of *name* back as release *target* left it."""
    return ("ansible-playbook onebox.deploy.rollback -e '{\"onebox_rollback_sites\": [\"%s\"]}' "
            "-e onebox_rollback_to=%s -e onebox_rollback_data=true" % (name, target))


def data_unit(site, snapshot, written_by, target):
    """The ``data`` of a ``rolling_restart`` unit that restores *snapshot*."""
    return dict(site=site["name"], site_dir=site["site_dir"], user=site["user"], group=site["group"],
                unit_file=site["service_file"], files=list(site["data"]), snapshot=snapshot["path"],
                written_by=written_by, target=target)


def rollback_plan(sites, preflight, to=None, restore=None, data=False):
    """What a rollback does per site: the release it returns to (``to``, or
    the one installed before the current one), the ``rolling_restart`` units,
    and an error per site that cannot be rolled back.

    ``restore`` maps a site name to the files to put back when its rollback
    fails: a list of ``{path, backup}``, or the site's entry in the ``sites``
    result of ``onebox.deploy.site_files`` (its ``installed``).

    For a site that declares ``data``, ``data`` (per site name) says what
    happens to it: with *data* (``onebox_rollback_data``) the newest snapshot
    taken when the target release was replaced is restored as the site
    rolls (its unit's ``data``); a site already on the target release then
    has only its data restored. Without *data* the data stays as the release
    being undone left it, and ``data`` says so, with the command that would
    restore the snapshot."""
    plan = dict(errors=[], targets={}, units=[], sites=[], unchanged=[], data={})
    restore = restore_entries(restore)
    data = data not in (False, None, "", "false", "False", "no")
    for site in sites:
        name = site["name"]
        state = (preflight or {}).get(name) or {}
        current = state.get("current_release")
        installed = [r["version"] for r in state.get("releases") or []]
        target = to or state.get("previous_release")
        snapshot = None
        if site.get("data") and target:
            snapshot = restore_source(state.get("snapshots"), target)
            plan["data"][name] = dict(files=list(site["data"]), requested=data, last_written_by=current,
                                      target=target, snapshot=dict((k, snapshot.get(k)) for k in (
                                          "name", "path", "from_version", "to_version", "time", "bytes"))
                                      if snapshot else None, command=rollback_cmd(name, target))
        if data and site.get("data") and target and current and snapshot is None and target in installed:
            plan["errors"].append(
                "site %s: field 'onebox_rollback_data': no snapshot of its data was taken when release %s was "
                "replaced (snapshots: %s); roll back without onebox_rollback_data" % (
                    name, target, ", ".join(s["name"] for s in state.get("snapshots") or []) or "none"))
            continue
        if not current:
            plan["errors"].append("site %s: field 'onebox_rollback_sites': nothing is deployed (%s/current points "
                                  "nowhere)" % (name, site.get("site_dir")))
        elif not target:
            plan["errors"].append("site %s: field 'onebox_rollback_to': no release was installed before %s "
                                  "(installed: %s); name one with onebox_rollback_to"
                                  % (name, current, ", ".join(installed) or "none"))
        elif target not in installed:
            plan["errors"].append("site %s: field 'onebox_rollback_to': release %s is not installed (installed: %s)"
                                  % (name, target, ", ".join(installed) or "none"))
        elif target == current and not (data and snapshot is not None):
            plan["unchanged"].append(name)
        else:
            plan["targets"][name] = target
            unit = timing(roll_unit(site, True, target, restore), site, state)
            if data and snapshot is not None:
                unit["data"] = data_unit(site, snapshot, current, target)
            plan["units"].append(unit)
            plan["sites"].append(dict(site, version=target))
    return plan


def restore_entries(restore):
    """``{site name: [{path, backup}]}`` from a mapping of site names to such
    lists or to the site's entry in the ``sites`` of a
    ``onebox.deploy.site_files`` result (its ``installed``); None for none."""
    return dict((name, value.get("installed") or [] if isinstance(value, dict) else value)
                for name, value in (restore or {}).items()) or None


def rollback_units(plan, files=None):
    """The ``rolling_restart`` units of a :func:`rollback_plan` made before
    the environment files of the rollback were installed, each with the files
    to put back when its rollback fails: *files*, the ``sites`` of the
    ``onebox.deploy.site_files`` result (their ``installed``)."""
    restore = restore_entries(files) or {}
    return [dict(unit, restore=list(restore.get(site["name"]) or []))
            for unit, site in zip(plan.get("units") or [], plan.get("sites") or [])]


def stage_plan(sites, host, by="unknown"):
    """The ``releases`` of ``onebox.deploy.stage_releases``: per selected site,
    whether its release must be sent (not installed, or installed with other
    content and allowed to be replaced) and whether ``current`` is pointed at
    it now (nothing of the site serves, or it has no ``current`` at all)."""
    out = []
    for site in sites:
        state = (host or {}).get(site["name"]) or {}
        installed = state.get("release_installed")
        send = not installed or bool(state.get("release_differs"))
        serving = state.get("socket_active") or state.get("service_active")
        out.append(dict(
            name=site["name"], version=site["version"], site_dir=site["site_dir"], stage=send,
            point_current=(not serving or not state.get("current_release"))
            and state.get("current_release") != site["version"],
            meta=dict(sha256=site.get("sha256"), artifact=site.get("artifact_path"), by=by),
        ))
    return out


def roll_unit(site, switch_current=False, version=None, restore=None, fresh=False):
    """The ``units`` entry of ``onebox.deploy.rolling_restart`` for a normalised site.

    With ``switch_current`` the module points ``current`` at the site's
    release (or at ``version``, for a rollback) right before it restarts the site (and back if it fails), so the
    sites after a failing one keep serving their old release.

    ``socket`` always names the site's socket unit; with ``fresh`` (no release
    of the site served before this run) a failed rollout stops and disables
    the socket and service instead of restarting a previous release.
    """
    strategy = site["strategy"]
    unit = {
        "name": site["name"] if strategy == "overlap" else "%s.service" % site["name"],
        "readiness_url": site["readiness_url"],
        "liveness_url": site["liveness_url"],
        "timeout": float(site["ready_timeout"]),
        "strategy": strategy,
        "socket": "%s.socket" % site["name"],
    }
    if fresh:
        unit["fresh"] = True
    # The site's scheduled jobs: the roll waits for a run under way before it
    # switches current, so a run ends on the release it started with.
    jobs = [dict(unit=job["service_unit"], timeout=float(job["timeout"])) for job in site.get("jobs") or []]
    if jobs:
        unit["jobs"] = jobs
    if strategy == "overlap":
        unit["instances"] = list(site["instances"])
    if switch_current:
        unit["link"] = os.path.join(site["site_dir"], "current")
        unit["link_target"] = os.path.join(site["site_dir"], "releases", version or site["version"])
    if restore:
        # {site name: [{path, backup}]}: the files a rollback puts back
        unit["restore"] = list(restore.get(site["name"]) or [])
    return unit


__all__ = ["ROLLBACK_SCOPES", "START_GRACE_DEFAULT", "START_GRACE_FLOOR", "artifact_sums", "data_unit", "is_fresh",
           "plan_sites", "restore_entries", "roll_plan", "roll_unit", "rollback_cmd", "rollback_plan",
           "rollback_units", "root_problem", "run_argv", "run_errors", "run_plan", "secret_env", "select_sites", "settings_errors", "snapshot_plan",
           "stage_plan", "start_grace", "undefined_sites"]
