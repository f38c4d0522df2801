#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: preflight
short_description: Check a host for conflicts before onebox sites are deployed
version_added: 0.1.0
description:
  - Read-only checks on the target host that must pass before anything is changed.
  - Fails when a unit file at a path a site needs was not written by this collection
    (a package's unit, or a hand-written one), when a site's C(listen) or
    C(health_listen) port is already taken by something other than the site itself,
    or when a site's user or group exists and was not created by this collection.
  - Reports, per site, whether its socket and service are already active and which
    release C(current) points to.
author: onebox.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - onebox.deploy.host_paths
attributes:
  action:
    support: full
    description: The action plugin renders the units to verify on the controller.
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  sites:
    description:
      - Normalised sites, as in the C(sites) of the P(onebox.deploy.site_plan#filter) filter's result.
      - Read are C(name), C(version), C(listen), C(listen_port), C(health_port), C(instances), C(service_units), C(jobs),
        C(site_dir), C(user), C(group), C(command_argv0), C(sha256) and C(data).
      - Each file of a site's C(data) (relative to its C(site_dir)) that is a symbolic link, lies under one, or is
        not a regular file is an error naming the site and the field C(data); so is one that does not exist while a
        release of the site serves (before a first release it is reported as not created yet).
      - An absolute C(command_argv0) (the site's C(command) names a program of the host) that is missing or not
        executable on the host is an error naming the site and the field C(command).
      - The C(on_calendar) of each of a site's C(jobs) is checked with C(systemd-analyze calendar), one call for all
        sites; an expression the host's systemd rejects is an error naming the site and the field
        C(timers[<job>].on_calendar).
    type: list
    elements: dict
    required: true
  root:
    description: Directory that holds one directory per site.
    type: path
    default: /srv/onebox
  sums:
    description:
      - SHA-256 of each site's artifact (site name to hex digest); defaults to each site's C(sha256).
      - A site whose the site's C(version) is already installed with a different recorded checksum is an error,
        unless O(force_release) is set. Releases installed without a recorded checksum are not compared.
      - When the site has no C(current) symlink (no release of it ever served, for example a first install that
        was rolled back), such a release is not an error; its C(release_differs) is V(true) so the role replaces it.
    type: dict
    default: {}
  force_release:
    description: Allow replacing an installed release of the same version with different content.
    type: bool
    default: false
  check_ports:
    description: Fail when a site's port is taken by something other than the site.
    type: bool
    default: true
  check_accounts:
    description:
      - Fail when a site's user or group exists and was not created by this collection (its GECOS field is
        C(onebox.deploy site account), or, for accounts made by earlier versions, its home is the site's directory).
        An account that was already there is never taken over.
    type: bool
    default: true
  verify_units:
    description:
      - Verify the units of every site whose rendered units differ from the installed ones with
        C(systemd-analyze verify), as systemd will load them. ExecStart= points into the new release when it is
        unpacked already, else C(/bin/true) takes its place (the controller checked the command against the
        artifact). A setting systemd would ignore, such as a misspelt directive, is an error naming the site and
        the directive.
      - The action plugin renders the units from the site role's templates on the controller (O(units)).
    type: bool
    default: true
  audit_log:
    description:
      - The audit log of M(onebox.deploy.audit_log). When set, each site's C(ready_history) in RV(sites) is read from it.
    type: path
  units:
    description: Set by the action plugin; not for direct use. Each site's rendered socket and service unit.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Site name.
        type: str
        required: true
      socket:
        description: Text of C(NAME.socket).
        type: str
        required: true
      service:
        description: Text of the service unit.
        type: str
        required: true
      jobs:
        description: The units of the site's scheduled jobs, verified with the site's own.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: Job name.
            type: str
            required: true
          service_unit:
            description: File name of the job's service unit.
            type: str
            required: true
          timer_unit:
            description: File name of the job's timer unit.
            type: str
            required: true
          service:
            description: Text of the job's service unit.
            type: str
            required: true
          timer:
            description: Text of the job's timer unit.
            type: str
            required: true
  releasing:
    description: Names of sites removed in this run (C(state=absent)); the ports their sockets hold count as free.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check for unit and port conflicts
  onebox.deploy.preflight:
    sites: "{{ onebox_site_plan.selected_sites }}"
  register: _onebox_preflight
"""

RETURN = r"""
sites:
  description:
    - Per site state found on the host, keyed by site name.
    - C(ready_history) (with O(audit_log)) lists the site's latest deploys and rollbacks that came ready, oldest first,
      each as C([time_to_ready_s, time_to_stop_s]) (the second null in records written before it was recorded).
    - For a site with C(data), C(data) tells per declared file whether it exists and its bytes (with its C(-wal)), and
      C(snapshots) lists the site's snapshots, oldest first (see M(onebox.deploy.snapshots)).
  returned: always
  type: dict
  sample:
    blog:
      socket_active: true
      service_active: true
      active_units: [blog.service]
      stale_units: []
      current_release: "1.4.2"
      previous_release: "1.4.1"
      releases: [{version: 1.4.1, sha256: 9f86d0..., installed_at: 1795628402.1}]
      release_differs: false
      units_present: true
      unit_files: [blog.socket, blog.service]
      units_verified: ok
      ready_history: [[1.42, 0.11], [1.38, 0.09]]
      data: {shared/app.db: {exists: true, bytes: 105005056}}
      snapshots: [{name: 20261207T014500Z-1.4.1-to-1.4.2, path: /srv/onebox/blog/snapshots/20261207T014500Z-1.4.1-to-1.4.2,
                   from_version: 1.4.1, to_version: 1.4.2, taken_at: 1796608700.1, files: [shared/app.db],
                   not_created: [], bytes: 105005056, seconds: 0.41}]
errors:
  description: The conflicts found; the module fails when this is not empty.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.host import HOST_PATHS_SPEC, JOB_UNITS_SPEC, HostState
from ansible_collections.onebox.deploy.plugins.module_utils.files import file_matches
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import SystemdError, Systemctl
from ansible_collections.onebox.deploy.plugins.module_utils.verify import VerifyError, calendar_errors, verify_units


def verify_changed_units(module, sites, units, unit_dir):
    """Verify the rendered units of every site whose units would change;
    returns ``({name: 'ok' or None}, errors)``."""
    by_name = dict((site["name"], site) for site in sites)
    verified = {}
    errors = []
    for unit in units:
        site = by_name.get(unit["name"])
        if site is None:
            continue
        jobs = unit.get("jobs") or []
        same = (file_matches(os.path.join(unit_dir, "%s.socket" % site["name"]), unit["socket"])
                and file_matches(os.path.join(unit_dir, site["service_file"]), unit["service"])
                and all(file_matches(os.path.join(unit_dir, job["service_unit"]), job["service"])
                        and file_matches(os.path.join(unit_dir, job["timer_unit"]), job["timer"]) for job in jobs))
        if same:
            verified[site["name"]] = None
            continue
        try:
            verify_units(module, site, unit["socket"], unit["service"], jobs)
            verified[site["name"]] = "ok"
        except VerifyError as exc:
            errors.append(str(exc))
    return verified, errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", required=True),
            root=dict(type="path", default="/srv/onebox"),
            sums=dict(type="dict", default={}),
            force_release=dict(type="bool", default=False),
            check_ports=dict(type="bool", default=True),
            check_accounts=dict(type="bool", default=True),
            releasing=dict(type="list", elements="str", default=[]),
            verify_units=dict(type="bool", default=True),
            audit_log=dict(type="path"),
            units=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                socket=dict(type="str", required=True),
                service=dict(type="str", required=True),
                jobs=JOB_UNITS_SPEC,
            )),
            **HOST_PATHS_SPEC
        ),
        supports_check_mode=True,
    )
    params = module.params
    sums = params["sums"] or {}
    sites = [dict(site, sha256=sums.get(site["name"], site.get("sha256"))) for site in params["sites"]]
    host = HostState(Systemctl(module), params["unit_dir"], params["root"], params["marker"], params["env_dir"])
    try:
        state, errors = host.read(sites, force_release=params["force_release"], check_ports=params["check_ports"],
                                  check_accounts=params["check_accounts"], releasing=params["releasing"],
                                  audit_log=params["audit_log"])
    except SystemdError as exc:
        module.fail_json(msg=exc.msg, errors=[exc.msg], sites={})
    errors.extend(calendar_errors(module, sites))
    if params["verify_units"] and not errors:
        verified, unit_errors = verify_changed_units(module, sites, params["units"], params["unit_dir"])
        errors.extend(unit_errors)
        for name, status in verified.items():
            state[name]["units_verified"] = status
    if errors:
        module.fail_json(msg="preflight found %d problem(s): %s" % (len(errors), "; ".join(errors)),
                         errors=errors, sites=state)
    module.exit_json(changed=False, errors=[], sites=state)


if __name__ == "__main__":
    main()
