# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``onebox.deploy.stage_releases``: decides which releases
the host lacks, packs their artifacts into one archive on the controller,
sends it in one transfer and runs the module on it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.onebox.deploy.plugins.plugin_utils._artifacts import (
    ArtifactError,
    pack_artifact,
    repack_tarball,
)
from ansible_collections.onebox.deploy.plugins.plugin_utils._plan import stage_plan

MODULE = "onebox.deploy.stage_releases"


def build_bundle(sites, names, path):
    """Write the archive holding the artifact of each site in *names* under
    ``<name>/``; returns ``{name: [paths whose set-id, sticky or group/other
    write bits were dropped]}`` for the sites that had any."""
    dropped = {}
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for site in sites:
            if site["name"] not in names:
                continue
            try:
                if site["artifact_kind"] == "tarball":
                    lost = repack_tarball(site["artifact_path"], tar, site["name"], site.get("artifact_strip") or "")
                else:
                    lost = pack_artifact(site["artifact_kind"], site["artifact_path"], tar, site["name"])
                if lost:
                    dropped[site["name"]] = lost
            except ArtifactError as exc:
                raise AnsibleActionFail("site %s: field 'artifact': %s %s" % (site["name"], site["artifact_path"], exc))
            except (IOError, OSError) as exc:
                raise AnsibleActionFail("site %s: field 'artifact': cannot read %s: %s"
                                        % (site["name"], site["artifact_path"], exc))
    return dropped


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        sites = args.get("sites") or []
        releases = stage_plan(sites, args.get("host") or {}, args.get("by") or "unknown")
        module_args = dict(releases=releases, run_id=args.get("run_id"), by=args.get("by") or "unknown")
        send = [r["name"] for r in releases if r["stage"]]
        if not any(r["stage"] or r["point_current"] for r in releases):
            # Every release is installed and serving: no round trip at all.
            return dict(changed=False, sites=dict((r["name"], dict(changed=False, staged=False, replaced=False,
                                                                   current=None, dropped_bits=[]))
                                                  for r in releases))
        local_dir = None
        dropped = {}
        try:
            if send and not self._task.check_mode:
                local_dir = tempfile.mkdtemp(prefix="onebox-stage-")
                bundle = os.path.join(local_dir, "releases.tar.gz")
                dropped = build_bundle(sites, send, bundle)
                if self._connection._shell.tmpdir is None:
                    self._make_tmp_path()
                remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "onebox-releases.tar.gz")
                self._transfer_file(bundle, remote)
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
                module_args["bundle"] = remote
            result = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
            for name, lost in sorted(dropped.items()):
                result.setdefault("warnings", []).append(
                    "site %s: dropped set-id, sticky or group/other write bits of %s" % (name, ", ".join(lost[:10])))
            return result
        finally:
            if local_dir:
                shutil.rmtree(local_dir, ignore_errors=True)
            self._remove_tmp_path(self._connection._shell.tmpdir)
