# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command run once in a site's environment, as ``onebox.deploy.site_command``
runs it: a transient service started by ``systemd-run --wait --pipe`` with
the site's user and group, its environment file, ``current`` as working
directory and the sandbox of its service (``service_directives``). The
command's output comes back through the pipe, its exit status as
``systemd-run``'s (``--wait`` passes the service's on).

The unit's description names the site, never the command: systemd writes
the description to the journal, and a command may carry a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time
import uuid

#: What a secret value is replaced with wherever the command is shown or recorded.
MASK = "********"


def mask(text, secrets):
    """*text* with every non-empty value of *secrets* replaced by :data:`MASK`,
    the longest first (a secret may contain another)."""
    text = text or ""
    for secret in sorted((s for s in secrets or [] if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def directive_items(directives):
    """``Key=value`` strings of a site's service directives (a list repeats the key)."""
    items = []
    for key, value in (directives or {}).items():
        for item in value if isinstance(value, list) else [value]:
            items.append("%s=%s" % (key, "" if item is None else item))
    return items


def transient_argv(systemd_run, site, argv, unit):
    """The ``systemd-run`` command line that runs *argv* for *site* as *unit*."""
    args = [systemd_run, "--wait", "--pipe", "--quiet", "--collect", "--service-type=exec",
            "--unit=%s" % unit, "--description=onebox run for site %s" % site["name"],
            "-p", "User=%s" % site["user"], "-p", "Group=%s" % site["group"],
            "-p", "WorkingDirectory=%s" % os.path.join(site["site_dir"], "current"),
            "-p", "EnvironmentFile=%s" % os.path.join(site["env_dir"], "%s.env" % site["name"])]
    for item in directive_items(site.get("service_directives")):
        args.extend(["-p", item])
    args.append("--")
    args.extend(argv)
    return args


def unit_name(site_name, token=None):
    return "onebox-run-%s-%s.service" % (site_name, token or uuid.uuid4().hex[:12])


def run_once(module, site, argv, secrets=(), clock=time.monotonic):
    """Run *argv* once for *site*; ``dict(exit_status, stdout, stderr, seconds, unit, release)``
    (not ``rc``: Ansible takes a result with a non-zero ``rc`` for a failed task)."""
    systemd_run = module.get_bin_path("systemd-run", required=True)
    unit = unit_name(site["name"])
    current = os.path.join(site["site_dir"], "current")
    release = os.path.basename(os.readlink(current).rstrip("/")) if os.path.islink(current) else None
    started = clock()
    rc, out, err = module.run_command(transient_argv(systemd_run, site, argv, unit))
    return dict(exit_status=rc, stdout=mask(out, secrets), stderr=mask(err, secrets), seconds=round(clock() - started, 3),
                unit=unit, release=release)


__all__ = ["MASK", "directive_items", "mask", "run_once", "transient_argv", "unit_name"]
