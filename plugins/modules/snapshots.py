#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: snapshots
short_description: Snapshot the SQLite data of onebox sites before their release changes
version_added: 0.1.0
description:
  - One call for every site of a host whose release is about to change. For each site, a consistent copy of each
    declared data file (C(data), SQLite databases inside the site's C(shared/)) is taken with SQLite's online backup
    API while the old release still serves, into C(<site_dir>/snapshots/<time>-<from>-to-<to>/).
  - The live database is opened read-only (C(file:...?mode=ro)), and copied in one step inside one read transaction,
    so the copy is consistent while the app writes, and the content of a WAL database's C(-wal) file is in it. With
    WAL, the app's writers go on meanwhile; with a rollback journal they wait for the copy (up to the app's own busy
    timeout).
  - A snapshot belongs to the site's user and nobody else can read it, not even while it is written. Its files are
    created 0600 and owned by that user before their first byte, in a directory of root's (0700) that is handed to
    the user (0700) and renamed into place only when complete. C(snapshots/) itself belongs to root (0711), so
    nothing but this module adds or renames a snapshot.
  - Each snapshot holds C(snapshot.json) (the releases it lies between, time, run id, who, each file's bytes and
    seconds).
  - A declared file that does not exist yet is skipped and reported in RV(sites) (C(not_created)). A file that is a
    symbolic link, lies under one, is not a regular file, or is replaced while it is copied fails the module, as does
    a backup that fails (for example a file that is not a SQLite database); nothing else has changed then.
  - Old snapshots are pruned with the releases (M(onebox.deploy.releases)).
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description:
      - Reports which files would be copied and how much they hold on disk (each database and its C(-wal), an upper
        bound of the copy's size) without copying or opening them.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  sites:
    description:
      - The sites to snapshot, as planned by the P(onebox.deploy.snapshot_plan#filter) filter.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Site name.
        type: str
        required: true
      site_dir:
        description: The site's directory; O(sites[].data) are relative to it.
        type: path
        required: true
      user:
        description: The site's user, who owns the snapshot.
        type: str
        required: true
      group:
        description: The site's group; defaults to the user's name.
        type: str
      data:
        description: The declared data files, for example V(shared/app.db).
        type: list
        elements: str
        required: true
      from_version:
        description: The release serving now (null before a first release).
        type: str
      to_version:
        description: The release about to be rolled.
        type: str
        required: true
  run_id:
    description: The deploy's run id, recorded with each snapshot.
    type: str
  by:
    description: Who deploys, recorded with each snapshot.
    type: str
"""

EXAMPLES = r"""
- name: Snapshot the data of the sites whose release changes
  onebox.deploy.snapshots:
    sites:
      - name: notes
        site_dir: /srv/onebox/notes
        user: notes
        data: [shared/notes.db]
        from_version: 1.0.0
        to_version: 2.0.0
  register: _onebox_snapshots
"""

RETURN = r"""
sites:
  description:
    - Per site, keyed by name, what was taken (in check mode, what would be).
    - C(taken) whether a snapshot was written; C(name) and C(path) its directory; C(files) each copied file with
      C(path), C(bytes) and C(seconds); C(bytes) and C(seconds) in all; C(not_created) the declared files that do
      not exist yet; C(would) in check mode.
  returned: always
  type: dict
  sample:
    notes:
      taken: true
      name: 20261207T014500Z-1.0.0-to-2.0.0
      path: /srv/onebox/notes/snapshots/20261207T014500Z-1.0.0-to-2.0.0
      from_version: 1.0.0
      to_version: 2.0.0
      files: [{path: shared/notes.db, bytes: 105005056, seconds: 0.41}]
      bytes: 105005056
      seconds: 0.42
      not_created: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.snapshots import DataError, Snapshots


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                site_dir=dict(type="path", required=True),
                user=dict(type="str", required=True),
                group=dict(type="str"),
                data=dict(type="list", elements="str", required=True),
                from_version=dict(type="str"),
                to_version=dict(type="str", required=True),
            )),
            run_id=dict(type="str"),
            by=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    snapshots = Snapshots(check_mode=module.check_mode)
    out = {}
    for site in module.params["sites"]:
        try:
            out[site["name"]] = snapshots.take(site, run_id=module.params["run_id"], by=module.params["by"])
        except DataError as exc:
            module.fail_json(msg="site %s: field 'data': the snapshot before %s failed, so the deploy stops before "
                                 "anything changed: %s" % (site["name"], site["to_version"], exc),
                             sites=out, changed=any(e["taken"] for e in out.values()))
    module.exit_json(changed=any(e["taken"] or e.get("would") for e in out.values()), sites=out)


if __name__ == "__main__":
    main()
