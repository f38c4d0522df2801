#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: releases
short_description: List or prune the release directories of a onebox site
version_added: 0.1.0
description:
  - A site keeps its releases in C(<site_dir>/releases/<version>) and points C(<site_dir>/current) at one of them.
    Releases are ordered by install time (recorded in C(.onebox-release.json) by the site role, else the
    directory's mtime).
  - V(listed) returns the releases, the current one and the one installed before it.
  - V(pruned) deletes all but the newest O(keep) releases, and never the release C(current) points to or the one
    installed before it (the target of a rollback). Leftovers of interrupted or forced installs
    (C(releases/.<version>.partial), C(releases/.<version>.replaced-*)) are removed too.
  - V(pruned) also keeps only the newest O(keep) data snapshots of the site (C(<site_dir>/snapshots/), see
    M(onebox.deploy.snapshots)), and never the one a data rollback of the current release would restore (the newest
    taken when the release installed before it was replaced); leftovers of interrupted snapshots go too. The files a
    data restore moved aside (C(<site_dir>/aside/)) are never deleted.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reports what would be deleted without deleting it.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  site_dir:
    description: The site's directory, for example C(/srv/onebox/blog). Exclusive with O(site_dirs).
    type: path
  site_dirs:
    description: Several sites' directories, handled in one call; the result is in RV(sites).
    type: list
    elements: path
  state:
    description: List the releases or prune old ones.
    type: str
    choices: [listed, pruned]
    default: listed
  keep:
    description: With V(pruned), how many of the newest releases to keep (at least 1).
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Keep the five newest releases of blog
  onebox.deploy.releases:
    site_dir: /srv/onebox/blog
    state: pruned
    keep: 5
"""

RETURN = r"""
sites:
  description:
    - With O(site_dirs), the result for each directory (its C(releases), C(current), C(previous), C(removed),
      C(snapshots_removed)).
  returned: with O(site_dirs)
  type: dict
releases:
  description: The releases found before pruning, oldest installed first.
  returned: with O(site_dir)
  type: list
  elements: dict
  sample: [{version: 1.4.1, sha256: 9f86d0..., installed_at: 1795628402.1}]
current:
  description: The release C(current) points to (null when it points nowhere).
  returned: with O(site_dir)
  type: str
previous:
  description: The release installed before the current one (null when there is none).
  returned: with O(site_dir)
  type: str
removed:
  description: Versions deleted (or, in check mode, that would be).
  returned: with O(site_dir)
  type: list
  elements: str
snapshots_removed:
  description: Data snapshots deleted (or, in check mode, that would be), by name.
  returned: with O(site_dir)
  type: list
  elements: str
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.releases import (
    current_version,
    list_releases,
    previous_version,
    prune_plan,
)
from ansible_collections.onebox.deploy.plugins.module_utils.snapshots import prune as prune_snapshots


def handle(module, site_dir):
    """List, or prune, the releases of one site; returns ``(result, error)``."""
    releases = list_releases(site_dir)
    current = current_version(site_dir)
    result = dict(changed=False, releases=releases, current=current,
                  previous=previous_version(releases, current), removed=[], snapshots_removed=[])
    if module.params["state"] == "listed":
        return result, None
    base = os.path.join(site_dir, "releases")
    doomed = prune_plan(releases, current, module.params["keep"])
    leftovers = []
    if os.path.isdir(base):
        leftovers = sorted(n for n in os.listdir(base) if n.startswith(".")
                           and (n.endswith(".partial") or ".replaced-" in n))
    result["removed"] = doomed
    result["changed"] = bool(doomed or leftovers)
    if not module.check_mode:
        for name in doomed + leftovers:
            path = os.path.join(base, name)
            try:
                shutil.rmtree(path)
            except OSError as exc:
                return result, "releases of %s: cannot delete %s: %s" % (site_dir, path, exc)
    try:
        result["snapshots_removed"] = prune_snapshots(site_dir, module.params["keep"], result["previous"],
                                                      check_mode=module.check_mode)
    except OSError as exc:
        return result, "snapshots of %s: cannot delete: %s" % (site_dir, exc)
    result["changed"] = result["changed"] or bool(result["snapshots_removed"])
    return result, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            site_dir=dict(type="path"),
            site_dirs=dict(type="list", elements="path"),
            state=dict(type="str", choices=["listed", "pruned"], default="listed"),
            keep=dict(type="int", default=5),
        ),
        required_one_of=[("site_dir", "site_dirs")],
        mutually_exclusive=[("site_dir", "site_dirs")],
        supports_check_mode=True,
    )
    if module.params["state"] == "pruned" and module.params["keep"] < 1:
        module.fail_json(msg="releases of %s: keep must be >= 1, got %d" % (
            module.params["site_dir"] or ", ".join(module.params["site_dirs"]), module.params["keep"]))
    if module.params["site_dir"]:
        result, error = handle(module, module.params["site_dir"])
        if error:
            module.fail_json(msg=error, **result)
        module.exit_json(**result)
    sites = {}
    for site_dir in module.params["site_dirs"]:
        result, error = handle(module, site_dir)
        sites[site_dir] = result
        if error:
            module.fail_json(msg=error, sites=sites, changed=any(r["changed"] for r in sites.values()))
    module.exit_json(changed=any(r["changed"] for r in sites.values()), sites=sites)


if __name__ == "__main__":
    main()
