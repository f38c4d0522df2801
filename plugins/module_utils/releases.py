# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release directories of a site: ``<site_dir>/releases/<version>``.

Each release carries ``.onebox-release.json`` (version, artifact SHA-256,
install time, run id) written by :func:`stage` before the release is moved
into place. Releases installed without it are ordered by their directory's mtime
and have no known checksum.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import tarfile
import time

from ansible_collections.onebox.deploy.plugins.module_utils.artifacts import extract_bundle
from ansible_collections.onebox.deploy.plugins.module_utils.files import (
    point_symlink, read_json_object, subdirectories, write_file)

METADATA = ".onebox-release.json"


def read_metadata(release_dir):
    return read_json_object(os.path.join(release_dir, METADATA)) or {}


def list_releases(site_dir):
    """Releases of a site, oldest installed first: dicts with ``version``,
    ``sha256`` (None when unknown) and ``installed_at`` (epoch seconds)."""
    releases = []
    for name, path in subdirectories(os.path.join(site_dir, "releases")):
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


def stage(releases, bundle_path, run_id, check_mode=False):
    """Unpack new releases from the bundle the controller sent, each through
    ``releases/.<version>.partial`` and a rename, so a release directory is
    either complete or absent; point ``current`` where asked.

    *releases* are dicts with ``name``, ``version``, ``site_dir``, ``replace``
    (an installed release of that version is replaced as a whole: renamed
    aside, the new one renamed in; the old tree goes with the next prune),
    ``point_current`` and ``meta`` (written to ``.onebox-release.json``).
    Returns ``{name: dict(changed, staged, replaced, current, dropped_bits)}``.
    """
    out = {}
    todo = [r for r in releases if r.get("stage")]
    for rel in releases:
        release_dir = os.path.join(rel["site_dir"], "releases", rel["version"])
        current = os.path.join(rel["site_dir"], "current")
        target = os.readlink(current) if os.path.islink(current) else None
        repoint = bool(rel.get("point_current")) and (
            target is None or os.path.normpath(target) != os.path.normpath(release_dir))
        rel["current_target"] = target
        out[rel["name"]] = dict(changed=bool(rel.get("stage")) or repoint, staged=bool(rel.get("stage")),
                                replaced=bool(rel.get("stage")) and os.path.isdir(release_dir),
                                current=release_dir if repoint else None, dropped_bits=[])
    if check_mode:
        return out
    partials = {}
    for rel in todo:
        base = os.path.join(rel["site_dir"], "releases")
        for path in (os.path.dirname(rel["site_dir"]), rel["site_dir"], base):
            if not os.path.isdir(path):
                os.makedirs(path, 0o755)
                os.chown(path, 0, 0)
        partial = os.path.join(base, ".%s.partial" % rel["version"])
        if os.path.isdir(partial) and not os.path.islink(partial):
            shutil.rmtree(partial)
        elif os.path.lexists(partial):
            os.unlink(partial)
        os.mkdir(partial, 0o755)
        os.chown(partial, 0, 0)
        partials[rel["name"]] = partial
    if todo:
        with tarfile.open(bundle_path) as tar:
            stats = extract_bundle(tar, partials)
    for rel in todo:
        name = rel["name"]
        out[name]["dropped_bits"] = stats[name]["dropped_bits"]
        partial = partials[name]
        meta = dict(rel.get("meta") or {}, version=rel["version"], installed_at=time.time(), run_id=run_id)
        write_file(os.path.join(partial, METADATA), json.dumps(meta, indent=2, sort_keys=True) + "\n", mode=0o644)
        release_dir = os.path.join(rel["site_dir"], "releases", rel["version"])
        if os.path.isdir(release_dir):
            aside = os.path.join(rel["site_dir"], "releases", ".%s.replaced-%s" % (rel["version"], run_id))
            os.rename(release_dir, aside)
        os.rename(partial, release_dir)
    for rel in releases:
        if out[rel["name"]]["current"]:
            point_symlink(os.path.join(rel["site_dir"], "current"), out[rel["name"]]["current"])
    return out
