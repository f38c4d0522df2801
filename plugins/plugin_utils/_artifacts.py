# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release artifacts on the controller: the checks that refuse an artifact
before anything on a host changes, packing the new releases of a run into
one archive per host (``onebox.deploy.stage_releases``' action), and an
artifact's SHA-256. The rules for each member are ``shared.py``'s; the host
applies them again when it unpacks (``module_utils/artifacts.py``).

A tarball whose only top-level entry is a directory (what ``tar czf
app-1.2.tar.gz app-1.2/`` makes) is unpacked without that directory when the
site's command is found inside it and not at the top.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import posixpath
import stat
import tarfile

from ansible_collections.onebox.deploy.plugins.module_utils.shared import (
    MODE_MASK,
    ArtifactError,
    escapes,
    member_kind,
    member_problem,
    norm_member,
)


def single_top_dir(names_kinds):
    """The name of the only top-level entry when it is a directory, else None."""
    tops = set()
    top_is_dir = {}
    for name, kind in names_kinds:
        name = norm_member(name)
        if not name or name == ".":
            continue
        top = name.split("/", 1)[0]
        tops.add(top)
        if "/" in name:
            top_is_dir[top] = True
        elif kind == "dir":
            top_is_dir[top] = True
        else:
            top_is_dir.setdefault(top, False)
    if len(tops) == 1:
        top = tops.pop()
        if top_is_dir.get(top):
            return top
    return None


def choose_strip(names_kinds, executable=None):
    """The top directory to strip, or '' (see the module docstring)."""
    top = single_top_dir(names_kinds)
    if not top:
        return ""
    if executable and not executable.startswith("/"):
        names = set(norm_member(n) for n, _k in names_kinds)
        exe = posixpath.normpath(executable)
        if exe in names:
            return ""
        if posixpath.join(top, exe) in names:
            return top
        return ""
    # No relative command to go by: a lone directory is the release.
    return top


def inspect_tarball(path, executable=None):
    """Check a tarball on the controller.

    Returns ``dict(strip=..., names=set(...))`` (names after stripping);
    raises :class:`ArtifactError` with the first problem.
    """
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError("cannot be read as a .tar.gz: %s" % exc)
    names_kinds = []
    for member in members:
        problem = member_problem(member.name, member_kind(member), member.linkname)
        if problem:
            raise ArtifactError(problem)
        names_kinds.append((member.name, member_kind(member)))
    if not [n for n, _k in names_kinds if norm_member(n) not in ("", ".")]:
        raise ArtifactError("is an empty archive")
    strip = choose_strip(names_kinds, executable)
    lead = strip + "/" if strip else ""
    links = dict((norm_member(m.name)[len(lead):], m.linkname) for m in members
                 if m.issym() and norm_member(m.name).startswith(lead))
    for member in members:
        name = norm_member(member.name)[len(lead):] if norm_member(member.name).startswith(lead) else norm_member(member.name)
        if member.issym() and escapes(links, name):
            raise ArtifactError("link %r points outside the release (%r)" % (member.name, member.linkname))
        if member.islnk():
            target = norm_member(member.linkname)
            target = target[len(lead):] if target.startswith(lead) else target
            if escapes(links, target) or target in links:
                raise ArtifactError("hard link %r does not point at a file of the release (%r)"
                                    % (member.name, member.linkname))
        parent = posixpath.dirname(name)
        if parent and parent != name and escapes(links, parent):
            raise ArtifactError("member %r goes through a link that leaves the release" % member.name)
    names = set()
    for name, _kind_ in names_kinds:
        name = norm_member(name)
        if strip:
            if name == strip:
                continue
            name = name[len(strip) + 1:]
        if name and name != ".":
            names.add(name)
    return dict(strip=strip, names=names)


def directory_problem(root):
    """Why a directory artifact may not be shipped (None when it may)."""
    root = root.rstrip("/") or "/"
    for top, dirs, files in os.walk(root):
        for entry in dirs + files:
            full = os.path.join(top, entry)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                problem = member_problem(rel, "symlink", os.readlink(full))
                real = os.path.realpath(full)
                if not problem and real != os.path.realpath(root) and \
                        not real.startswith(os.path.realpath(root) + os.sep):
                    problem = "link %r points outside the release (%r)" % (rel, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                problem = None
            else:
                problem = member_problem(rel, "other")
            if problem:
                return problem
    return None


def _dropped(mode):
    """Whether *mode* loses set-id, sticky or group/other write bits to :data:`MODE_MASK`."""
    return bool(mode & 0o7777 & ~MODE_MASK)


def _add(tar, path, arcname):
    """Add one entry; returns True when its mode lost bits (see :func:`_dropped`)."""
    st = os.lstat(path)
    info = tarfile.TarInfo(arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = int(st.st_mtime)
    info.mode = st.st_mode & MODE_MASK
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
    else:
        raise ArtifactError("%s is a device, FIFO or socket" % path)
    return not stat.S_ISLNK(st.st_mode) and _dropped(st.st_mode)


def pack_artifact(kind, path, tar, prefix):
    """Add an artifact under *prefix*/ to the open *tar*: a directory's tree,
    or an executable file as ``prefix/<its name>`` (mode 0755). Returns the
    paths whose set-id, sticky or group/other write bits were dropped."""
    dropped = []
    if kind == "dir":
        root = path.rstrip("/") or "/"
        for top, dirs, files in os.walk(root):
            dirs.sort()
            for entry in sorted(dirs) + sorted(files):
                full = os.path.join(top, entry)
                rel = os.path.relpath(full, root)
                if _add(tar, full, posixpath.join(prefix, rel)):
                    dropped.append(rel)
        return dropped
    if kind == "file":
        info = tarfile.TarInfo(posixpath.join(prefix, os.path.basename(path)))
        st = os.stat(path)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = int(st.st_mtime)
        info.mode = 0o755
        info.size = st.st_size
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
        return []
    raise ArtifactError("cannot pack artifact kind %r" % kind)


def repack_tarball(path, tar, prefix, strip=""):
    """Copy the members of the tarball *path* into the open *tar* under
    *prefix*/, without the top directory *strip*, owned by root, with
    :data:`MODE_MASK` applied; raises :class:`ArtifactError`. Returns the
    members whose set-id, sticky or group/other write bits were dropped."""
    dropped = []
    try:
        src = tarfile.open(path)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError("cannot be read as a .tar.gz: %s" % exc)
    with src:
        for member in src:
            name = norm_member(member.name)
            if strip:
                if name == strip:
                    continue
                name = name[len(strip) + 1:]
            if not name or name == ".":
                continue
            kind = member_kind(member)
            problem = member_problem(name, kind, member.linkname)
            if problem:
                raise ArtifactError(problem)
            info = tarfile.TarInfo(posixpath.join(prefix, name))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = member.mtime
            info.mode = member.mode & MODE_MASK
            if kind in ("file", "dir") and _dropped(member.mode):
                dropped.append(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = member.linkname
                info.mode = 0o777
                tar.addfile(info)
            elif kind == "hardlink":
                link = norm_member(member.linkname)
                if strip:
                    link = link[len(strip) + 1:] if link.startswith(strip + "/") else ""
                if not link:
                    raise ArtifactError("link %r points outside the release (%r)" % (member.name, member.linkname))
                info.type = tarfile.LNKTYPE
                info.linkname = posixpath.join(prefix, link)
                tar.addfile(info)
            else:
                info.size = member.size
                tar.addfile(info, src.extractfile(member))
    return dropped


def sha256_of(path):
    """SHA-256 of an artifact as deployed: a file's bytes, or for a directory
    every entry's relative path, type, executable bit and content (symlinks by
    target) in sorted order, so two trees with the same content hash alike."""
    digest = hashlib.sha256()
    if not os.path.isdir(path):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    root = path.rstrip("/") or "/"
    entries = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for entry in sorted(dirs + files):
            full = os.path.join(top, entry)
            entries.append((os.path.relpath(full, root), full))
    for rel, full in sorted(entries):
        if os.path.islink(full):
            digest.update(("L %s -> %s\n" % (rel, os.readlink(full))).encode("utf-8", "surrogateescape"))
        elif os.path.isdir(full):
            digest.update(("D %s\n" % rel).encode("utf-8", "surrogateescape"))
        else:
            executable = "x" if os.lstat(full).st_mode & 0o111 else "-"
            digest.update(("F %s %s %s\n" % (rel, executable, sha256_of(full))).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


__all__ = ["ArtifactError", "choose_strip", "directory_problem", "inspect_tarball", "pack_artifact",
           "repack_tarball", "sha256_of", "single_top_dir"]
