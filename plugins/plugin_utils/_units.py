# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a site's units say beyond its own fields, on the controller: the
sandbox policy of every site service (docs/units.md, "Sandboxing"), how a
site's directives replace or remove a default, and systemd's quoting of
ExecStart= arguments and paths. Used by the normaliser (``_sites.py``); the
templates (``templates/``) write the result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

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


__all__ = ["SANDBOX_DEFAULTS", "merge_directives", "sandbox_directives", "systemd_path", "systemd_quote"]
