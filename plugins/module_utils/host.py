# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is on the host for a set of sites: units, accounts, releases, ports.

Read-only; used by ``onebox.deploy.preflight`` (every check before anything
changes) and by ``onebox.deploy.site_files`` (accounts). Two ``systemctl``
calls cover every site, however many there are.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import grp
import os
import pwd

from ansible_collections.onebox.deploy.plugins.module_utils.files import tail_json_records
from ansible_collections.onebox.deploy.plugins.module_utils.releases import (
    list_releases,
    previous_version,
)
from ansible_collections.onebox.deploy.plugins.module_utils.shared import MARKER
from ansible_collections.onebox.deploy.plugins.module_utils.snapshots import data_state, list_snapshots
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import RUNNING_STATES

VENDOR_UNIT_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system", "/run/systemd/system",
                    "/usr/local/lib/systemd/system")
#: Options of the modules that work on a site's units and environment files
#: (documented by the doc fragment onebox.deploy.host_paths).
HOST_PATHS_SPEC = dict(
    unit_dir=dict(type="path", default="/etc/systemd/system"),
    env_dir=dict(type="path", default="/etc/onebox"),
    marker=dict(type="str", default=MARKER),
)
#: Argument spec of a site's ``jobs`` in the modules that take the units of
#: its scheduled jobs (``onebox.deploy.preflight`` verifies them,
#: ``onebox.deploy.site_files`` installs them).
JOB_UNITS_SPEC = dict(type="list", elements="dict", default=[], options=dict(
    name=dict(type="str", required=True),
    service_unit=dict(type="str", required=True),
    timer_unit=dict(type="str", required=True),
    service=dict(type="str", required=True),
    timer=dict(type="str", required=True),
))
#: The GECOS field of every account this collection creates.
ACCOUNT_MARKER = "onebox.deploy site account"


def listening_ports():
    """Ports with a TCP socket in LISTEN state, from /proc/net/tcp{,6}."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (IOError, OSError):
            continue
    return ports


def unit_files(name):
    """Unit files a site owns: its socket and both service styles (a site
    may switch between the restart and the overlap strategy)."""
    return ["%s.socket" % name, "%s.service" % name, "%s@.service" % name]


def account_state(user, group, site_dir):
    """Whether the site's user and group exist and whether this collection made them.

    Returns ``dict(user_exists, user_ours, group_exists, group_ours)``. An
    account is ours when its GECOS field is :data:`ACCOUNT_MARKER`, or (made
    by an earlier version, with an empty GECOS) when its home is the site's
    directory. A group is ours when it is the primary group of an account of
    ours (groups carry no marker: a group without such an account is never
    taken, which is why a failed ``useradd`` removes the group it came with).
    """
    out = dict(user_exists=False, user_ours=False, group_exists=False, group_ours=False)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        entry = None
    if entry is not None:
        out["user_exists"] = True
        gecos = entry.pw_gecos.split(",")[0]
        out["user_ours"] = gecos == ACCOUNT_MARKER or (gecos == "" and entry.pw_dir == site_dir)
    try:
        gentry = grp.getgrnam(group)
    except KeyError:
        gentry = None
    if gentry is not None:
        out["group_exists"] = True
        if entry is not None:
            out["group_ours"] = out["user_ours"] and entry.pw_gid == gentry.gr_gid
        else:
            out["group_ours"] = False
    return out


def account_errors(name, user, group, state):
    errors = []
    if state["user_exists"] and not state["user_ours"]:
        errors.append("site %s: field 'user': the account %s already exists and was not created by onebox.deploy; "
                      "it is never taken over: set the site's user to a name no account has (it is created)"
                      % (name, user))
    if state["group_exists"] and not state["group_ours"]:
        errors.append("site %s: field 'group': the group %s already exists and was not created by onebox.deploy; "
                      "it is never taken over: set the site's group to a name no group has (it is created)"
                      % (name, group))
    return errors


#: How many of a site's latest successful rolls its ready history keeps.
HISTORY_LENGTH = 5
#: The tail of the audit log that is read for it (the newest records).
HISTORY_BYTES = 512 * 1024


def ready_history(path, names, keep=HISTORY_LENGTH, tail=HISTORY_BYTES):
    """``{site: [[time_to_ready_s, time_to_stop_s or None], ...]}``, oldest
    first: the latest *keep* deploys and rollbacks of each site that came
    ready, from the audit log at *path* (its last *tail* bytes)."""
    out = dict((name, []) for name in names)
    for record in tail_json_records(path, tail):
        if record.get("site") not in out:
            continue
        if record.get("action") not in ("deploy", "rollback") or record.get("outcome") != "success":
            continue
        ready = record.get("time_to_ready_s")
        if isinstance(ready, (int, float)) and not isinstance(ready, bool) and ready > 0:
            stop = record.get("time_to_stop_s")
            stop = stop if isinstance(stop, (int, float)) and not isinstance(stop, bool) else None
            out[record["site"]] = (out[record["site"]] + [[ready, stop]])[-keep:]
    return out


def command_problem(site):
    """Why the host cannot run the site's absolute ``command`` executable
    (None when it can, or when the executable lies in the release)."""
    exe = site.get("command_argv0") or ""
    if not exe.startswith("/"):
        return None
    if not os.path.exists(exe):
        return "%s does not exist on the host" % exe
    if not os.path.isfile(exe):
        return "%s on the host is not a file" % exe
    if not os.access(exe, os.X_OK):
        return "%s on the host is not executable" % exe
    return None


def read_unit(path):
    try:
        with open(path) as handle:
            return handle.read(), None
    except (IOError, OSError) as exc:
        return "", exc


class HostState(object):
    """Unit, account, release and port state of the given normalised sites."""

    def __init__(self, systemd, unit_dir, root, marker, env_dir="/etc/onebox"):
        self.systemd = systemd
        self.env_dir = env_dir
        self.unit_dir = unit_dir
        self.root = root
        self.marker = marker

    def instances(self, names):
        """``NAME@*.service`` units systemd knows or that are enabled, per site."""
        found = dict((name, set()) for name in names)
        if not names:
            return found
        rc, out, _err = self.systemd.run([self.systemd.systemctl, "list-units", "--all", "--plain", "--no-legend",
                                          "--full"] + ["%s@*.service" % name for name in names])
        if rc == 0:
            for line in out.splitlines():
                fields = line.split()
                if fields and fields[0].endswith(".service") and "@" in fields[0]:
                    base = fields[0].split("@", 1)[0]
                    if base in found:
                        found[base].add(fields[0])
        for name in names:
            for link in glob.glob(os.path.join(self.unit_dir, "*.wants", "%s@*.service" % name)):
                found[name].add(os.path.basename(link))
        return found

    def released_ports(self, names):
        """Ports that sites removed in this run hold (free for the others): their
        sockets' addresses, the health port their environment file names, and
        the health ports their overlap instances are named after."""
        ports = set()
        props = self.systemd.show_many(["%s.socket" % name for name in names], ("Listen",)) if names else {}
        for unit in props.values():
            for part in (unit.get("Listen") or "").replace("(Stream)", " ").split():
                port = part.rsplit(":", 1)[-1]
                if port.isdigit():
                    ports.add(int(port))
        instances = self.instances(names)
        for name in names:
            try:
                with open(os.path.join(self.env_dir, "%s.env" % name)) as handle:
                    for line in handle:
                        if line.startswith("ONEBOX_HEALTH_LISTEN="):
                            port = line.strip().rsplit(":", 1)[-1].rsplit("=", 1)[-1]
                            if port.isdigit():
                                ports.add(int(port))
            except (IOError, OSError):
                pass
            for unit in instances[name]:
                instance = unit[len(name) + 1:-len(".service")]
                if instance.isdigit():
                    ports.add(int(instance))
        return ports

    def job_unit_errors(self, site):
        """A unit file at the path of one of the site's job units that this
        collection did not write is never overwritten: an error naming the job."""
        errors = []
        for job in site.get("jobs") or []:
            for unit in (job["service_unit"], job["timer_unit"]):
                path = os.path.join(self.unit_dir, unit)
                if os.path.lexists(path):
                    content, exc = read_unit(path)
                    if exc is not None or self.marker not in content:
                        errors.append("site %s: field 'timers[%s].name': %s exists and was not written by "
                                      "onebox.deploy; rename the job or remove that unit" % (site["name"], job["name"],
                                                                                             path))
                for vendor in VENDOR_UNIT_DIRS:
                    if os.path.lexists(os.path.join(vendor, unit)):
                        errors.append("site %s: field 'timers[%s].name': unit %s already exists in %s (a system "
                                      "unit); rename the job" % (site["name"], job["name"], unit, vendor))
        return errors

    def read(self, sites, force_release=False, check_ports=True, check_accounts=True, releasing=(), audit_log=None):
        """``(state by site name, errors)``; *releasing* names sites removed in
        this run; with *audit_log*, each site's ``ready_history`` from it."""
        errors = []
        state = {}
        ours = {}
        for site in sites:
            name = site["name"]
            info = {"units_present": False, "socket_active": False, "service_active": False,
                    "current_release": None, "unit_files": [], "active_units": [], "stale_units": [],
                    "socket_listen": ""}
            ours[name] = True
            for unit in unit_files(name):
                path = os.path.join(self.unit_dir, unit)
                if os.path.lexists(path):
                    content, exc = read_unit(path)
                    if exc is not None:
                        errors.append("site %s: field 'name': cannot read existing unit %s: %s" % (name, path, exc))
                    if self.marker not in content:
                        ours[name] = False
                        errors.append("site %s: field 'name': %s exists and was not written by onebox.deploy; "
                                      "rename the site or remove that unit" % (name, path))
                    else:
                        info["units_present"] = True
                        info["unit_files"].append(unit)
                for vendor in VENDOR_UNIT_DIRS:
                    vpath = os.path.join(vendor, unit)
                    if os.path.lexists(vpath):
                        ours[name] = False
                        errors.append("site %s: field 'name': unit %s already exists at %s (a system unit); "
                                      "choose another site name" % (name, unit, vpath))
                        break
            errors.extend(self.job_unit_errors(site))
            state[name] = info
        present = [s for s in sites if ours[s["name"]] and state[s["name"]]["units_present"]]
        instances = self.instances([s["name"] for s in present])
        wanted = []
        for site in present:
            name = site["name"]
            wanted.append("%s.socket" % name)
            wanted.extend(site.get("service_units") or ["%s.service" % name])
            wanted.append("%s.service" % name)
            wanted.extend(sorted(instances[name]))
        props = self.systemd.show_many(sorted(set(wanted)), ("ActiveState", "UnitFileState", "Listen"))
        for site in present:
            name = site["name"]
            info = state[name]
            current_units = list(site.get("service_units") or ["%s.service" % name])
            stale = sorted((set(["%s.service" % name]) | instances[name]) - set(current_units))
            socket = props.get("%s.socket" % name) or {}
            info["socket_active"] = socket.get("ActiveState") == "active"
            info["socket_listen"] = socket.get("Listen", "")
            states = dict((unit, (props.get(unit) or {}).get("ActiveState", "")) for unit in current_units + stale)
            info["active_units"] = [unit for unit, st in states.items() if st in RUNNING_STATES[:3]]
            info["stale_units"] = [unit for unit in stale if unit in info["active_units"]
                                   or (props.get(unit) or {}).get("UnitFileState") in ("enabled", "enabled-runtime")]
            info["service_active"] = bool(info["active_units"])
        ports = (listening_ports() - self.released_ports(list(releasing))) if check_ports else set()
        history = ready_history(audit_log, [s["name"] for s in sites]) if audit_log else {}
        for site in sites:
            name = site["name"]
            info = state[name]
            info["ready_history"] = history.get(name) or []
            problem = command_problem(site)
            if problem:
                errors.append("site %s: field 'command': %s" % (name, problem))
            site_dir = site.get("site_dir") or os.path.join(self.root, name)
            current = os.path.join(site_dir, "current")
            if os.path.islink(current):
                info["current_release"] = os.path.basename(os.readlink(current).rstrip("/"))
            releases = list_releases(site_dir)
            info["releases"] = releases
            info["previous_release"] = previous_version(releases, info["current_release"])
            info["release_differs"] = False
            info["release_installed"] = any(r["version"] == site.get("version") for r in releases)
            wanted_sum = site.get("sha256")
            installed = dict((r["version"], r["sha256"]) for r in releases).get(site.get("version"))
            if wanted_sum and installed and installed != wanted_sum:
                info["release_differs"] = True
                # Without a current symlink no release of this site ever served (a
                # first install that was rolled back): replacing it harms nothing.
                never_served = not os.path.islink(current)
                if not (force_release or never_served):
                    errors.append("site %s: field 'version': release %s is already installed with different content "
                                  "(installed sha256:%s, artifact sha256:%s); bump the version, or set "
                                  "onebox_force_release: true to replace it" % (
                                      name, site.get("version"), installed[:12], wanted_sum[:12]))
            if site.get("data"):
                errors.extend(self.data_errors(site, info, site_dir))
            if check_accounts and site.get("user"):
                accounts = account_state(site["user"], site.get("group") or site["user"], site_dir)
                info.update(accounts)
                errors.extend(account_errors(name, site["user"], site.get("group") or site["user"], accounts))
            if check_ports:
                errors.extend(self.port_errors(site, info, ports))
        return state, errors

    @staticmethod
    def data_errors(site, info, site_dir):
        """The state of a site's declared data (``data``: whether each file
        exists, and its bytes), and its snapshots, into *info*; errors for a
        file that is a link, under one or not a regular file, and for a file
        missing although a release serves (before a first release it is only
        "not created yet")."""
        name = site["name"]
        state, problems = data_state(site_dir, site["data"])
        info["data"] = state
        info["snapshots"] = list_snapshots(site_dir)
        errors = ["site %s: field 'data': %s" % (name, problem) for problem in problems]
        for rel in site["data"]:
            if rel in state and not state[rel]["exists"] and info.get("current_release"):
                errors.append("site %s: field 'data': %s does not exist on the host, although release %s serves: "
                              "declare the files the app writes (a file is \"not created yet\" only before a "
                              "first release)" % (name, os.path.join(site_dir, rel), info["current_release"]))
        return errors

    @staticmethod
    def port_errors(site, info, ports):
        """A port in use is fine only when this site itself holds it: its socket
        unit for listen (systemd lists the address), its running service for a
        separate health port."""
        errors = []
        name = site["name"]
        socket_listen = info.get("socket_listen", "")
        if site["listen_port"] in ports:
            held = info["socket_active"] and (site["listen"] + " " in socket_listen + " "
                                              or ":%d " % site["listen_port"] in socket_listen + " "
                                              or socket_listen.startswith("%d " % site["listen_port"]))
            if not held:
                errors.append("site %s: field 'listen': port %d is already in use on the host by "
                              "something other than %s.socket" % (name, site["listen_port"], name))
        health_ports = [int(i) for i in site.get("instances") or []] or [site["health_port"]]
        for port in health_ports:
            if port != site["listen_port"] and port in ports and not info["service_active"]:
                errors.append("site %s: field 'health_listen': port %d is already in use on the host by "
                              "something other than the site's service" % (name, port))
        return errors
