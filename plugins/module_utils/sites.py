# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing, validation and normalisation of ``onebox_sites`` entries.

Pure functions with no side effects except reading the controller's file
system (artifact checks). Used by the ``onebox.deploy.sites`` filters on the
controller and by modules on the target.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import shlex

from ansible.module_utils.six.moves.collections_abc import Mapping, Sequence
from ansible_collections.onebox.deploy.plugins.module_utils.artifacts import (
    ArtifactError,
    directory_problem,
    inspect_tarball,
    sha256_of,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]*$")
DIRECTIVE_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")

# Fields a site may carry; anything else is a typo worth an error.
SITE_FIELDS = frozenset([
    "name", "listen", "health_listen", "version", "artifact", "command", "env",
    "secret_env", "user", "group", "readiness_path", "liveness_path", "backlog",
    "drain_timeout", "start_timeout", "ready_timeout", "restart_sec",
    "service_type", "strategy", "unit_directives", "service_directives",
    "socket_directives", "domain", "domains", "rule", "checksum", "state", "purge",
])
STATES = ("present", "absent")
CHECKSUM_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SERVICE_TYPES = ("exec", "notify", "simple")
# restart: one <name>.service, stopped then started (one process at a time).
# overlap: template <name>@.service; instances named after their health port
# (health_listen port and the next one) share the socket; see docs/units.md.
STRATEGIES = ("restart", "overlap")


# Sandboxing of every site service (docs/units.md, "Sandboxing"), written in
# this order after the service's own settings. A key of a site's service_directives
# replaces the default of the same name; an empty value removes it.
SANDBOX_DEFAULTS = (
    ("NoNewPrivileges", "yes"),
    # Empty: no capability at all (the socket is bound by systemd). A site whose
    # app binds a port below 1024 itself gets CAP_NET_BIND_SERVICE, see below.
    ("CapabilityBoundingSet", ""),
    ("ProtectSystem", "strict"),
    ("ReadWritePaths", None),  # the site's shared/ directory
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("DevicePolicy", "closed"),
    ("PrivateMounts", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("LockPersonality", "yes"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("RemoveIPC", "yes"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("SystemCallArchitectures", "native"),
    # @privileged includes the set*id calls, and pre-fork servers (gunicorn,
    # uWSGI) call setuid()/setgid() to the ids they already have in every
    # worker: allowed again (@setuid). With no capability they cannot switch
    # to any other id, so the call is harmless.
    ("SystemCallFilter", ["@system-service", "~@privileged @resources", "@setuid"]),
    # A filtered call fails with EPERM instead of killing the process.
    ("SystemCallErrorNumber", "EPERM"),
    ("UMask", "0027"),
)
# Not among them: MemoryDenyWriteExecute makes JIT runtimes (Node/V8, the JVM,
# .NET, LuaJIT, PHP's opcache JIT, ...) fail at start, and the exposure target
# is met without it. A site turns it on with
# service_directives: {MemoryDenyWriteExecute: true}.


class SiteError(ValueError):
    """A site entry is invalid; ``str()`` names the site and the field."""


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
    wildcard = ("", "0.0.0.0", "::")
    return a[0] == b[0] or a[0] in wildcard or b[0] in wildcard


def artifact_kind(path):
    """Classify a controller-side artifact path: dir, tarball or file."""
    if os.path.isdir(path):
        return "dir"
    if path.endswith((".tar.gz", ".tgz")):
        return "tarball"
    return "file"


def tarball_problem(path, executable=None):
    """Why a tarball artifact must not be unpacked (None when it is fine)."""
    try:
        inspect_tarball(path, executable)
    except ArtifactError as exc:
        return str(exc)
    return None


#: SHA-256 of an artifact as deployed (see ``artifacts.sha256_of``).
artifact_sha256 = sha256_of


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


def _err(site_label, field, message):
    return "site %s: field '%s' %s" % (site_label, field, message)


def _positive_number(errors, label, site, field, minimum=0.0, integer=False):
    if field not in site or site[field] is None:
        return
    value = site[field]
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        errors.append(_err(label, field, "must be a %s, got %r" % ("whole number" if integer else "number", value)))
    elif value <= minimum:
        errors.append(_err(label, field, "must be greater than %s, got %r" % (minimum, value)))


def _directives(errors, label, site, field):
    value = site.get(field)
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        errors.append(_err(label, field, "must be a mapping of directive to value"))
        return
    for key, val in value.items():
        if not DIRECTIVE_RE.match(str(key)):
            errors.append(_err(label, field, "has an invalid directive name %r" % (key,)))
        vals = val if isinstance(val, list) else [val]
        for item in vals:
            if item is not None and not isinstance(item, (str, int, float, bool)):
                errors.append(_err(label, field, "directive %s must be a string, a number, a boolean or a list "
                                   "of those" % key))
            elif "\n" in str(item):
                errors.append(_err(label, field, "directive %s must not contain a newline" % key))


def resolve_artifact(artifact, base):
    """Absolute controller path of an artifact; relative ones join ``base``."""
    artifact = os.path.expanduser(str(artifact))
    if os.path.isabs(artifact):
        return os.path.normpath(artifact)
    return os.path.normpath(os.path.join(base or os.getcwd(), artifact))


def validate_sites(sites, artifact_base=None, check_artifacts=True, default_strategy="restart", sums=None):
    """Return a list of human readable errors; empty when all sites are fine.

    Every message names the site (its name, or its position when the name is
    unusable) and the field at fault. ``default_strategy`` is the strategy of
    sites that do not set one (the role's ``onebox_strategy``). ``sums`` maps
    site names to their artifact's SHA-256 when already known; with it only
    the checksums of those sites are compared (the sites of this run).
    """
    errors = []
    if not isinstance(sites, list):
        return ["onebox_sites must be a list of site mappings, got %s" % type(sites).__name__]
    seen_names = {}
    listeners = []  # (address, label, field)
    for index, site in enumerate(sites):
        if not isinstance(site, dict):
            errors.append("onebox_sites[%d] must be a mapping, got %s" % (index, type(site).__name__))
            continue
        name = site.get("name")
        label = "%r (onebox_sites[%d])" % (name, index) if name else "onebox_sites[%d]" % index
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(_err(label, "name", "must match ^[a-z][a-z0-9-]{0,30}$, got %r" % (name,)))
        elif name in seen_names:
            errors.append(_err(label, "name", "is already used by onebox_sites[%d]" % seen_names[name]))
        else:
            seen_names[name] = index
        unknown = sorted(set(site) - SITE_FIELDS)
        for field in unknown:
            errors.append(_err(label, field, "is not a known site field"))
        if site.get("state") not in (None,) + STATES:
            errors.append(_err(label, "state", "must be one of %s, got %r" % (", ".join(STATES), site.get("state"))))
        if site.get("purge") is not None and not isinstance(site.get("purge"), bool):
            errors.append(_err(label, "purge", "must be true or false, got %r" % (site.get("purge"),)))
        elif site.get("purge") and site.get("state") != "absent":
            errors.append(_err(label, "purge", "only goes with state: absent"))
        if site.get("state") == "absent":
            # Only what removing it needs: the name, and the account it runs as.
            for field in ("user", "group"):
                value = site.get(field)
                if value is not None and (not isinstance(value, str) or not USER_RE.match(value)):
                    errors.append(_err(label, field, "must be a valid user/group name, got %r" % (value,)))
            continue

        version = site.get("version")
        if not isinstance(version, str) or not VERSION_RE.match(version):
            errors.append(_err(label, "version", "must match ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$, got %r" % (version,)))

        parsed = {}
        for field in ("listen", "health_listen"):
            if field not in site or site[field] in (None, ""):
                if field == "listen":
                    errors.append(_err(label, field, "is required (host:port, [v6]:port or a port)"))
                continue
            try:
                parsed[field] = parse_listen(site[field])
                ip_literal(parsed[field][0])
            except ValueError as exc:
                parsed.pop(field, None)
                errors.append(_err(label, field, "%s, got %r" % (exc, site[field])))
        strategy = site.get("strategy") or default_strategy
        if "listen" in parsed:
            addresses = [("listen", parsed["listen"])]
            if "health_listen" in parsed and parsed["health_listen"] != parsed["listen"]:
                if addresses_overlap(parsed["health_listen"], parsed["listen"]):
                    errors.append(_err(label, "health_listen", "overlaps the site's own listen %r" % (site["listen"],)))
                addresses.append(("health_listen", parsed["health_listen"]))
            if strategy == "overlap":
                # Each instance needs a health port of its own: the new one is
                # asked for readiness while the old one still serves.
                if "health_listen" not in parsed or parsed["health_listen"] == parsed["listen"]:
                    if not (site.get("health_listen") and "health_listen" not in parsed):
                        errors.append(_err(label, "health_listen", "is required with strategy overlap and must "
                                           "differ from listen: instance A uses its port, instance B the next one"))
                else:
                    host, port = parsed["health_listen"]
                    if port >= 65535:
                        errors.append(_err(label, "health_listen", "port %d leaves no next port for the second "
                                           "overlap instance" % port))
                    else:
                        second = (host, port + 1)
                        if addresses_overlap(second, parsed["listen"]):
                            errors.append(_err(label, "health_listen", "the second overlap instance's port %d "
                                               "overlaps the site's own listen %r" % (port + 1, site["listen"])))
                        addresses.append(("health_listen", second))
            for field, addr in addresses:
                for other_addr, other_label, other_field in listeners:
                    if addresses_overlap(addr, other_addr):
                        errors.append(_err(label, field, "%s collides with %s %s" % (
                            format_listen(*addr), other_label, other_field)))
                        break
            for field, addr in addresses:
                listeners.append((addr, label, field))

        artifact = site.get("artifact")
        command = site.get("command")
        argv = []
        if command is not None:
            if not isinstance(command, str) or not command.strip():
                errors.append(_err(label, "command", "must be a non-empty string"))
            else:
                try:
                    argv = shlex.split(command)
                except ValueError as exc:
                    errors.append(_err(label, "command", "cannot be parsed: %s" % exc))
                if argv and ".." in argv[0].split("/"):
                    errors.append(_err(label, "command", "executable must not contain '..': %r" % argv[0]))
                    argv = []
        exe = argv[0] if argv and not os.path.isabs(argv[0]) else None
        kind = None
        if not isinstance(artifact, str) or not artifact:
            errors.append(_err(label, "artifact", "is required (a directory, an executable file or a .tar.gz)"))
        elif check_artifacts:
            path = resolve_artifact(artifact, artifact_base)
            kind = artifact_kind(path) if os.path.exists(path) else None
            if kind is None:
                errors.append(_err(label, "artifact", "%s does not exist on the controller" % path))
            elif kind == "tarball":
                try:
                    names = inspect_tarball(path, exe)["names"]
                except ArtifactError as exc:
                    errors.append(_err(label, "artifact", "%s %s" % (path, exc)))
                else:
                    if exe and os.path.normpath(exe) not in names:
                        errors.append(_err(label, "command", "%r is not a file in the artifact %s" % (exe, path)))
            elif kind == "dir":
                problem = directory_problem(path)
                if problem:
                    errors.append(_err(label, "artifact", "%s: %s" % (path, problem)))
                elif exe:
                    full = os.path.join(path, exe)
                    if not os.path.isfile(full):
                        errors.append(_err(label, "command", "%r is not a file in the artifact %s" % (exe, path)))
                    elif not os.access(full, os.X_OK):
                        errors.append(_err(label, "command", "%s is not executable" % full))
            elif not os.path.isfile(path):
                errors.append(_err(label, "artifact", "%s is not a regular file" % path))
            elif not os.access(path, os.X_OK):
                errors.append(_err(label, "artifact", "%s is not executable (chmod +x, or ship a directory or "
                                   ".tar.gz)" % path))
            if command is None and kind in ("dir", "tarball"):
                errors.append(_err(label, "command", "is required when the artifact is a directory or tarball"))

        checksum = site.get("checksum")
        if checksum is not None:
            if not isinstance(checksum, str) or not CHECKSUM_RE.match(checksum):
                errors.append(_err(label, "checksum", "must be sha256:<64 lowercase hex digits>, got %r" % (checksum,)))
            elif kind is not None and (sums is None or site.get("name") in sums):
                path = resolve_artifact(artifact, artifact_base)
                actual = sums.get(site.get("name")) if sums else None
                actual = actual or artifact_sha256(path)
                if actual != checksum[len("sha256:"):]:
                    errors.append(_err(label, "checksum", "the artifact %s has sha256:%s, not %s"
                                       % (path, actual, checksum)))

        env_keys = {}
        for field in ("env", "secret_env"):
            value = site.get(field)
            if value in (None, {}):
                continue
            if not isinstance(value, dict):
                errors.append(_err(label, field, "must be a mapping of variable name to value"))
                continue
            for key, val in value.items():
                # Never echo a value: it may be a secret.
                if not ENV_KEY_RE.match(str(key)):
                    errors.append(_err(label, field, "has an invalid variable name %r" % (key,)))
                elif env_value(val) is None:
                    errors.append(_err(label, field, "value of %s must be a string, a number or a boolean, got %s"
                                       % (key, kind_of(val))))
                elif "\n" in env_value(val) or "\x00" in env_value(val):
                    errors.append(_err(label, field, "value of %s must not contain a newline or NUL" % key))
                elif key in env_keys:
                    errors.append(_err(label, field, "%s is also set in %s; set it in one of them" % (key, env_keys[key])))
                env_keys.setdefault(key, field)

        for field in ("user", "group"):
            value = site.get(field)
            if value is not None and (not isinstance(value, str) or not USER_RE.match(value)):
                errors.append(_err(label, field, "must be a valid user/group name, got %r" % (value,)))

        for field in ("readiness_path", "liveness_path"):
            value = site.get(field)
            if value is not None and (not isinstance(value, str) or not value.startswith("/") or " " in value):
                errors.append(_err(label, field, "must be a URL path starting with '/', got %r" % (value,)))

        _positive_number(errors, label, site, "backlog", integer=True)
        for field in ("drain_timeout", "start_timeout", "ready_timeout", "restart_sec"):
            _positive_number(errors, label, site, field)

        if site.get("service_type") not in (None,) + SERVICE_TYPES:
            errors.append(_err(label, "service_type", "must be one of %s, got %r" % (", ".join(SERVICE_TYPES), site.get("service_type"))))
        if site.get("strategy") not in (None,) + STRATEGIES:
            errors.append(_err(label, "strategy", "must be one of %s, got %r" % (", ".join(STRATEGIES), site.get("strategy"))))
        for field in ("unit_directives", "service_directives", "socket_directives"):
            _directives(errors, label, site, field)
    return errors


def _directive_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def merge_directives(defaults, overrides):
    """Unit directives: ``defaults`` with ``overrides`` applied by name.

    ``defaults`` is a sequence of ``(key, value)`` pairs (or a mapping),
    ``overrides`` a mapping. A key of ``overrides`` replaces the default of the
    same name in its place; an empty value (``""``, ``None`` or ``[]``) removes
    it, so systemd's built-in default applies; ``[""]`` writes an explicit empty
    assignment (``Key=``, systemd's reset). Other keys follow in their order.
    Returns an ordered dict of key to a string or a list of strings (a list
    repeats the directive); booleans become ``yes``/``no``.
    """
    pairs = list(defaults.items()) if isinstance(defaults, dict) else list(defaults)
    overrides = overrides or {}
    out = {}
    for key, value in pairs + [(k, v) for k, v in overrides.items() if k not in dict(pairs)]:
        if key in overrides:
            value = overrides[key]
            if value is None or (isinstance(value, (str, list)) and not value):
                continue
        if isinstance(value, list):
            out[key] = [_directive_value(item) for item in value]
        else:
            out[key] = _directive_value(value)
    return out


def sandbox_directives(site):
    """The sandboxing defaults of a normalised site's service (SANDBOX_DEFAULTS).

    The app binds a port itself only when it has a health port of its own
    (``health_listen`` other than ``listen``; always with strategy overlap,
    whose second instance uses the next port): below 1024 it keeps
    CAP_NET_BIND_SERVICE, as its bounding set and as an ambient capability.
    """
    own_port = site["health_listen"] != site["listen"] or site.get("strategy") == "overlap"
    privileged = own_port and site["health_port"] < 1024
    out = []
    for key, value in SANDBOX_DEFAULTS:
        if key == "ReadWritePaths":
            value = systemd_path(os.path.join(site["site_dir"], "shared"))
        elif key == "CapabilityBoundingSet" and privileged:
            out.append((key, "CAP_NET_BIND_SERVICE"))
            key, value = "AmbientCapabilities", "CAP_NET_BIND_SERVICE"
        out.append((key, value))
    return out


#: Site fields whose default is a role setting of the same name with the
#: ``onebox_`` prefix (``backlog`` <- ``onebox_backlog``). The values live in
#: roles/site/defaults/main.yml only; the normaliser takes them as settings.
SITE_SETTINGS = ("backlog", "drain_timeout", "start_timeout", "ready_timeout", "restart_sec",
                 "service_type", "strategy", "readiness_path", "liveness_path")
#: Settings the normaliser needs besides SITE_SETTINGS (onebox_root, onebox_env_dir).
PATH_SETTINGS = ("root", "env_dir")


def normalize_absent(site, defaults):
    """What removing a ``state: absent`` site needs: its name, directory and account."""
    name = site["name"]
    user = site.get("user") or name
    return dict(name=name, state="absent", purge=bool(site.get("purge")), user=user,
                group=site.get("group") or user, site_dir=os.path.join(defaults["root"], name))


def normalize_site(site, defaults, artifact_base=None):
    """Fill defaults and derive the values the templates and tasks need.

    ``site`` must already have passed :func:`validate_sites`; ``defaults``
    holds every key of :data:`SITE_SETTINGS` and :data:`PATH_SETTINGS` (the
    role's settings).
    """
    missing = [key for key in SITE_SETTINGS + PATH_SETTINGS if key not in (defaults or {})]
    if missing:
        raise KeyError("normalize_site needs the settings %s" % ", ".join(missing))
    out = dict(defaults)
    out.update({k: v for k, v in site.items() if v is not None})
    name = out["name"]
    listen = parse_listen(out["listen"])
    health = parse_listen(out["health_listen"]) if out.get("health_listen") else listen
    out["listen"] = format_listen(*listen)
    out["health_listen"] = format_listen(*health)
    out["listen_port"] = listen[1]
    out["health_port"] = health[1]
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
    path = resolve_artifact(out["artifact"], artifact_base)
    kind = artifact_kind(path)
    if kind == "dir":
        path = path.rstrip("/") + "/"
    out["artifact_path"] = path
    out["artifact_kind"] = kind
    if not out.get("command"):
        out["command"] = os.path.basename(path)
    argv = shlex.split(out["command"])
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
    return out


_PLAIN_ARG = re.compile(r"^[A-Za-z0-9_@%$+=:,./-]+$")


def systemd_quote(arg):
    """Quote one argument for ExecStart= (no shell: systemd's own rules)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.match(arg):
        return arg
    return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"')


def systemd_path(path):
    """Quote a path for a path-list directive such as ReadWritePaths= (specifiers, no $ expansion)."""
    path = path.replace("%", "%%")
    if _PLAIN_ARG.match(path) and "$" not in path:
        return path
    return '"%s"' % path.replace("\\", "\\\\").replace('"', '\\"')


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
    if strategy == "overlap":
        unit["instances"] = list(site["instances"])
    if switch_current:
        unit["link"] = os.path.join(site["site_dir"], "current")
        unit["link_target"] = os.path.join(site["site_dir"], "releases", version or site["version"])
    if restore:
        # {site name: [{path, backup}]}: the files a rollback puts back
        unit["restore"] = list(restore.get(site["name"]) or [])
    return unit
