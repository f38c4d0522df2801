# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The units' own checker: ``systemd-analyze verify``, run by
``onebox.deploy.preflight`` on every site whose rendered units differ from
the installed ones, before anything on the host changes.

The units are checked as systemd will load them (an instance name for a
template unit). ExecStart= points into the site's new release when it is
unpacked already; a release not yet on the host is checked with
``/bin/true`` in its place (the controller checked that the command is an
executable of the artifact). A setting systemd would ignore (``Unknown key``,
a typo such as ``ProtectSytem=``) is an error, not a warning: the sandbox
would silently lose that setting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import tempfile

from ansible_collections.onebox.deploy.plugins.module_utils.files import write_file

#: What ``systemd-analyze verify`` prints for a setting systemd ignores
#: (systemd 252: "Unknown key 'X' in section [Service]"; 257: "Unknown key name 'X' ...").
IGNORED_SETTING_RE = re.compile(r"(Unknown key|Unknown section|Unknown lvalue|Invalid section header|"
                                r"Failed to parse|Assignment outside of section|Missing '='|Ignoring unknown)", re.I)
UNIT_KEY_RE = re.compile(r"Unknown (?:key name|key|lvalue) '([^']+)'")
EXEC_START_RE = re.compile(r"^ExecStart=.*$", re.M)
#: The section of an ignored key: "in section [Service]" (252), "in section 'Service'" (257).
SECTION_RE = re.compile(r"in section [\['](Unit|Service|Socket|Install)[\]']")
#: The site field whose directives go into each section.
SECTION_FIELDS = {"Unit": "unit_directives", "Service": "service_directives", "Socket": "socket_directives"}


class VerifyError(Exception):
    """A site's units do not pass; ``str()`` names the site and the field."""


def ignored_settings(text):
    """Lines of ``systemd-analyze verify`` output that mean a setting is ignored."""
    return [line.strip() for line in (text or "").splitlines() if IGNORED_SETTING_RE.search(line)]


def as_loaded(site, content):
    """A unit's text with ExecStart= as this check runs it (see the module docstring)."""
    release = os.path.join(site["site_dir"], "releases", site["version"])
    if os.path.isdir(release):
        return content.replace(os.path.join(site["site_dir"], "current") + "/", release + "/"), True
    return EXEC_START_RE.sub("ExecStart=/bin/true", content), False


def verify_units(module, site, socket, service, jobs=None):
    """Verify a site's socket and service unit texts, and its jobs' units
    (*jobs*: ``[{service_unit, service, timer_unit, timer}]``); raise :class:`VerifyError`."""
    tmp = tempfile.mkdtemp(prefix="onebox-verify-")
    units = [("%s.socket" % site["name"], socket), (site["trigger_unit"], service)]
    for job in jobs or []:
        units.extend([(job["service_unit"], job["service"]), (job["timer_unit"], job["timer"])])
    try:
        paths = []
        for name, content in units:
            path = os.path.join(tmp, name)
            write_file(path, as_loaded(site, content)[0], mode=0o644)
            paths.append(path)
        analyze = module.get_bin_path("systemd-analyze", required=True)
        rc, out, err = module.run_command([analyze, "verify"] + paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(x for x in (out, err) if x).replace(tmp + "/", "")
    ignored = ignored_settings(text)
    if ignored:
        keys = sorted(set(UNIT_KEY_RE.findall(text)))
        sections = set(SECTION_RE.findall(text))
        field = (SECTION_FIELDS.get(sections.pop(), "name") if len(sections) == 1 else "name") if keys else "name"
        raise VerifyError("site %s: field '%s': systemd would ignore %s: %s" % (
            site["name"], field, ", ".join(keys) or "a setting", "; ".join(ignored)))
    if rc != 0:
        raise VerifyError("site %s: field 'command': systemd-analyze verify failed (rc=%d): %s" % (
            site["name"], rc, text.strip()))


#: What ``systemd-analyze calendar`` prints for an expression it rejects.
CALENDAR_FAILED_RE = re.compile(r"Failed to parse calendar specification '(.*)': (.*)$", re.M)


def calendar_errors(module, sites):
    """The ``on_calendar`` of every job of *sites* that the host's systemd
    rejects, each naming the site and the field: one ``systemd-analyze
    calendar`` call for all of them (one per expression only to tell which
    failed when the output does not say)."""
    calendars = []
    for site in sites:
        for job in site.get("jobs") or []:
            calendars.append((site["name"], job["name"], job["on_calendar"]))
    if not calendars:
        return []
    analyze = module.get_bin_path("systemd-analyze", required=True)
    expressions = sorted(set(c[2] for c in calendars))
    rc, out, err = module.run_command([analyze, "calendar", "--"] + expressions)
    if rc == 0:
        return []
    text = "\n".join(x for x in (out, err) if x)
    rejected = dict(CALENDAR_FAILED_RE.findall(text))
    if not rejected:
        for expression in expressions:
            rc1, out1, err1 = module.run_command([analyze, "calendar", "--", expression])
            if rc1 != 0:
                rejected[expression] = ((err1 or out1).strip() or "rc=%d" % rc1).splitlines()[-1]
    return ["site %s: field 'timers[%s].on_calendar' %r is not a calendar systemd accepts "
            "(systemd-analyze calendar: %s)" % (name, job, expression, rejected[expression].strip())
            for name, job, expression in calendars if expression in rejected]
