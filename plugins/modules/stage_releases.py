#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: stage_releases
short_description: Unpack the new releases of onebox sites on a host, from artifacts on the controller
version_added: 0.1.0
description:
  - The action plugin packs the artifacts of the sites whose release is not yet on the host into one archive on
    the controller, sends it in one transfer, and the module unpacks each into C(<site_dir>/releases/<version>)
    through a staging directory and a rename, so a release directory is either complete or absent.
  - Artifacts are untrusted. Members with absolute paths or C(..), links that point outside the release, devices,
    FIFOs and sockets are refused (on the controller and again on the host). Every file belongs to root; the
    archive's owners are never used; set-user-ID, set-group-ID and sticky bits and write permission for group and
    others are dropped.
  - A C(.tar.gz) whose only top-level entry is a directory is unpacked without that directory when the site's
    command is found inside it rather than at the top.
  - Each release gets C(.onebox-release.json) with the artifact's SHA-256, the install time, the run id and who
    deployed it.
  - A site that has nothing serving (neither its socket nor its service is active) gets its C(current) symlink
    pointed at the new release here; a serving site keeps its old release until
    M(onebox.deploy.rolling_restart) switches C(current) right before restarting it.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  action:
    support: full
    description: The action plugin reads the artifacts on the controller and transfers them.
  check_mode:
    support: full
    description: Reports what would be staged; nothing is transferred or written.
  diff_mode:
    support: full
    description: Shows each release staged and each C(current) pointed at a new release.
options:
  sites:
    description:
      - The selected normalised sites (the C(sites) of the P(onebox.deploy.site_plan#filter) result).
      - Read are C(name), C(version), C(site_dir), C(artifact_path), C(artifact_kind), C(artifact_strip) and C(sha256).
      - Read by the action plugin on the controller; not sent to the host.
    type: list
    elements: dict
    default: []
  host:
    description: The C(sites) that M(onebox.deploy.preflight) returned for the same sites.
    type: dict
    default: {}
  force_release:
    description: Replace an installed release of the same version whose recorded SHA-256 differs.
    type: bool
    default: false
  run_id:
    description: The run id of the deploy lock, recorded with each release.
    type: str
    required: true
  by:
    description: Who deploys, recorded with each release.
    type: str
    default: unknown
  releases:
    description:
      - Set by the action plugin; not for direct use. The releases to stage or to point C(current) at.
    type: list
    elements: dict
    default: []
  bundle:
    description: Set by the action plugin; not for direct use. The archive sent to the host.
    type: path
notes:
  - The artifact of a site whose release is already installed (same version, same SHA-256) is not sent again, so a
    run that changes nothing transfers nothing.
"""

EXAMPLES = r"""
- name: Unpack the new releases of the selected sites
  onebox.deploy.stage_releases:
    sites: "{{ onebox_site_plan.selected_sites }}"
    host: "{{ _onebox_host.sites }}"
    run_id: "{{ _onebox_lock.run_id }}"
  register: _onebox_staged
"""

RETURN = r"""
sites:
  description: Per site, what was (or in check mode would be) done.
  returned: always
  type: dict
  sample:
    blog:
      changed: true
      staged: true
      replaced: false
      current: /srv/onebox/blog/releases/1.4.2
      dropped_bits: []
warnings:
  description: Files whose set-id, sticky or group/other write bits were dropped.
  returned: when there are any
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.artifacts import ArtifactError
from ansible_collections.onebox.deploy.plugins.module_utils.files import WriteError
from ansible_collections.onebox.deploy.plugins.module_utils.releases import stage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", default=[]),
            host=dict(type="dict", default={}),
            force_release=dict(type="bool", default=False),
            run_id=dict(type="str", required=True),
            by=dict(type="str", default="unknown"),
            releases=dict(type="list", elements="dict", default=[]),
            bundle=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    releases = module.params["releases"]
    if any(r.get("stage") for r in releases) and not module.check_mode and not module.params["bundle"]:
        module.fail_json(msg="stage_releases: no bundle was sent; run the module through its action plugin")
    try:
        result = stage(releases, module.params["bundle"], module.params["run_id"], check_mode=module.check_mode)
    except ArtifactError as exc:
        module.fail_json(msg="site %s" % exc)
    except (WriteError, IOError, OSError) as exc:
        module.fail_json(msg="stage_releases: %s" % exc)
    for name, entry in sorted(result.items()):
        if entry["dropped_bits"]:
            module.warn("site %s: dropped set-id, sticky or group/other write bits of %s" % (
                name, ", ".join(entry["dropped_bits"][:10])))
    out = dict(changed=any(e["changed"] for e in result.values()), sites=result)
    if module._diff:
        out["diff"] = release_diffs(releases, result)
    module.exit_json(**out)


def release_diffs(releases, result):
    """One diff per release staged and per ``current`` pointed at it."""
    diffs = []
    for rel in releases:
        entry = result[rel["name"]]
        release_dir = "%s/releases/%s" % (rel["site_dir"], rel["version"])
        if entry["staged"]:
            sha = (rel.get("meta") or {}).get("sha256") or "?"
            diffs.append(dict(before_header=release_dir, after_header=release_dir,
                              before="(a release of other content)\n" if entry["replaced"] else "",
                              after="release %s, artifact sha256:%s\n" % (rel["version"], sha)))
        if entry["current"]:
            diffs.append(dict(before_header="%s/current" % rel["site_dir"], after_header="%s/current" % rel["site_dir"],
                              before="-> %s\n" % (rel.get("current_target") or "(nothing)"),
                              after="-> %s\n" % entry["current"]))
    return diffs


if __name__ == "__main__":
    main()
