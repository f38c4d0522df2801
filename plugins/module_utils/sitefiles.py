# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything ``onebox.deploy.site_files`` does on the host, for every site at once.

Per site: its account (created, never taken over), its directories, its
socket unit, service unit and environment file (rendered on the controller;
``onebox.deploy.preflight`` verified the units before anything changed),
installed atomically with the replaced file kept for a rollback; the units
of its scheduled jobs (:class:`JobUnits`), and the stale ones of jobs it no
longer has removed. Then one ``daemon-reload``, and the sockets enabled and
started, the services enabled, the job timers enabled and started. With
``state: absent`` a site is stopped, disabled and removed instead, its jobs
with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import shutil

from ansible_collections.onebox.deploy.plugins.module_utils.files import (
    WriteError,
    copy_file,
    file_matches,
    read_bytes,
    remove_file,
    write_file,
)
from ansible_collections.onebox.deploy.plugins.module_utils.host import (
    ACCOUNT_MARKER,
    account_errors,
    account_state,
)
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import SystemdError


def mask_secrets(text, keys):
    """An environment file's text with the value of each of *keys* replaced
    by ``********``, for a diff: what changed shows, a secret never does."""
    keys = set(keys or ())
    if not keys:
        return text
    out = []
    for line in text.splitlines(True):
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        out.append('%s="********"\n' % key if key in keys else line)
    return "".join(out)


JOB_SUFFIXES = (".timer", ".service")


def job_units_of(unit_dir, name, marker):
    """``{file name: path}`` of the job units of site *name* in *unit_dir* that
    this collection wrote: ``<name>_<job>.timer`` or ``.service`` whose text
    carries *marker* and names the site. Site names never contain ``_``, so
    no other site's unit matches; a file without the marker is never ours."""
    out = {}
    try:
        entries = sorted(os.listdir(unit_dir))
    except OSError:
        return out
    for entry in entries:
        if not (entry.startswith(name + "_") and entry.endswith(JOB_SUFFIXES)):
            continue
        path = os.path.join(unit_dir, entry)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        text = (read_bytes(path) or b"").decode("utf-8", "replace")
        if "%s: job " % marker in text and " of site %s." % name in text:
            out[entry] = path
    return out


class SiteFilesError(Exception):
    """A site's files cannot be installed; ``str()`` names the site and the field."""


class SiteFiles(object):
    """Installs the rendered files of sites; see the module docstring."""

    def __init__(self, module, systemd, unit_dir, env_dir, marker, check_mode=False, env_only=False):
        self.module = module
        self.marker = marker
        self.env_only = env_only
        self.systemd = systemd
        self.unit_dir = unit_dir
        self.env_dir = env_dir
        self.check_mode = check_mode
        self.changed = False
        self.reload_needed = False
        self.diffs = []

    # --- paths ---------------------------------------------------------------
    def unit_path(self, name):
        return os.path.join(self.unit_dir, name)

    def env_path(self, site):
        return os.path.join(self.env_dir, "%s.env" % site["name"])

    def files_of(self, site):
        """``[(path, content, mode, backup, is_unit)]`` of a site, in install order."""
        previous = os.path.join(site["site_dir"], "units", "previous")
        return [
            (self.unit_path("%s.socket" % site["name"]), site["socket"], 0o644,
             os.path.join(previous, "%s.socket" % site["name"]), True),
            (self.unit_path(site["service_file"]), site["service"], 0o644,
             os.path.join(previous, site["service_file"]), True),
            (self.env_path(site), site["env"], 0o600,
             os.path.join(self.env_dir, ".previous", "%s.env" % site["name"]), False),
        ]

    # --- accounts and directories ------------------------------------------
    def ensure_account(self, site):
        user, group = site["user"], site["group"]
        state = account_state(user, group, site["site_dir"])
        errors = account_errors(site["name"], user, group, state)
        if errors:
            raise SiteFilesError("; ".join(errors))
        if state["user_exists"]:
            return False
        if self.check_mode:
            return True
        made_group = False
        if not state["group_exists"]:
            self.run(["groupadd", "--system", group], site, "group")
            made_group = True
        try:
            self.run(["useradd", "--system", "--gid", group, "--home-dir", site["site_dir"], "--no-create-home",
                      "--shell", "/usr/sbin/nologin", "--comment", ACCOUNT_MARKER, user], site, "user")
        except SiteFilesError:
            if made_group:
                # Groups carry no marker: one left without its account would never count as ours again.
                self.run(["groupdel", group], site, "group")
            raise
        return True

    def run(self, argv, site, field):
        path = self.module.get_bin_path(argv[0], required=True)
        rc, out, err = self.module.run_command([path] + argv[1:])
        if rc != 0:
            raise SiteFilesError("site %s: field '%s': %s failed (rc=%d): %s" % (
                site["name"], field, " ".join(argv), rc, (err or out).strip()))

    def ensure_dirs(self, site):
        """The site's directories; returns True when one was created or fixed."""
        changed = False
        if self.check_mode:
            return not os.path.isdir(os.path.join(site["site_dir"], "shared"))
        uid = pwd.getpwnam(site["user"]).pw_uid
        gid = grp.getgrnam(site["group"]).gr_gid
        for path, mode, owner, group in (
                (site["site_dir"], 0o755, 0, 0),
                (os.path.join(site["site_dir"], "releases"), 0o755, 0, 0),
                (os.path.join(site["site_dir"], "units"), 0o755, 0, 0),
                (os.path.join(site["site_dir"], "units", "previous"), 0o700, 0, 0),
                (os.path.join(site["site_dir"], "shared"), 0o750, uid, gid),
                (self.env_dir, 0o755, 0, 0),
                (os.path.join(self.env_dir, ".previous"), 0o700, 0, 0)):
            if os.path.islink(path):
                raise SiteFilesError("site %s: field 'name': %s is a symlink; refusing to use it" % (site["name"], path))
            if not os.path.isdir(path):
                os.makedirs(path, mode)
                changed = True
            st = os.stat(path)
            if (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (mode, owner, group):
                os.chown(path, owner, group)
                os.chmod(path, mode)
                changed = True
        return changed

    # --- installing ------------------------------------------------------------
    def pending(self, site):
        """The files of a site whose content, mode or owner differ from what is installed."""
        return [f for f in self.files_of(site) if not file_matches(f[0], f[1], mode=f[2], owner=0, group=0)
                and not (self.env_only and f[4])]

    def install(self, site, files):
        """Install *files*, keeping each replaced one; returns the ``restore`` entries."""
        installed = []
        for path, content, mode, backup, is_unit in files:
            exists = os.path.isfile(path)
            entry = dict(path=path, backup=backup if exists else None)
            installed.append(entry)
            if self.module._diff:
                before = (read_bytes(path) or b"").decode("utf-8", "replace") if exists else ""
                hide = () if is_unit else site.get("secret_keys") or ()
                self.diffs.append(dict(before_header=path if exists else "(absent)", after_header=path,
                                       before=mask_secrets(before, hide), after=mask_secrets(content, hide)))
            if self.check_mode:
                continue
            try:
                if exists:
                    copy_file(path, backup, mode=mode, makedirs_mode=0o700)
                write_file(path, content, mode=mode)
            except WriteError as exc:
                raise SiteFilesError("site %s: cannot install %s: %s" % (site["name"], path, exc))
            if is_unit:
                self.reload_needed = True
        return installed

    def retire(self, site):
        """Remove the service unit file of the strategy the site left (the units
        it started are stopped by the roll); returns the path when removed."""
        path = self.unit_path(site["retired_file"])
        if not os.path.isfile(path):
            return None
        if self.marker not in (read_bytes(path) or b"").decode("utf-8", "replace"):
            return None
        if not self.check_mode:
            for unit in site.get("stale_units") or []:
                self.systemd.mutate("disable", unit)
            remove_file(path)
            self.reload_needed = True
        return path

    def apply(self, sites):
        """Install every site; returns ``{name: result}``. Nothing is written
        before every site's account is checked."""
        results = {}
        plans = []
        for site in sites:
            name = site["name"]
            state = account_state(site["user"], site["group"], site["site_dir"])
            errors = account_errors(name, site["user"], site["group"], state)
            if errors:
                raise SiteFilesError("; ".join(errors))
            files = self.pending(site)
            results[name] = dict(changed=False, installed=[], socket_changed=False,
                                 socket_path=self.unit_path("%s.socket" % name), account_created=False,
                                 retired=None)
            plans.append((site, files))
        for site, files in plans:
            result = results[site["name"]]
            result["account_created"] = self.ensure_account(site)
            dirs_changed = self.ensure_dirs(site)
            result["installed"] = self.install(site, files)
            result["socket_changed"] = any(f[0] == result["socket_path"] for f in files)
            result["retired"] = None if self.env_only else self.retire(site)
            if not self.env_only:
                result["jobs"] = self.install_jobs(site)
            jobs_changed = bool(result.get("jobs") and (result["jobs"]["installed"] or result["jobs"]["removed"]))
            result["changed"] = bool(result["installed"] or result["account_created"] or dirs_changed
                                     or result["retired"] or jobs_changed)
            self.changed = self.changed or result["changed"]
        if self.reload_needed and not self.check_mode:
            self.systemd.daemon_reload()
            self.reload_needed = False
        if not self.env_only:
            self.enable(sites, results)
            self.start_timers(sites, results)
        return results

    # --- scheduled jobs ----------------------------------------------------------
    def install_jobs(self, site):
        """Install the units of the site's jobs that differ, and take away the
        stale ones (timer stopped and disabled, a run still waiting for the
        deploy lock stopped, files removed; a run under way finishes). Returns ``dict(installed, stale, removed, started)``; the
        timers are started by :meth:`start_timers` after the daemon-reload."""
        out = dict(installed=[], stale=[], removed=[], started=[])
        wanted = set()
        for job in site.get("jobs") or []:
            for unit, content in ((job["service_unit"], job["service"]), (job["timer_unit"], job["timer"])):
                wanted.add(unit)
                path = self.unit_path(unit)
                if file_matches(path, content, mode=0o644, owner=0, group=0):
                    continue
                if os.path.lexists(path) and not os.path.isfile(path):
                    raise SiteFilesError("site %s: field 'timers[%s]': %s is not a regular file" % (
                        site["name"], job["name"], path))
                out["installed"].append(path)
                if self.module._diff:
                    before = (read_bytes(path) or b"").decode("utf-8", "replace") if os.path.isfile(path) else ""
                    self.diffs.append(dict(before_header=path if before else "(absent)", after_header=path,
                                           before=before, after=content))
                if self.check_mode:
                    continue
                try:
                    write_file(path, content, mode=0o644)
                except WriteError as exc:
                    raise SiteFilesError("site %s: cannot install %s: %s" % (site["name"], path, exc))
                self.reload_needed = True
        stale = dict((unit, path) for unit, path in job_units_of(self.unit_dir, site["name"], self.marker).items()
                     if unit not in wanted)
        out["stale"] = sorted(u for u in stale if u.endswith(".timer"))
        out["removed"] = sorted(stale.values())
        if stale and not self.check_mode:
            services = sorted(u for u in stale if u.endswith(".service"))
            try:
                for verb in ("stop", "disable"):
                    for unit in out["stale"]:
                        self.systemd.mutate(verb, unit)
                # A run still waiting for the deploy lock (start-pre) has not begun its command: it is
                # stopped, as is a failed state of a job that is going away. A run under way finishes.
                states = self.systemd.show_many(services, ("ActiveState", "SubState"))
                waiting = [u for u in services if (states.get(u) or {}).get("SubState") == "start-pre"]
                for unit in waiting:
                    self.systemd.mutate("stop", unit)
                self.reset_failed(services)
            except SystemdError as exc:
                raise SiteFilesError("site %s: field 'timers': %s" % (site["name"], exc.msg))
            for path in out["removed"]:
                remove_file(path)
            self.reload_needed = True
        return out

    def reset_failed(self, units):
        """Forget the failed state of *units* (job services going away), so none lingers after their files."""
        states = self.systemd.show_many(units, ("ActiveState",))
        failed = [u for u in units if (states.get(u) or {}).get("ActiveState") == "failed"]
        for unit in failed:
            self.systemd.mutate("reset-failed", unit)

    def start_timers(self, sites, results):
        """Every job timer enabled and started (after the daemon-reload that loaded them)."""
        timers = [job["timer_unit"] for site in sites for job in site.get("jobs") or []]
        if not timers:
            return
        try:
            props = self.systemd.show_many(timers, ("UnitFileState", "ActiveState"))
        except SystemdError as exc:
            raise SiteFilesError(exc.msg)
        start = [u for u in timers if (props.get(u) or {}).get("UnitFileState") != "enabled"
                 or (props.get(u) or {}).get("ActiveState") != "active"]
        for site in sites:
            jobs = results[site["name"]].setdefault("jobs", dict(installed=[], stale=[], removed=[], started=[]))
            jobs["started"] = [job["timer_unit"] for job in site.get("jobs") or [] if job["timer_unit"] in start]
            if jobs["started"]:
                results[site["name"]]["changed"] = True
                self.changed = True
        if start and not self.check_mode:
            try:
                self.systemd.mutate("enable", *start, now=True)
            except SystemdError as exc:
                raise SiteFilesError(exc.msg)

    def enable(self, sites, results):
        """Sockets enabled and started, the unit a socket starts enabled at boot."""
        sockets = ["%s.socket" % s["name"] for s in sites]
        triggers = [s["trigger_unit"] for s in sites]
        try:
            props = self.systemd.show_many(sockets + triggers, ("UnitFileState", "ActiveState", "LoadState"))
        except SystemdError as exc:
            raise SiteFilesError(exc.msg)
        start = [u for u in sockets if (props.get(u) or {}).get("UnitFileState") != "enabled"
                 or (props.get(u) or {}).get("ActiveState") != "active"]
        enable = [u for u in triggers if (props.get(u) or {}).get("UnitFileState") != "enabled"]
        for site in sites:
            result = results[site["name"]]
            if "%s.socket" % site["name"] in start or site["trigger_unit"] in enable:
                result["changed"] = True
                self.changed = True
        if self.check_mode:
            return
        try:
            if start:
                self.systemd.mutate("enable", *start, now=True)
            if enable:
                self.systemd.mutate("enable", *enable)
        except SystemdError as exc:
            raise SiteFilesError(exc.msg)

    # --- removal -----------------------------------------------------------------
    def remove_many(self, sites):
        """``state: absent`` for each of *sites* (each with ``purge``): stop and
        disable its units, remove its unit files and environment file, and with
        ``purge`` its directory; delete its account only when this collection
        created it. Every site is planned before any changes (a unit of one
        that this collection did not write fails the run before the others are
        touched); then their units stop together, the timers and sockets of
        all first, so no connection starts a service again, then the services
        (each drains meanwhile, all at once); one ``disable`` without a reload
        (the files go next, and one reload follows). Returns ``{name: result}``."""
        plans = [self._plan_removal(site, purge=bool(site.get("purge"))) for site in sites]
        results = dict((plan["site"]["name"], plan["result"]) for plan in plans)
        acting = [plan for plan in plans if plan["result"]["changed"]]
        if acting:
            self.changed = True
        if self.check_mode or not acting:
            return results
        first = [u for plan in acting for u in plan["first"]]
        then = [u for plan in acting for u in plan["then"]]
        names = ", ".join(plan["site"]["name"] for plan in acting if plan["first"] or plan["then"])
        try:
            self.systemd.mutate("stop", *first)
            self.systemd.mutate("stop", *then)
            self.systemd.mutate("disable", *(first + then), no_reload=True)
            self.reset_failed([u for plan in acting for u in plan["job_services"]])
        except SystemdError as exc:
            raise SiteFilesError("site %s: %s" % (names, exc.msg))
        for plan in acting:
            self._remove_files_and_account(plan)
        return results

    def _plan_removal(self, site, purge):
        """What removing *site* stops and removes (nothing changes here)."""
        name = site["name"]
        result = dict(changed=False, stopped=[], removed=[], account_deleted=False, purged=None)
        plan = dict(site=site, result=result, first=[], then=[], job_services=[], ours=[], state=None)
        paths = [self.unit_path(u) for u in ("%s.socket" % name, "%s.service" % name, "%s@.service" % name)]
        ours = [p for p in paths if os.path.isfile(p)
                and self.marker in (read_bytes(p) or b"").decode("utf-8", "replace")]
        foreign = [p for p in paths if os.path.lexists(p) and p not in ours]
        if foreign:
            raise SiteFilesError("site %s: field 'name': %s was not written by onebox.deploy; it is left alone and "
                                 "the site is not removed" % (name, ", ".join(foreign)))
        rc, out, _err = self.systemd.run([self.systemd.systemctl, "list-units", "--all", "--plain", "--no-legend",
                                          "--full", "%s@*.service" % name])
        instances = sorted(set(line.split()[0] for line in (out if rc == 0 else "").splitlines()
                               if line.split() and line.split()[0].startswith(name + "@")))
        jobs = job_units_of(self.unit_dir, name, self.marker)
        ours.extend(sorted(jobs.values()))
        # Timers first (no job starts meanwhile), then the socket, the service, the jobs' services.
        candidates = (sorted(u for u in jobs if u.endswith(".timer")) + ["%s.socket" % name, "%s.service" % name]
                      + instances + sorted(u for u in jobs if u.endswith(".service")))
        try:
            loaded = self.systemd.show_many(candidates, ("LoadState", "ActiveState", "UnitFileState"))
        except SystemdError as exc:
            raise SiteFilesError("site %s: %s" % (name, exc.msg))
        units = [u for u in candidates if (loaded.get(u) or {}).get("LoadState") not in (None, "", "not-found")]
        env = self.env_path(site)
        removable = ours + [p for p in (env, os.path.join(self.env_dir, ".previous", "%s.env" % name))
                            if os.path.lexists(p)]
        state = account_state(site["user"], site["group"], site["site_dir"])
        delete_user = state["user_exists"] and state["user_ours"] and not site.get("user_shared")
        purge_dir = purge and os.path.isdir(site["site_dir"])
        if not (ours or removable or delete_user or purge_dir):
            return plan
        result["changed"] = True
        # Only units this collection wrote: a unit of that name from elsewhere is not ours to stop.
        result["stopped"] = units if ours else []
        result["removed"] = removable
        result["account_deleted"] = delete_user
        result["purged"] = site["site_dir"] if purge_dir else None
        plan["first"] = [u for u in result["stopped"] if u.endswith((".timer", ".socket"))]
        plan["then"] = [u for u in result["stopped"] if u not in plan["first"]]
        plan["job_services"] = [u for u in result["stopped"] if u in jobs and u.endswith(".service")]
        plan.update(ours=ours, state=state)
        return plan

    def _remove_files_and_account(self, plan):
        site, result, state = plan["site"], plan["result"], plan["state"]
        for path in result["removed"]:
            remove_file(path)
        if plan["ours"]:
            self.reload_needed = True
        if result["account_deleted"]:
            self.run(["userdel", site["user"]], site, "user")
            try:
                grp.getgrnam(site["group"])
            except KeyError:
                pass  # userdel removed the user's own group
            else:
                if state["group_ours"]:
                    self.run(["groupdel", site["group"]], site, "group")
        if result["purged"]:
            shutil.rmtree(site["site_dir"])
