# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release directories of a site: ``<site_dir>/releases/<version>``.

Each release carries ``.onebox-release.json`` (version, artifact SHA-256,
install time) written by the site role before the release is moved into
place. Releases installed without it are ordered by their directory's mtime
and have no known checksum.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

METADATA = ".onebox-release.json"


def read_metadata(release_dir):
    try:
        with open(os.path.join(release_dir, METADATA)) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def list_releases(site_dir):
    """Releases of a site, oldest installed first: dicts with ``version``,
    ``sha256`` (None when unknown) and ``installed_at`` (epoch seconds)."""
    base = os.path.join(site_dir, "releases")
    try:
        names = os.listdir(base)
    except (IOError, OSError):
        return []
    releases = []
    for name in names:
        path = os.path.join(base, name)
        if name.startswith(".") or os.path.islink(path) or not os.path.isdir(path):
            continue
        meta = read_metadata(path)
        try:
            installed = float(meta.get("installed_at"))
        except (TypeError, ValueError):
            installed = os.stat(path).st_mtime
        releases.append(dict(version=name, sha256=meta.get("sha256"), installed_at=installed))
    releases.sort(key=lambda r: (r["installed_at"], r["version"]))
    return releases


def current_version(site_dir):
    link = os.path.join(site_dir, "current")
    if os.path.islink(link):
        return os.path.basename(os.readlink(link).rstrip("/"))
    return None


def previous_version(releases, current):
    """The release installed right before ``current`` (None when there is none)."""
    versions = [r["version"] for r in releases]
    if current not in versions:
        return None
    index = versions.index(current)
    return versions[index - 1] if index > 0 else None


def prune_plan(releases, current, keep):
    """Versions to delete so that the newest ``keep`` remain; the current
    release and the one installed before it are always kept."""
    protected = set([current, previous_version(releases, current)]) - set([None])
    newest = [r["version"] for r in releases][-keep:] if keep > 0 else []
    return [r["version"] for r in releases if r["version"] not in newest and r["version"] not in protected]
