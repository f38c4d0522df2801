# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site model, on the controller: each ``onebox_sites`` entry checked and
parsed once (:func:`parse_sites`), then normalised from what was parsed
(:func:`normalize_site`). Every problem names the site and the field.

A normalised site carries its addresses parsed (``listen_ip``,
``listen_port``, ``health_ip``, ``health_port``) and its artifact inspected
(``artifact_kind``, ``artifact_strip``), so no later step parses them again.
Secret values never travel with it, only their names (``secret_env_keys``).

Pure functions, except that checking artifacts reads the controller's files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import shlex

from ansible.module_utils.six.moves.collections_abc import Mapping, Sequence
from ansible_collections.onebox.deploy.plugins.plugin_utils._artifacts import (
    ArtifactError,
    directory_problem,
    inspect_tarball,
    sha256_of,
)
from ansible_collections.onebox.deploy.plugins.plugin_utils._units import (
    merge_directives,
    sandbox_directives,
    systemd_quote,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DIRECTIVE_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
CHECKSUM_RE = re.compile(r"^sha256:[0-9a-f]{64}$")

# Fields a site may carry; anything else is a typo worth an error.
SITE_FIELDS = frozenset([
    "name", "listen", "health_listen", "version", "artifact", "command", "env",
    "secret_env", "user", "group", "readiness_path", "liveness_path", "backlog",
    "drain_timeout", "start_timeout", "ready_timeout", "restart_sec",
    "service_type", "strategy", "unit_directives", "service_directives",
    "socket_directives", "domain", "domains", "rule", "checksum", "state", "purge",
    "data", "data_writers", "timers", "maintenance",
])
#: A scheduled job of a site (``timers``): ``<site>_<job>.timer`` starts the
#: oneshot ``<site>_<job>.service``. Site names never contain ``_``, so a job
#: unit never takes the name of another site's unit.
JOB_FIELDS = frozenset(["name", "on_calendar", "command", "timeout"])
JOB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
#: Seconds a job may run when it sets no ``timeout`` (its TimeoutStartSec=):
#: a roll of its site waits for a running job at most that long, well inside
#: the deploy lock's default TTL of 900 s.
JOB_TIMEOUT_DEFAULT = 600
STATES = ("present", "absent")
SERVICE_TYPES = ("exec", "notify", "simple")
# restart: one <name>.service, stopped then started (one process at a time).
# overlap: template <name>@.service; instances named after their health port
# (health_listen port and the next one) share the socket; see docs/units.md.
STRATEGIES = ("restart", "overlap")
#: ``data_writers``: ``one`` (default) when only one process may write the
#: site's data at a time (a SQLite file), ``many`` when the app allows two.
DATA_WRITERS = ("one", "many")
#: A declared data path: inside the site's shared/ directory, plain names only.
DATA_PATH_RE = re.compile(r"^shared(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)+$")
#: Files SQLite keeps next to a database; declared data names the database itself.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
#: Site fields whose default is a role setting of the same name with the
#: ``onebox_`` prefix (``backlog`` <- ``onebox_backlog``). The values live in
#: roles/site/defaults/main.yml only; the normaliser takes them as settings.
SITE_SETTINGS = ("backlog", "drain_timeout", "start_timeout", "ready_timeout", "restart_sec",
                 "service_type", "strategy", "readiness_path", "liveness_path")
#: Settings the normaliser needs besides SITE_SETTINGS (onebox_root, onebox_env_dir).
PATH_SETTINGS = ("root", "env_dir")
#: The number fields of a site: whole numbers, and any number.
WHOLE_FIELDS = ("backlog",)
NUMBER_FIELDS = ("drain_timeout", "start_timeout", "ready_timeout", "restart_sec")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


# --------------------------------------------------------------------------
# addresses
# --------------------------------------------------------------------------

def parse_listen(value):
    """Parse ``host:port``, ``[v6]:port`` or a bare ``port``.

    Returns ``(host, port)`` where host is ``''`` for "all interfaces".
    Raises ``ValueError`` with a short reason.
    """
    if isinstance(value, bool):
        raise ValueError("must be host:port, [v6]:port or a port number")
    if isinstance(value, int):
        host, port_s = "", str(value)
    else:
        text = str(value).strip()
        if not text:
            raise ValueError("is empty")
        if text.isdigit():
            host, port_s = "", text
        elif text.startswith("["):
            end = text.find("]")
            if end < 0 or text[end + 1:end + 2] != ":":
                raise ValueError("IPv6 form must be [address]:port")
            host, port_s = text[1:end], text[end + 2:]
            if ":" not in host:
                raise ValueError("brackets are only for IPv6 addresses")
        else:
            if text.count(":") != 1:
                raise ValueError("must be host:port, [v6]:port or a port number")
            host, port_s = text.split(":")
            if not host:
                raise ValueError("host before ':' is empty")
    if not port_s.isdigit():
        raise ValueError("port %r is not a number" % port_s)
    port = int(port_s)
    if not 1 <= port <= 65535:
        raise ValueError("port %d is outside 1-65535" % port)
    return host, port


def ip_literal(host):
    """Refuse a host part that is not an IP address: systemd's ListenStream=
    takes addresses only (a name fails at unit verification, after the host
    changed). ``''`` (all interfaces) is fine."""
    if not host:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("host %r is not an IP address (systemd's ListenStream= takes no host names: use "
                         "127.0.0.1, [::1] or a bare port for all interfaces)" % host)


def format_listen(host, port):
    """Render a parsed address the way systemd's ListenStream= wants it."""
    if not host:
        return str(port)
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def url_host(host):
    """Host part for a URL that reaches ``host`` from the same machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host:
        return "[%s]" % host
    return host


def addresses_overlap(a, b):
    """True when two parsed (host, port) listeners would collide."""
    if a[1] != b[1]:
        return False
    return a[0] == b[0] or a[0] in WILDCARD_HOSTS or b[0] in WILDCARD_HOSTS


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------

def artifact_kind(path):
    """Classify a controller-side artifact path: dir, tarball or file."""
    if os.path.isdir(path):
        return "dir"
    if path.endswith((".tar.gz", ".tgz")):
        return "tarball"
    return "file"


def resolve_artifact(artifact, base):
    """Absolute controller path of an artifact; relative ones join ``base``."""
    artifact = os.path.expanduser(str(artifact))
    if os.path.isabs(artifact):
        return os.path.normpath(artifact)
    return os.path.normpath(os.path.join(base or os.getcwd(), artifact))


def kind_of(value):
    """``null``, ``list``, ``dict`` or the type's name, for a message (Ansible's
    lazy containers are lists and mappings by another name)."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, (list, tuple, Sequence)) and not isinstance(value, str):
        return "list"
    return type(value).__name__


def env_value(value):
    """An env/secret_env value as the environment file writes it: booleans as
    ``true``/``false``, numbers as written, strings as they are. None for a
    value that has no text form (null, a list, a mapping)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


# --------------------------------------------------------------------------
# checking and parsing, one site at a time
# --------------------------------------------------------------------------

class SiteCheck(object):
    """One entry of ``onebox_sites`` being checked: its label for messages
    (its name, or its position when the name is unusable) and its errors."""

    def __init__(self, site, index, errors):
        self.site = site
        self.index = index
        self.errors = errors
        name = site.get("name")
        self.label = "%r (onebox_sites[%d])" % (name, index) if name else "onebox_sites[%d]" % index

    def error(self, field, message):
        self.errors.append("site %s: field '%s' %s" % (self.label, field, message))

    def check_identity(self, seen_names):
        site = self.site
        name = site.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.error("name", "must match ^[a-z][a-z0-9-]{0,30}$, got %r" % (name,))
        elif name in seen_names:
            self.error("name", "is already used by onebox_sites[%d]" % seen_names[name])
        else:
            seen_names[name] = self.index
        for field in sorted(set(site) - SITE_FIELDS):
            self.error(field, "is not a known site field")
        if site.get("state") not in (None,) + STATES:
            self.error("state", "must be one of %s, got %r" % (", ".join(STATES), site.get("state")))
        if site.get("purge") is not None and not isinstance(site.get("purge"), bool):
            self.error("purge", "must be true or false, got %r" % (site.get("purge"),))
        elif site.get("purge") and site.get("state") != "absent":
            self.error("purge", "only goes with state: absent")

    def check_account(self):
        for field in ("user", "group"):
            value = self.site.get(field)
            if value is not None and (not isinstance(value, str) or not USER_RE.match(value)):
                self.error(field, "must be a valid user/group name, got %r" % (value,))

    def check_version(self):
        version = self.site.get("version")
        if not isinstance(version, str) or not VERSION_RE.match(version):
            self.error("version", "must match ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$, got %r" % (version,))

    def parse_addresses(self, default_strategy, listeners):
        """``{'listen': (host, port), 'health_listen': (host, port)}`` of the
        fields that parse; checks them against each other and against the
        sites before (*listeners*, which this site's addresses join)."""
        site = self.site
        parsed = {}
        for field in ("listen", "health_listen"):
            if field not in site or site[field] in (None, ""):
                if field == "listen":
                    self.error(field, "is required (host:port, [v6]:port or a port)")
                continue
            try:
                parsed[field] = parse_listen(site[field])
                ip_literal(parsed[field][0])
            except ValueError as exc:
                parsed.pop(field, None)
                self.error(field, "%s, got %r" % (exc, site[field]))
        if "listen" not in parsed:
            return parsed
        addresses = [("listen", parsed["listen"])]
        if "health_listen" in parsed and parsed["health_listen"] != parsed["listen"]:
            if addresses_overlap(parsed["health_listen"], parsed["listen"]):
                self.error("health_listen", "overlaps the site's own listen %r" % (site["listen"],))
            addresses.append(("health_listen", parsed["health_listen"]))
        if (site.get("strategy") or default_strategy) == "overlap":
            addresses.extend(self._second_instance(parsed))
        for field, addr in addresses:
            for other_addr, other_label, other_field in listeners:
                if addresses_overlap(addr, other_addr):
                    self.error(field, "%s collides with %s %s" % (format_listen(*addr), other_label, other_field))
                    break
        listeners.extend((addr, self.label, field) for field, addr in addresses)
        return parsed

    def _second_instance(self, parsed):
        """Each overlap instance needs a health port of its own: the new one is
        asked for readiness while the old one still serves."""
        site = self.site
        if "health_listen" not in parsed or parsed["health_listen"] == parsed["listen"]:
            if not (site.get("health_listen") and "health_listen" not in parsed):
                self.error("health_listen", "is required with strategy overlap and must differ from listen: "
                           "instance A uses its port, instance B the next one")
            return []
        host, port = parsed["health_listen"]
        if port >= 65535:
            self.error("health_listen", "port %d leaves no next port for the second overlap instance" % port)
            return []
        second = (host, port + 1)
        if addresses_overlap(second, parsed["listen"]):
            self.error("health_listen", "the second overlap instance's port %d overlaps the site's own listen %r"
                       % (port + 1, site["listen"]))
        return [("health_listen", second)]

    def parse_command(self):
        """The command's argv ([] when missing or bad)."""
        command = self.site.get("command")
        if command is None:
            return []
        if not isinstance(command, str) or not command.strip():
            self.error("command", "must be a non-empty string")
            return []
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            self.error("command", "cannot be parsed: %s" % exc)
            return []
        if argv and ".." in argv[0].split("/"):
            self.error("command", "executable must not contain '..': %r" % argv[0])
            return []
        return argv

    def inspect_artifact(self, base, argv):
        """``dict(path, kind, strip)`` of the artifact on the controller, or None."""
        artifact = self.site.get("artifact")
        if not isinstance(artifact, str) or not artifact:
            self.error("artifact", "is required (a directory, an executable file or a .tar.gz)")
            return None
        exe = argv[0] if argv and not os.path.isabs(argv[0]) else None
        path = resolve_artifact(artifact, base)
        if not os.path.exists(path):
            self.error("artifact", "%s does not exist on the controller" % path)
            return None
        found = dict(path=path, kind=artifact_kind(path), strip="")
        if found["kind"] == "tarball":
            try:
                tarball = inspect_tarball(path, exe)
            except ArtifactError as exc:
                self.error("artifact", "%s %s" % (path, exc))
            else:
                found["strip"] = tarball["strip"]
                if exe and os.path.normpath(exe) not in tarball["names"]:
                    self.error("command", "%r is not a file in the artifact %s" % (exe, path))
        elif found["kind"] == "dir":
            problem = directory_problem(path)
            if problem:
                self.error("artifact", "%s: %s" % (path, problem))
            elif exe:
                full = os.path.join(path, exe)
                if not os.path.isfile(full):
                    self.error("command", "%r is not a file in the artifact %s" % (exe, path))
                elif not os.access(full, os.X_OK):
                    self.error("command", "%s is not executable" % full)
        elif not os.path.isfile(path):
            self.error("artifact", "%s is not a regular file" % path)
        elif not os.access(path, os.X_OK):
            self.error("artifact", "%s is not executable (chmod +x, or ship a directory or .tar.gz)" % path)
        if self.site.get("command") is None and found["kind"] in ("dir", "tarball"):
            self.error("command", "is required when the artifact is a directory or tarball")
        return found

    def check_checksum(self, artifact, sums):
        checksum = self.site.get("checksum")
        if checksum is None:
            return
        if not isinstance(checksum, str) or not CHECKSUM_RE.match(checksum):
            self.error("checksum", "must be sha256:<64 lowercase hex digits>, got %r" % (checksum,))
        elif artifact is not None and (sums is None or self.site.get("name") in sums):
            actual = (sums.get(self.site.get("name")) if sums else None) or sha256_of(artifact["path"])
            if actual != checksum[len("sha256:"):]:
                self.error("checksum", "the artifact %s has sha256:%s, not %s" % (artifact["path"], actual, checksum))

    def check_env(self):
        keys = {}
        for field in ("env", "secret_env"):
            value = self.site.get(field)
            if value in (None, {}):
                continue
            if not isinstance(value, dict):
                self.error(field, "must be a mapping of variable name to value")
                continue
            for key, val in value.items():
                # Never echo a value: it may be a secret.
                if not ENV_KEY_RE.match(str(key)):
                    self.error(field, "has an invalid variable name %r" % (key,))
                elif env_value(val) is None:
                    self.error(field, "value of %s must be a string, a number or a boolean, got %s"
                               % (key, kind_of(val)))
                elif "\n" in env_value(val) or "\x00" in env_value(val):
                    self.error(field, "value of %s must not contain a newline or NUL" % key)
                elif key in keys:
                    self.error(field, "%s is also set in %s; set it in one of them" % (key, keys[key]))
                keys.setdefault(key, field)

    def check_data(self, default_strategy):
        """``data`` (the site's SQLite files, snapshotted before each roll that
        changes its release) and ``data_writers``; a site whose data allows one
        writer may not overlap two processes."""
        site = self.site
        data = site.get("data")
        paths = []
        if data not in (None, []):
            if not isinstance(data, list):
                self.error("data", "must be a list of paths inside the site's shared/ directory, "
                           "such as [shared/app.db], got %s" % kind_of(data))
                data = []
            for path in data:
                if not isinstance(path, str) or not DATA_PATH_RE.match(path) or ".." in path.split("/"):
                    self.error("data", "%r is not a path inside shared/: give it relative to the site's directory, "
                               "such as shared/app.db (letters, digits, '.', '_', '+', '-'; no part that starts with '.')"
                               % (path,))
                elif path.endswith(SQLITE_COMPANIONS):
                    self.error("data", "%r is a file SQLite keeps next to a database; name the database itself "
                               "(its -wal and -shm files go with it)" % path)
                elif path in paths:
                    self.error("data", "names %s twice" % path)
                else:
                    paths.append(path)
        writers = site.get("data_writers")
        if writers not in (None,) + DATA_WRITERS:
            self.error("data_writers", "must be one of %s, got %r" % (", ".join(DATA_WRITERS), writers))
        elif paths and (site.get("strategy") or default_strategy) == "overlap" and writers != "many":
            self.error("strategy", "overlap runs the old and the new release at once for a moment, so two processes "
                       "would write %s; a SQLite file allows one writer process at a time. Use strategy restart, "
                       "or set data_writers: many if the app allows two writers" % ", ".join(paths))

    def check_timers(self):
        """``timers``: a list of scheduled jobs, each with a unique ``name`` (a
        unit-name fragment), an ``on_calendar`` (systemd's calendar syntax; the
        host's ``systemd-analyze calendar`` checks it in preflight), a
        ``command`` (as the site's, no ``..`` path part) and an optional
        ``timeout`` in seconds. Errors name the field as ``timers[JOB].KEY``."""
        timers = self.site.get("timers")
        if timers in (None, []):
            return
        if not isinstance(timers, list):
            self.error("timers", "must be a list of jobs, each with name, on_calendar and command, got %s"
                       % kind_of(timers))
            return
        seen = {}
        for index, job in enumerate(timers):
            if not isinstance(job, dict):
                self.error("timers[%d]" % index, "must be a mapping with name, on_calendar and command, got %s"
                           % kind_of(job))
                continue
            name = job.get("name")
            label = "timers[%s]" % name if isinstance(name, str) and JOB_NAME_RE.match(name) else "timers[%d]" % index
            if name is None:
                self.error(label + ".name", "is required (^[a-z0-9][a-z0-9-]{0,31}$, part of the unit names)")
            elif not isinstance(name, str) or not JOB_NAME_RE.match(name):
                self.error(label + ".name", "must match ^[a-z0-9][a-z0-9-]{0,31}$ (part of the unit names "
                           "<site>_<name>.timer and .service), got %r" % (name,))
            elif name in seen:
                self.error(label + ".name", "is already used by timers[%d]" % seen[name])
            else:
                seen[name] = index
            for field in sorted(set(job) - JOB_FIELDS):
                self.error("%s.%s" % (label, field), "is not a known field of a job (name, on_calendar, command, "
                           "timeout)")
            calendar = job.get("on_calendar")
            if not isinstance(calendar, str) or not calendar.strip():
                self.error(label + ".on_calendar", "is required: a calendar in systemd's syntax, such as daily or "
                           "*-*-* 03:00:00, got %r" % (calendar,))
            elif any(ord(c) < 32 for c in calendar):
                self.error(label + ".on_calendar", "must be one line without control characters")
            problem = job_argv(job.get("command"))[1]
            if problem:
                self.error(label + ".command", problem)
            timeout = job.get("timeout")
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                        or not timeout > 0 or timeout > 86400):
                self.error(label + ".timeout", "must be a number of seconds greater than 0 and at most 86400, "
                           "got %r" % (timeout,))

    def check_settings(self):
        """The fields that override a role setting: paths, numbers, choices, directives."""
        site = self.site
        for field in ("readiness_path", "liveness_path"):
            value = site.get(field)
            if value is not None and (not isinstance(value, str) or not value.startswith("/") or " " in value):
                self.error(field, "must be a URL path starting with '/', got %r" % (value,))
        for field in WHOLE_FIELDS + NUMBER_FIELDS:
            self._positive_number(field, integer=field in WHOLE_FIELDS)
        for field, choices in (("service_type", SERVICE_TYPES), ("strategy", STRATEGIES)):
            if site.get(field) not in (None,) + choices:
                self.error(field, "must be one of %s, got %r" % (", ".join(choices), site.get(field)))
        for field in ("unit_directives", "service_directives", "socket_directives"):
            self._directives(field)
        if site.get("maintenance") is not None and not isinstance(site.get("maintenance"), bool):
            self.error("maintenance", "must be true or false, got %r" % (site.get("maintenance"),))

    def _positive_number(self, field, integer=False):
        value = self.site.get(field)
        if value is None:
            return
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            self.error(field, "must be a %s, got %r" % ("whole number" if integer else "number", value))
        elif value <= 0:
            self.error(field, "must be greater than 0.0, got %r" % (value,))

    def _directives(self, field):
        value = self.site.get(field)
        if value in (None, {}):
            return
        if not isinstance(value, dict):
            self.error(field, "must be a mapping of directive to value")
            return
        for key, val in value.items():
            if not DIRECTIVE_RE.match(str(key)):
                self.error(field, "has an invalid directive name %r" % (key,))
            for item in val if isinstance(val, list) else [val]:
                if item is not None and not isinstance(item, (str, int, float, bool)):
                    self.error(field, "directive %s must be a string, a number, a boolean or a list of those" % key)
                elif "\n" in str(item):
                    self.error(field, "directive %s must not contain a newline" % key)


def job_argv(command):
    """``(argv, problem)`` of a job's ``command``: split as a shell splits it,
    one line, no argument with a ``..`` path part (as ``onebox.deploy.run``)."""
    if not isinstance(command, str) or not command.strip():
        return [], "is required: the command to run, such as 'bin/blog cleanup' (relative to the release)"
    if "\n" in command or "\x00" in command:
        return [], "must be one line without NUL"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return [], "cannot be parsed: %s" % exc
    for arg in argv:
        if ".." in arg.split("/"):
            return [], ("has the argument %r with a '..' path part; give paths inside the release (relative to "
                        "current) or absolute ones" % arg)
    return argv, None


def normalize_jobs(site):
    """The scheduled jobs of a normalised site: per job its units, calendar,
    ExecStart= line (a relative executable resolves inside ``current``, as the
    site's command) and timeout."""
    jobs = []
    for job in site.get("timers") or []:
        argv = job_argv(job["command"])[0]
        exe = argv[0] if os.path.isabs(argv[0]) else os.path.join(site["site_dir"], "current", argv[0])
        unit = "%s_%s" % (site["name"], job["name"])
        jobs.append(dict(name=job["name"], on_calendar=job["on_calendar"].strip(), command=job["command"],
                         exec_start=" ".join(systemd_quote(arg) for arg in [exe] + argv[1:]),
                         timeout=float(job.get("timeout") or JOB_TIMEOUT_DEFAULT),
                         service_unit=unit + ".service", timer_unit=unit + ".timer"))
    return jobs


def parse_sites(sites, artifact_base=None, check_artifacts=True, default_strategy="restart", sums=None):
    """Check and parse every entry of ``onebox_sites`` once.

    Returns ``(errors, parsed)``: every problem, each naming the site (its
    name, or its position when the name is unusable) and the field; and per
    position of a present site what was parsed: ``addresses`` (see
    :meth:`SiteCheck.parse_addresses`), ``argv`` and ``artifact`` (``path``,
    ``kind``, ``strip``; None without the check). ``default_strategy`` is
    the strategy of sites that set none (``onebox_strategy``); ``sums`` maps
    site names to their artifact's SHA-256 when already known, and then only
    the checksums of those sites are compared (the sites of this run).
    """
    errors = []
    if not isinstance(sites, list):
        return ["onebox_sites must be a list of site mappings, got %s" % type(sites).__name__], {}
    seen_names = {}
    listeners = []  # (address, label, field)
    parsed = {}
    for index, site in enumerate(sites):
        if not isinstance(site, dict):
            errors.append("onebox_sites[%d] must be a mapping, got %s" % (index, type(site).__name__))
            continue
        check = SiteCheck(site, index, errors)
        check.check_identity(seen_names)
        if site.get("state") == "absent":
            check.check_account()       # only what removing it needs: the account it runs as
            continue
        check.check_version()
        addresses = check.parse_addresses(default_strategy, listeners)
        argv = check.parse_command()
        artifact = check.inspect_artifact(artifact_base, argv) if check_artifacts else None
        if not check_artifacts and not (isinstance(site.get("artifact"), str) and site.get("artifact")):
            check.error("artifact", "is required (a directory, an executable file or a .tar.gz)")
        check.check_checksum(artifact, sums)
        check.check_env()
        check.check_account()
        check.check_settings()
        check.check_data(default_strategy)
        check.check_timers()
        parsed[index] = dict(addresses=addresses, argv=argv, artifact=artifact)
    return errors, parsed


def validate_sites(sites, artifact_base=None, check_artifacts=True, default_strategy="restart", sums=None):
    """The errors of :func:`parse_sites`; empty when every site is fine."""
    return parse_sites(sites, artifact_base, check_artifacts, default_strategy, sums)[0]


# --------------------------------------------------------------------------
# normalising
# --------------------------------------------------------------------------

def normalize_absent(site, defaults):
    """What removing a ``state: absent`` site needs: its name, directory and account."""
    name = site["name"]
    user = site.get("user") or name
    return dict(name=name, state="absent", purge=bool(site.get("purge")), user=user,
                group=site.get("group") or user, site_dir=os.path.join(defaults["root"], name))


def normalize_site(site, defaults, artifact_base=None, parsed=None):
    """Fill defaults and derive the values the templates and tasks need.

    ``site`` must already have passed :func:`validate_sites`; ``defaults``
    holds every key of :data:`SITE_SETTINGS` and :data:`PATH_SETTINGS` (the
    role's settings). *parsed* is what :func:`parse_sites` parsed of it;
    without it the site is parsed here.
    """
    missing = [key for key in SITE_SETTINGS + PATH_SETTINGS if key not in (defaults or {})]
    if missing:
        raise KeyError("normalize_site needs the settings %s" % ", ".join(missing))
    parsed = parsed or {}
    addresses = parsed.get("addresses") or {}
    out = dict(defaults)
    out.update({k: v for k, v in site.items() if v is not None})
    name = out["name"]
    listen = addresses.get("listen") or parse_listen(out["listen"])
    health = addresses.get("health_listen") or (parse_listen(out["health_listen"]) if out.get("health_listen")
                                                else listen)
    out["listen"] = format_listen(*listen)
    out["health_listen"] = format_listen(*health)
    out["listen_ip"], out["listen_port"] = listen
    out["health_ip"], out["health_port"] = health
    # host part of health_listen as systemd/the app write it ("" = all interfaces)
    out["health_host"] = format_listen(health[0], 0)[:-2] if health[0] else ""
    base_url = "http://%s:%d" % (url_host(health[0]), health[1])
    out["readiness_url"] = base_url + out["readiness_path"]
    out["liveness_url"] = base_url + out["liveness_path"]
    out["public_url"] = "http://%s:%d/" % (url_host(listen[0]), listen[1])
    out.setdefault("user", name)
    out.setdefault("group", out["user"])
    out["env"] = dict((str(k), env_value(v)) for k, v in (out.get("env") or {}).items())
    # Secret values never travel with the normalised site (loop output, module
    # arguments and the target's journal would show them); only their names do.
    # The environment file template reads them from onebox_sites directly.
    out["secret_env_keys"] = sorted(str(k) for k in (out.pop("secret_env", None) or {}))
    out["data"] = list(out.get("data") or [])
    out["data_writers"] = out.get("data_writers") or "one"
    # Traefik answers 503 with a page for it (onebox_maintenance_sites adds sites for one run).
    out["maintenance"] = bool(out.get("maintenance"))
    artifact = parsed.get("artifact") or {}
    path = artifact.get("path") or resolve_artifact(out["artifact"], artifact_base)
    kind = artifact.get("kind") or artifact_kind(path)
    if kind == "dir":
        path = path.rstrip("/") + "/"
    out["artifact_path"] = path
    out["artifact_kind"] = kind
    if not out.get("command"):
        out["command"] = os.path.basename(path)
    argv = parsed.get("argv") or shlex.split(out["command"])
    out["command_argv0"] = argv[0]
    out["site_dir"] = os.path.join(out["root"], name)
    exe = argv[0] if os.path.isabs(argv[0]) else os.path.join(out["site_dir"], "current", argv[0])
    out["exec_start"] = " ".join(systemd_quote(arg) for arg in [exe] + argv[1:])
    # systemd must give the app its whole drain time before it sends SIGKILL.
    out["stop_timeout"] = float(out["drain_timeout"]) + 5
    if out["strategy"] == "overlap":
        # Instances are named after their health port, so the unit template
        # can hand each one its own address (ONEBOX_HEALTH_LISTEN=host:%i).
        out["instances"] = [str(health[1]), str(health[1] + 1)]
        out["service_file"] = "%s@.service" % name
        out["service_units"] = ["%s@%s.service" % (name, i) for i in out["instances"]]
        out["retired_file"] = "%s.service" % name
        inst_url = "http://%s:{instance}" % url_host(health[0])
        out["readiness_url"] = inst_url + out["readiness_path"]
        out["liveness_url"] = inst_url + out["liveness_path"]
    else:
        out["instances"] = []
        out["service_file"] = "%s.service" % name
        out["service_units"] = ["%s.service" % name]
        out["retired_file"] = "%s@.service" % name
    # The unit the socket starts when a connection arrives and nothing runs.
    out["trigger_unit"] = out["service_units"][0]
    # Sandboxing defaults with the site's own service_directives applied by name.
    out["service_directives"] = merge_directives(sandbox_directives(out), out.get("service_directives"))
    # Scheduled jobs run with that same sandbox and environment file.
    out["jobs"] = normalize_jobs(out)
    out.pop("timers", None)
    return out


__all__ = ["DATA_WRITERS", "JOB_FIELDS", "JOB_TIMEOUT_DEFAULT", "PATH_SETTINGS", "SERVICE_TYPES", "SITE_FIELDS",
           "SITE_SETTINGS", "STATES", "STRATEGIES", "WILDCARD_HOSTS", "SiteCheck", "addresses_overlap", "artifact_kind",
           "env_value", "format_listen", "ip_literal", "job_argv", "kind_of", "normalize_absent", "normalize_jobs",
           "normalize_site", "parse_listen", "parse_sites", "resolve_artifact", "url_host", "validate_sites"]
