# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A site's declared data (its SQLite files under ``shared/``) on the host:
what exists (for preflight), snapshots taken before a roll, their pruning,
and the swap of a rollback that restores one.

Layout, per site (``<site_dir>`` is ``<onebox_root>/<name>``)::

    snapshots/                                   root, 0711 (not listable)
      20261207T014500Z-1.0.0-to-2.0.0/           the site's user, 0700
        snapshot.json                            what it holds, 0600
        shared/app.db                            the copy, the site's user, 0600
    aside/                                       root, 0711
      20261207T020000Z-written-by-2.0.0/         the site's user, 0700
        shared/app.db, shared/app.db-wal, ...    the files a restore replaced, as they were

A snapshot is taken with SQLite's online backup API, through a read-only
connection to the live database (``file:...?mode=ro``): one step, inside one
read transaction, so the copy is consistent while the app writes, and a
WAL database's ``-wal`` content is in it. The copy is made in a directory of
root's (0700) into a file created 0600 and owned by the site's user before
its first byte; the directory is handed to the user and renamed into place
only when complete.

A restore runs while the site is stopped, with every start of its service
held (:class:`DataSwap`): the live files (and their ``-wal``, ``-shm``,
``-journal``) are moved aside, never deleted, and the snapshot's copies are
written in their place.

Paths are walked without following links: a declared file, or a directory on
the way to it, that is a symbolic link is an error, so a snapshot never reads
and a restore never writes outside the site's directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import fcntl
import grp
import json
import os
import pwd
import shutil
import sqlite3
import stat
import tempfile
import time

from ansible_collections.onebox.deploy.plugins.module_utils.files import (
    WriteError,
    read_json_object,
    remove_file,
    subdirectories,
    write_file,
    write_stream,
)
from ansible_collections.onebox.deploy.plugins.module_utils.shared import restore_source

from urllib.parse import quote

SNAPSHOTS = "snapshots"
ASIDE = "aside"
METADATA = "snapshot.json"
#: Files SQLite keeps next to a database, moved aside with it.
COMPANIONS = ("-wal", "-shm", "-journal")
#: Seconds a read-only connection waits for a lock (a rollback-journal database being written).
BUSY_TIMEOUT = 30.0
#: The drop-in that holds every start of a site's service while its data is swapped.
HOLD_DROPIN = "50-onebox-data-hold.conf"
#: Where the hold's lock and drop-in live (``/run``: a reboot clears them).
RUNTIME_DIR = "/run"


class DataError(Exception):
    """A data file or snapshot cannot be read, taken or restored; ``str()`` names the path and why."""


def stamp(when=None):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))


def snapshot_name(from_version, to_version, when=None):
    """``20261207T014500Z-1.0.0-to-2.0.0`` (``...Z-to-1.0.0`` before a first release)."""
    if from_version:
        return "%s-%s-to-%s" % (stamp(when), from_version, to_version)
    return "%s-to-%s" % (stamp(when), to_version)


def owner_ids(user, group):
    try:
        return pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid
    except KeyError as exc:
        raise DataError("the account %s:%s does not exist (%s)" % (user, group or user, exc))


# --------------------------------------------------------------------------
# paths, without following links
# --------------------------------------------------------------------------

def walk(base, rel):
    """``(path, lstat of it or None)`` of *rel* under *base*; raises DataError
    when a part of the way (the file itself included) is a symbolic link or a
    directory on the way is not one. *base* itself is trusted."""
    path = base
    parts = rel.split("/")
    for index, part in enumerate(parts):
        if part in ("", ".", ".."):
            raise DataError("%s: %r is not a plain relative path" % (base, rel))
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return path, None
            raise DataError("%s: cannot read: %s" % (path, exc))
        if stat.S_ISLNK(st.st_mode):
            raise DataError("%s is a symbolic link; data is read and written only inside the site's directory, "
                            "without following links" % path)
        if index < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise DataError("%s is not a directory" % path)
    return path, st


def regular_file(base, rel):
    """``(path, lstat)`` of a declared file, lstat None when it does not exist;
    DataError when it is a link or not a regular file."""
    path, st = walk(base, rel)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise DataError("%s is not a regular file" % path)
    return path, st


def open_regular(base, rel):
    """An fd of the regular file *rel* under *base*, opened without following
    links (each directory on the way too)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        parts = rel.split("/")
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        raise DataError("%s: cannot open %s without following links: %s" % (base, rel, exc))
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise DataError("%s is not a regular file" % os.path.join(base, rel))
    return out


def ensure_dir(path, mode, uid=0, gid=0):
    """A directory (not a link) with this mode and owner, created when missing."""
    try:
        st = os.lstat(path)
    except OSError:
        os.mkdir(path, mode)
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise DataError("%s is not a directory" % path)
    if (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (mode, uid, gid):
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return path


def hand_over(top, uid, gid):
    """Give the tree *top* (made by root, directories 0700, files 0600) to the site's user."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
    os.chown(top, uid, gid)
    os.chmod(top, 0o700)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_bytes(path):
    """Size of a database with its ``-wal`` (what a snapshot will read), 0 when missing."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.lstat(path + suffix).st_size
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------
# what is on the host (preflight)
# --------------------------------------------------------------------------

def data_state(site_dir, paths):
    """``({path: {exists, bytes}}, problems)`` of a site's declared files."""
    state = {}
    problems = []
    for rel in paths or []:
        try:
            path, st = regular_file(site_dir, rel)
        except DataError as exc:
            problems.append("%s: %s" % (rel, exc))
            continue
        state[rel] = dict(exists=st is not None, bytes=file_bytes(path) if st is not None else 0)
    return state, problems


def read_metadata(path):
    return read_json_object(os.path.join(path, METADATA))


def list_snapshots(site_dir):
    """The site's snapshots, oldest first: their metadata with ``name`` and ``path``."""
    out = []
    for name, path in subdirectories(os.path.join(site_dir, SNAPSHOTS)):
        meta = read_metadata(path)
        if meta is None:
            continue
        try:
            taken = float(meta.get("taken_at"))
        except (TypeError, ValueError):
            continue
        out.append(dict(name=name, path=path, taken_at=taken, from_version=meta.get("from_version"),
                        to_version=meta.get("to_version"), bytes=meta.get("bytes"), seconds=meta.get("seconds"),
                        files=[f.get("path") for f in meta.get("files") or [] if isinstance(f, dict)],
                        not_created=list(meta.get("not_created") or []), time=meta.get("time")))
    out.sort(key=lambda s: (s["taken_at"], s["name"]))
    return out


def prune_plan(snapshots, keep, previous=None):
    """Names of the snapshots to delete so that the newest *keep* remain; the
    one a data rollback to *previous* would restore is always kept."""
    protected = restore_source(snapshots, previous) if previous else None
    newest = [s["name"] for s in snapshots][-keep:] if keep > 0 else []
    return [s["name"] for s in snapshots if s["name"] not in newest
            and (protected is None or s["name"] != protected["name"])]


def prune(site_dir, keep, previous=None, check_mode=False):
    """Delete old snapshots (and leftovers of interrupted ones); returns the names."""
    base = os.path.join(site_dir, SNAPSHOTS)
    doomed = prune_plan(list_snapshots(site_dir), keep, previous)
    try:
        leftovers = sorted(n for n in os.listdir(base) if n.startswith(".") and ".partial-" in n)
    except OSError:
        leftovers = []
    if not check_mode:
        for name in doomed + leftovers:
            path = os.path.join(base, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
    return doomed


# --------------------------------------------------------------------------
# taking snapshots
# --------------------------------------------------------------------------

def backup(source, dest, uid, gid):
    """Copy the live database *source* to the new file *dest* with SQLite's
    online backup API, in one step. *dest* is created empty, 0600 and owned by
    the site's user, before SQLite writes to it; *source* is opened
    read-only. Returns the seconds it took."""
    began = time.monotonic()
    write_file(dest, b"", mode=0o600, owner=uid, group=gid)
    src = dst = None
    try:
        src = sqlite3.connect("file:%s?mode=ro" % quote(source), uri=True, timeout=BUSY_TIMEOUT)
        dst = sqlite3.connect(dest, timeout=BUSY_TIMEOUT)
        src.backup(dst)
    except sqlite3.Error as exc:
        raise DataError("%s: the SQLite backup failed: %s" % (source, exc))
    finally:
        for conn in (dst, src):
            if conn is not None:
                conn.close()
    for suffix in COMPANIONS:
        remove_file(dest + suffix)
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - began


class Snapshots(object):
    """Takes the snapshots of the sites of a roll; see the module docstring."""

    def __init__(self, check_mode=False, clock=time.time):
        self.check_mode = check_mode
        self.clock = clock

    def plan(self, site):
        """``(existing [(rel, path, lstat)], not_created [rel])`` of a site's declared files."""
        existing, missing = [], []
        for rel in site.get("data") or []:
            path, st = regular_file(site["site_dir"], rel)
            if st is None:
                missing.append(rel)
            else:
                existing.append((rel, path, st))
        return existing, missing

    def take(self, site, run_id=None, by=None):
        """Snapshot one site's declared files; returns what was (or, in check
        mode, would be) taken: ``name``, ``path``, ``files`` (``path``,
        ``bytes``, ``seconds``), ``bytes``, ``seconds``, ``not_created``."""
        existing, missing = self.plan(site)
        entry = dict(site=site["name"], from_version=site.get("from_version"), to_version=site.get("to_version"),
                     taken=False, name=None, path=None, files=[], bytes=0, seconds=0.0, not_created=missing)
        if not existing:
            return entry
        if self.check_mode:
            entry["files"] = [dict(path=rel, bytes=file_bytes(path), seconds=None) for rel, path, _st in existing]
            entry["bytes"] = sum(f["bytes"] for f in entry["files"])
            entry["would"] = True
            return entry
        try:
            uid, gid = owner_ids(site["user"], site.get("group"))
        except DataError as exc:
            if site.get("from_version"):
                raise
            # a first release, with data put in place before the site's account exists
            entry["skipped"] = "no snapshot before the first release: %s" % exc
            return entry
        base = ensure_dir(os.path.join(site["site_dir"], SNAPSHOTS), 0o711)
        when = self.clock()
        name = snapshot_name(site.get("from_version"), site.get("to_version"), when)
        final = os.path.join(base, name)
        if os.path.lexists(final):
            name += "-%s" % (run_id or os.getpid())
            final = os.path.join(base, name)
        work = tempfile.mkdtemp(prefix=".%s.partial-" % name, dir=base)
        began = time.monotonic()
        try:
            for rel, path, before in existing:
                dest = os.path.join(work, rel)
                if not os.path.isdir(os.path.dirname(dest)):
                    os.makedirs(os.path.dirname(dest), 0o700)
                seconds = backup(path, dest, uid, gid)
                after = os.lstat(path)
                if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or stat.S_ISLNK(after.st_mode):
                    raise DataError("%s was replaced while its snapshot was taken; run the deploy again" % path)
                entry["files"].append(dict(path=rel, bytes=os.path.getsize(dest), seconds=round(seconds, 3)))
            entry["bytes"] = sum(f["bytes"] for f in entry["files"])
            entry["seconds"] = round(time.monotonic() - began, 3)
            meta = dict(site=site["name"], from_version=site.get("from_version"),
                        to_version=site.get("to_version"), taken_at=when, time=stamp(when), run_id=run_id, by=by,
                        files=entry["files"], not_created=missing, bytes=entry["bytes"], seconds=entry["seconds"])
            write_file(os.path.join(work, METADATA), json.dumps(meta, indent=2, sort_keys=True) + "\n",
                       mode=0o600, owner=uid, group=gid)
            hand_over(work, uid, gid)
            os.rename(work, final)
            fsync_dir(base)
        except (DataError, WriteError, OSError) as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise DataError(str(exc))
        entry.update(taken=True, name=name, path=final)
        return entry


# --------------------------------------------------------------------------
# restoring: the swap of a rollback
# --------------------------------------------------------------------------

def move(src, dest):
    """Rename *src* to *dest*; across file systems, copy it (same mode and
    owner, synced) and then remove *src*."""
    try:
        os.rename(src, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    st = os.lstat(src)
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        write_stream(dest, fd, mode=st.st_mode & 0o7777, owner=st.st_uid, group=st.st_gid)
    finally:
        os.close(fd)
    os.unlink(src)


class DataSwap(object):
    """Puts a snapshot in place of a site's live files, and back (:meth:`undo`).

    *spec* is a ``rolling_restart`` unit's ``data``: ``site``, ``site_dir``,
    ``user``, ``group``, ``unit_file`` (``blog.service`` or ``blog@.service``),
    ``files`` (declared paths), ``snapshot`` (its directory), ``written_by``
    (the release whose files are replaced) and ``target`` (the release that
    serves after the swap). The caller stops the site inside :meth:`held`.
    """

    def __init__(self, systemd, spec, flock="/usr/bin/flock", runtime_dir=None, clock=time.time):
        self.systemd = systemd
        self.spec = spec
        self.flock = flock
        self.clock = clock
        runtime_dir = runtime_dir or RUNTIME_DIR
        self.lock_path = os.path.join(runtime_dir, "onebox", "data-%s.lock" % spec["site"])
        self.dropin_dir = os.path.join(runtime_dir, "systemd", "system", "%s.d" % spec["unit_file"])

    def dropin(self):
        values = (self.spec["unit_file"], self.flock, self.lock_path)
        return ("# Managed by onebox.deploy: every start of %s waits here while the site's data is swapped.\n"
                "# Removed right after; under /run, so a reboot clears it too.\n"
                "[Service]\nExecStartPre=+%s --shared %s /bin/true\n" % values)

    @contextlib.contextmanager
    def held(self):
        """Every start of the site's service (a connection on its socket
        starts it) waits until the block is done: a runtime drop-in makes each
        start take a shared lock first, held exclusively here."""
        if not os.path.isdir(os.path.dirname(self.lock_path)):
            os.makedirs(os.path.dirname(self.lock_path), 0o755)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            dropin = os.path.join(self.dropin_dir, HOLD_DROPIN)
            write_file(dropin, self.dropin(), mode=0o644, makedirs_mode=0o755)
            try:
                self.systemd.daemon_reload()
                yield
            finally:
                remove_file(dropin)
                try:
                    os.rmdir(self.dropin_dir)
                except OSError:
                    pass
                self.systemd.daemon_reload()
        finally:
            os.close(fd)   # releases the lock: a start that waited goes on

    def _aside_dir(self, label):
        base = ensure_dir(os.path.join(self.spec["site_dir"], ASIDE), 0o711)
        name = "%s-%s" % (stamp(self.clock()), label)
        path = os.path.join(base, name)
        count = 1
        while os.path.lexists(path):
            count += 1
            path = os.path.join(base, "%s-%d" % (name, count))
        os.mkdir(path, 0o700)
        return path

    def _move_live(self, rels, aside):
        """Move each live file of *rels* and its companions into *aside*; ``[(live, dest)]``."""
        moved = []
        for rel in rels:
            live, _st = regular_file(self.spec["site_dir"], rel)
            for suffix in ("",) + COMPANIONS:
                src = live + suffix
                try:
                    st = os.lstat(src)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise DataError("%s is not a regular file" % src)
                dest = os.path.join(aside, rel + suffix)
                if not os.path.isdir(os.path.dirname(dest)):
                    os.makedirs(os.path.dirname(dest), 0o700)
                move(src, dest)
                moved.append((src, dest))
        return moved

    def _put_back(self, moved):
        for live, dest in reversed(moved):
            move(dest, live)

    def check(self):
        """``(the files the snapshot holds, those it records as not created
        yet)`` of the declared files; DataError when it is not a snapshot or a
        file it holds cannot be read. Done before the site is stopped."""
        snapshot = self.spec["snapshot"]
        meta = read_metadata(snapshot)
        if meta is None:
            raise DataError("%s: no readable %s; not a snapshot" % (snapshot, METADATA))
        held = set(f.get("path") for f in meta.get("files") or [] if isinstance(f, dict)) & set(self.spec["files"])
        for rel in held:
            os.close(open_regular(snapshot, rel))
        for rel in self.spec["files"]:
            regular_file(self.spec["site_dir"], rel)
        return held, set(meta.get("not_created") or []) & set(self.spec["files"])

    def apply(self):
        """Move the live files aside and write the snapshot's copies in their
        place; a file the snapshot records as not created yet stays absent.
        On an error everything moved is put back. Returns what was done."""
        spec = self.spec
        began = time.monotonic()
        uid, gid = owner_ids(spec["user"], spec.get("group"))
        snapshot = spec["snapshot"]
        held, absent = self.check()
        rels = [rel for rel in spec["files"] if rel in held or rel in absent]
        sources = {}
        aside = None
        moved, written = [], []
        try:
            for rel in rels:
                if rel in held:
                    sources[rel] = open_regular(snapshot, rel)
            aside = self._aside_dir("written-by-%s" % (spec.get("written_by") or "unknown"))
            originals = {}
            for rel in rels:
                path, st = regular_file(spec["site_dir"], rel)
                if st is not None:
                    originals[rel] = st
            moved = self._move_live(rels, aside)
            restored = []
            for rel in rels:
                if rel not in sources:
                    continue
                live = os.path.join(spec["site_dir"], rel)
                st = originals.get(rel)
                mode, owner, group = (st.st_mode & 0o7777, st.st_uid, st.st_gid) if st else (0o600, uid, gid)
                size = write_stream(live, sources[rel], mode=mode, owner=owner, group=group)
                written.append(live)
                restored.append(dict(path=rel, bytes=size))
        except (DataError, WriteError, OSError) as exc:
            for live in written:
                remove_file(live)
            self._put_back(moved)
            raise DataError("restoring %s failed, the live files are back in place: %s" % (snapshot, exc))
        finally:
            for fd in sources.values():
                os.close(fd)
        hand_over(aside, uid, gid)
        fsync_dir(os.path.join(spec["site_dir"], "shared"))
        return dict(snapshot=snapshot, aside=aside, restored=restored, moved=[d for _l, d in moved],
                    moved_from=[live for live, _d in moved], not_created=sorted(absent & set(rels)),
                    kept=[rel for rel in spec["files"] if rel not in rels],
                    seconds=round(time.monotonic() - began, 3))

    def undo(self, applied):
        """After the release that was to serve the restored data did not come
        ready: what is live now goes aside too, and the files :meth:`apply`
        moved aside come back. Returns what was done."""
        spec = self.spec
        uid, gid = owner_ids(spec["user"], spec.get("group"))
        rels = [r["path"] for r in applied.get("restored") or []] + list(applied.get("not_created") or [])
        aside = self._aside_dir("written-by-%s-failed" % (spec.get("target") or "unknown"))
        moved = self._move_live(rels, aside)
        for live, dest in zip(applied.get("moved_from") or [], applied.get("moved") or []):
            move(dest, live)
        hand_over(aside, uid, gid)
        return dict(aside=aside, moved=[d for _l, d in moved], returned=list(applied.get("moved_from") or []))


__all__ = ["ASIDE", "COMPANIONS", "DataError", "DataSwap", "METADATA", "SNAPSHOTS", "Snapshots", "backup",
           "data_state", "list_snapshots", "prune", "prune_plan", "regular_file", "restore_source",
           "snapshot_name"]
