# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release artifacts: checked on the controller, packed into one archive per
host, unpacked on the host by ``onebox.deploy.stage_releases``.

Artifacts are untrusted. The same rules apply on both sides:

* no member with an absolute path or ``..``; no link that points outside the
  release; no device, FIFO or socket;
* set-user-ID, set-group-ID and sticky bits are dropped, and so is write
  permission for group and others; every unpacked file belongs to root (the
  archive's own owners are never used);
* a tarball whose only top-level entry is a directory (what
  ``tar czf app-1.2.tar.gz app-1.2/`` makes) is unpacked without that
  directory when the site's command is found inside it and not at the top.

Standard library only; runs on the controller and on the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import os
import posixpath
import stat
import tarfile

#: Mode bits kept from an artifact: no set-id/sticky bit, no group/other write.
MODE_MASK = 0o755


class ArtifactError(ValueError):
    """An artifact breaks a rule; ``str()`` says which member and why."""


def _norm(name):
    name = name[2:] if name.startswith("./") else name
    return name.rstrip("/")


def member_problem(name, kind, linkname=None):
    """Why one archive member may not be unpacked (None when it may).

    *kind* is ``file``, ``dir``, ``symlink``, ``hardlink`` or ``other``.
    """
    if name.startswith("/"):
        return "member %r has an absolute path" % name
    if ".." in name.split("/"):
        return "member %r contains '..'" % name
    if kind == "other":
        return "member %r is a device, FIFO or socket" % name
    if kind in ("symlink", "hardlink"):
        target = linkname or ""
        base = posixpath.dirname(name) if kind == "symlink" else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return "link %r points outside the release (%r)" % (name, target)
    return None


def escapes(links, name, max_hops=40):
    """Whether the path *name*, followed inside the release with the release's
    own symlinks (*links*: path -> target), ever leaves the release. Checking
    each link's text alone is not enough: ``s -> .`` and ``e -> s/..`` are
    each harmless, but ``e`` is the directory above the release."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    stack = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not stack:
                return True
            stack.pop()
            continue
        stack.append(part)
        target = links.get("/".join(stack))
        if target is not None:
            hops += 1
            if hops > max_hops or target.startswith("/"):
                return True
            stack.pop()
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return False


def _kind(member):
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfile():
        return "file"
    return "other"


def single_top_dir(names_kinds):
    """The name of the only top-level entry when it is a directory, else None."""
    tops = set()
    top_is_dir = {}
    for name, kind in names_kinds:
        name = _norm(name)
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
        names = set(_norm(n) for n, _k in names_kinds)
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
        problem = member_problem(member.name, _kind(member), member.linkname)
        if problem:
            raise ArtifactError(problem)
        names_kinds.append((member.name, _kind(member)))
    if not [n for n, _k in names_kinds if _norm(n) not in ("", ".")]:
        raise ArtifactError("is an empty archive")
    strip = choose_strip(names_kinds, executable)
    lead = strip + "/" if strip else ""
    links = dict((_norm(m.name)[len(lead):], m.linkname) for m in members
                 if m.issym() and _norm(m.name).startswith(lead))
    for member in members:
        name = _norm(member.name)[len(lead):] if _norm(member.name).startswith(lead) else _norm(member.name)
        if member.issym() and escapes(links, name):
            raise ArtifactError("link %r points outside the release (%r)" % (member.name, member.linkname))
        if member.islnk():
            target = _norm(member.linkname)
            target = target[len(lead):] if target.startswith(lead) else target
            if escapes(links, target) or target in links:
                raise ArtifactError("hard link %r does not point at a file of the release (%r)"
                                    % (member.name, member.linkname))
        parent = posixpath.dirname(name)
        if parent and parent != name and escapes(links, parent):
            raise ArtifactError("member %r goes through a link that leaves the release" % member.name)
    names = set()
    for name, _kind_ in names_kinds:
        name = _norm(name)
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
            name = _norm(member.name)
            if strip:
                if name == strip:
                    continue
                name = name[len(strip) + 1:]
            if not name or name == ".":
                continue
            kind = _kind(member)
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
                link = _norm(member.linkname)
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
        full = _norm(member.name)
        prefix, _sep, name = full.partition("/")
        if prefix not in dests:
            raise ArtifactError("%s: member %r belongs to no release of this run" % (prefix, member.name))
        if not name or name == ".":
            continue
        dest = dests[prefix]
        kind = _kind(member)
        linkname = member.linkname
        if kind == "hardlink":
            lprefix, _sep, linkname = _norm(linkname).partition("/")
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


def bundle_bytes(entries):
    """An uncompressed tar (bytes) holding ``[(arcname, data_bytes)]``; for tests."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arcname, data in entries:
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
