# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpacking the releases of a run on the host (``onebox.deploy.stage_releases``):
one archive that the controller packed (``plugin_utils/_artifacts.py``),
every member checked again by the rules of ``shared.py`` as it is unpacked.

Standard library only; runs on the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.onebox.deploy.plugins.module_utils.shared import (
    MODE_MASK,
    ArtifactError,
    member_kind,
    member_problem,
    norm_member,
)


def extract_bundle(tar, dests):
    """Unpack a bundle made by :func:`pack_artifact`/:func:`repack_tarball`:
    the members under ``<prefix>/`` go into the empty directory
    ``dests[prefix]``, by the rules above (checked again on the host).

    Returns ``{prefix: dict(files=N, dropped_bits=[...])}``; raises
    :class:`ArtifactError` naming the prefix.
    """
    stats = dict((prefix, dict(files=0, dropped_bits=[])) for prefix in dests)
    hardlinks = []
    dirs = []
    for member in tar:
        full = norm_member(member.name)
        prefix, _sep, name = full.partition("/")
        if prefix not in dests:
            raise ArtifactError("%s: member %r belongs to no release of this run" % (prefix, member.name))
        if not name or name == ".":
            continue
        dest = dests[prefix]
        kind = member_kind(member)
        linkname = member.linkname
        if kind == "hardlink":
            lprefix, _sep, linkname = norm_member(linkname).partition("/")
            if lprefix != prefix or not linkname:
                raise ArtifactError("%s: link %r points outside the release (%r)" % (prefix, name, member.linkname))
        problem = member_problem(name, kind, linkname)
        if problem:
            raise ArtifactError("%s: %s" % (prefix, problem))
        target = os.path.join(dest, name)
        try:
            _ensure_dirs(dest, os.path.dirname(target))
        except ArtifactError as exc:
            raise ArtifactError("%s: %s" % (prefix, exc))
        if os.path.islink(target) or (os.path.lexists(target) and not (kind == "dir" and os.path.isdir(target))):
            raise ArtifactError("%s: member %r appears twice" % (prefix, name))
        mode = member.mode & MODE_MASK
        if kind in ("file", "dir") and member.mode & 0o7777 & ~MODE_MASK:
            stats[prefix]["dropped_bits"].append(name)
        if kind == "dir":
            if not os.path.isdir(target):
                os.mkdir(target, 0o700)
            dirs.append((target, mode | 0o700))
        elif kind == "file":
            src = tar.extractfile(member)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.fchown(fd, 0, 0)
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    os.write(fd, chunk)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        elif kind == "symlink":
            os.symlink(linkname, target)
            os.lchown(target, 0, 0)
        elif kind == "hardlink":
            hardlinks.append((prefix, target, os.path.join(dest, linkname), name))
        stats[prefix]["files"] += 1
    for prefix, target, source, name in hardlinks:
        if not _inside(dests[prefix], source) or os.path.islink(source) or not os.path.isfile(source):
            raise ArtifactError("%s: hard link %r does not point at a file of the release" % (prefix, name))
        os.link(source, target)
    for prefix, dest in dests.items():
        for top, dirs_, files in os.walk(dest):
            for entry in dirs_ + files:
                full = os.path.join(top, entry)
                if os.path.islink(full) and not _inside(dest, full):
                    raise ArtifactError("%s: link %r points outside the release (%r)" % (
                        prefix, os.path.relpath(full, dest), os.readlink(full)))
    for target, mode in reversed(dirs):
        os.chown(target, 0, 0)
        os.chmod(target, mode)
    for prefix, stat_ in stats.items():
        if not stat_["files"]:
            raise ArtifactError("%s: the artifact is empty" % prefix)
    return stats


def _inside(dest, path):
    """Whether *path*, with every symlink followed, is *dest* or below it."""
    real, base = os.path.realpath(path), os.path.realpath(dest)
    return real == base or real.startswith(base + os.sep)


def _ensure_dirs(dest, parent):
    """Create missing parent directories inside *dest* (mode 0755, root);
    refuse to go through a symlink."""
    rel = os.path.relpath(parent, dest)
    if rel == ".":
        return
    path = dest
    for part in rel.split(os.sep):
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise ArtifactError("member path %r goes through a symlink" % rel)
        if not os.path.isdir(path):
            os.mkdir(path, 0o755)


__all__ = ["ArtifactError", "extract_bundle"]
