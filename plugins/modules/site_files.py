#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: site_files
short_description: Install the units and environment files of onebox sites, all sites in one call
version_added: 0.1.0
description:
  - The action plugin renders, on the controller, each site's socket unit, service unit and environment file from
    the role's Jinja2 templates (C(socket.j2), C(service.j2), C(env.j2)); the module then, on the host, for every
    site at once
  - creates the site's system user and group when missing. An account that exists and was not created by this
    collection is never taken over (the module fails, naming the site and the field). Accounts it creates carry
    C(onebox.deploy site account) in their GECOS field.
  - creates the site's directories (C(releases/), C(units/previous/), C(shared/) owned by the site's user).
  - M(onebox.deploy.preflight) verified the units of every site whose units change, before anything changed.
  - installs each changed file atomically (a temporary file with its final mode and owner, then a rename), keeping
    the replaced file for a rollback (C(<site_dir>/units/previous/), C(<env_dir>/.previous/), root-only). The
    environment file is mode 0600 from its first byte.
  - removes the service unit file of the strategy a site left, reloads systemd once, and enables and starts every
    site's socket and enables the unit the socket starts.
  - installs the units of each site's scheduled jobs (O(files[].jobs)), enables and starts their timers, and stops,
    disables and removes the timer units of jobs a site no longer has.
  - With O(absent), stops and disables a site's units (its jobs' timers and services too), removes its unit files and
    environment file, and with
    C(purge) its directory; its account is deleted only when this collection created it. Every site of O(absent) is
    checked before any is touched; then the timers and sockets of all stop in one call, so no connection starts a
    service again, and their services in one more (they drain at once).
author: onebox.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - onebox.deploy.host_paths
attributes:
  action:
    support: full
    description: The action plugin renders the templates on the controller.
  check_mode:
    support: full
    description: Reports what would change; nothing is written and no unit is started.
  diff_mode:
    support: full
    description:
      - Shows each changed unit file and environment file before and after; the value of every C(secret_env)
        variable shows as C(********).
options:
  sites:
    description:
      - The selected normalised sites (the C(sites) of the P(onebox.deploy.site_plan#filter) result).
      - The action plugin renders each site's files from them; the module receives them with the files added.
    type: list
    elements: dict
    default: []
  host:
    description:
      - The C(sites) that M(onebox.deploy.preflight) returned; read by the action plugin only (the units of a
        strategy a site left, disabled before their file is removed).
    type: dict
    default: {}
  secret_env:
    description:
      - The C(secret_env) of each site, by site name (values as strings). Read by the action plugin only, to render
        the environment files; never sent to the host as such and never returned.
    type: dict
    default: {}
  absent:
    description:
      - Sites to remove (C(state=absent)), each with C(name), C(user), C(group), C(site_dir) and C(purge), as in the
        C(absent) of the P(onebox.deploy.site_plan#filter) result. They are removed before the other sites' files are
        installed, so a site may take over the port of one removed in the same run.
    type: list
    elements: dict
    default: []
  env_only:
    description:
      - Install the environment files only (a rollback, since they name the release), and leave units, sockets and the
        units of another strategy as they are.
    type: bool
    default: false
  files:
    description: Set by the action plugin; not for direct use. Each site's rendered files.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Site name.
        type: str
        required: true
      user:
        description: The site's user.
        type: str
        required: true
      group:
        description: The site's group.
        type: str
        required: true
      site_dir:
        description: The site's directory.
        type: path
        required: true
      version:
        description: The release the units are verified against.
        type: str
        required: true
      service_file:
        description: File name of the service unit (C(NAME.service) or C(NAME@.service)).
        type: str
        required: true
      trigger_unit:
        description: The unit the socket starts.
        type: str
        required: true
      retired_file:
        description: The service unit file of the other strategy, removed when present.
        type: str
        required: true
      stale_units:
        description: Units of the other strategy to disable before its file is removed.
        type: list
        elements: str
        default: []
      secret_keys:
        description: Names of the environment file's variables whose values a diff never shows (C(secret_env)).
        type: list
        elements: str
        default: []
      socket:
        description: Content of C(NAME.socket).
        type: str
        required: true
      service:
        description: Content of the service unit.
        type: str
        required: true
      jobs:
        description:
          - The site's scheduled jobs (its C(timers)), each a oneshot service unit and the timer that starts it.
          - Installed when they differ (not kept for a rollback, and a change to them alone restarts nothing), then
            each timer is enabled and started. A job's service that runs is never restarted or stopped here.
          - Timer and service units of the site that this collection wrote (C(<site>_<job>.timer) and
            C(.service), carrying the marker and naming the site) and that are no longer among them are stale; each
            such timer is stopped and disabled, a run of it still waiting for the deploy lock (C(start-pre)) is
            stopped, and both files are removed. A run of such a job that is under way finishes.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: Job name.
            type: str
            required: true
          service_unit:
            description: File name of the job's service unit, C(<site>_<job>.service).
            type: str
            required: true
          timer_unit:
            description: File name of the job's timer unit, C(<site>_<job>.timer).
            type: str
            required: true
          service:
            description: Content of the job's service unit.
            type: str
            required: true
          timer:
            description: Content of the job's timer unit.
            type: str
            required: true
  env_files:
    description:
      - Set by the action plugin; not for direct use. Each site's environment file (site name to its content,
        base64-encoded).
      - A C(no_log) option, so no log on the host records it (the module's C(Invoked with) entry in the journal
        included). The encoding keeps Ansible's masking, which replaces every exact occurrence of a C(no_log) value
        in the output, off the diff of an environment file; O(secret_values) are masked instead.
    type: dict
    default: {}
  secret_values:
    description:
      - Set by the action plugin; not for direct use. The value of every C(secret_env) variable of the sites, so
        that Ansible hides each of them wherever it might appear in the module's output or logs.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Install the units and environment files of the selected sites
  onebox.deploy.site_files:
    sites: "{{ onebox_site_plan.selected_sites }}"
    host: "{{ _onebox_host.sites }}"
    secret_env: "{{ onebox_sites | onebox.deploy.secret_env }}"
    unit_dir: /etc/systemd/system
    env_dir: /etc/onebox
  register: _onebox_files
"""

RETURN = r"""
sites:
  description: Per site, what was (or in check mode would be) done.
  returned: always
  type: dict
  sample:
    blog:
      changed: true
      installed:
        - {path: /etc/systemd/system/blog.socket, backup: null}
        - {path: /etc/onebox/blog.env, backup: /etc/onebox/.previous/blog.env}
      socket_changed: true
      socket_path: /etc/systemd/system/blog.socket
      account_created: true
      retired: null
      jobs: {installed: [/etc/systemd/system/blog_nightly.service, /etc/systemd/system/blog_nightly.timer],
             started: [blog_nightly.timer], stale: [blog_weekly.timer], removed: [/etc/systemd/system/blog_weekly.timer,
             /etc/systemd/system/blog_weekly.service]}
removed:
  description: Per site removed with O(absent), what was (or would be) stopped and removed.
  returned: always
  type: dict
  sample:
    wiki: {changed: true, stopped: [wiki.socket, wiki.service], removed: [/etc/systemd/system/wiki.socket],
           account_deleted: true, purged: null}
"""

import base64

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.host import HOST_PATHS_SPEC, JOB_UNITS_SPEC
from ansible_collections.onebox.deploy.plugins.module_utils.sitefiles import SiteFiles, SiteFilesError
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import SystemdError, Systemctl


def main():
    file_spec = dict(
        name=dict(type="str", required=True),
        user=dict(type="str", required=True),
        group=dict(type="str", required=True),
        site_dir=dict(type="path", required=True),
        version=dict(type="str", required=True),
        service_file=dict(type="str", required=True),
        trigger_unit=dict(type="str", required=True),
        retired_file=dict(type="str", required=True),
        stale_units=dict(type="list", elements="str", default=[]),
        secret_keys=dict(type="list", elements="str", default=[], no_log=False),
        socket=dict(type="str", required=True),
        service=dict(type="str", required=True),
        jobs=JOB_UNITS_SPEC,
    )
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", default=[]),
            host=dict(type="dict", default={}),
            secret_env=dict(type="dict", default={}, no_log=True),
            absent=dict(type="list", elements="dict", default=[]),
            env_only=dict(type="bool", default=False),
            files=dict(type="list", elements="dict", default=[], options=file_spec),
            env_files=dict(type="dict", default={}, no_log=True),
            secret_values=dict(type="list", elements="str", default=[], no_log=True),
            **HOST_PATHS_SPEC
        ),
        supports_check_mode=True,
    )
    params = module.params
    files = []
    for entry in params["files"]:
        encoded = params["env_files"].get(entry["name"])
        if encoded is None:
            module.fail_json(msg="site %s: no environment file was rendered for it" % entry["name"])
        files.append(dict(entry, env=base64.b64decode(encoded).decode("utf-8")))
    installer = SiteFiles(module, Systemctl(module), params["unit_dir"], params["env_dir"], params["marker"],
                          check_mode=module.check_mode, env_only=params["env_only"])
    removed = {}
    try:
        # Removals first: a site may take over the port of one removed in the same run.
        removed = installer.remove_many(params["absent"])
        if installer.reload_needed and not module.check_mode:
            installer.systemd.daemon_reload()
            installer.reload_needed = False
        results = installer.apply(files) if files else {}
    except (SiteFilesError, SystemdError) as exc:
        module.fail_json(msg=getattr(exc, "msg", None) or str(exc))
    out = dict(changed=installer.changed, sites=results, removed=removed)
    if module._diff:
        out["diff"] = installer.diffs
    module.exit_json(**out)


if __name__ == "__main__":
    main()
