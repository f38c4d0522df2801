# -*- coding: utf-8 -*-
"""Release trees under a site directory, as ``onebox.deploy`` lays them out
(``<site_dir>/releases/<version>`` with ``.onebox-release.json``, a ``current``
symlink); shared by the tests of the release modules and module_utils."""

from __future__ import absolute_import, division, print_function

import hashlib
import json
import os

from ansible_collections.onebox.deploy.plugins.module_utils import releases as R

NOW = 1795628402.0


def make_release(site_dir, version, installed_at=None, sha256=None, mtime=None, meta=True):
    path = os.path.join(str(site_dir), "releases", version)
    os.makedirs(os.path.join(path, "bin"))
    with open(os.path.join(path, "bin", "app"), "w") as handle:
        handle.write("app %s\n" % version)
    if meta:
        data = dict(version=version, sha256=sha256 or hashlib.sha256(version.encode()).hexdigest())
        if installed_at is not None:
            data["installed_at"] = installed_at
        with open(os.path.join(path, R.METADATA), "w") as handle:
            json.dump(data, handle)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def point_current(site_dir, version, relative=False):
    link = os.path.join(str(site_dir), "current")
    if os.path.lexists(link):
        os.unlink(link)
    target = os.path.join("releases", version) if relative else os.path.join(str(site_dir), "releases", version)
    os.symlink(target, link)


def versions(releases):
    return [r["version"] for r in releases]
