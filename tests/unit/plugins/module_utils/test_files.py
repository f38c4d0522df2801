# -*- coding: utf-8 -*-
"""The one file writer of the modules (plugins/module_utils/files.py).

The promise of write_file is that a file never exists with a mode other than
the one asked for once anything is written to it: an environment file with
secrets is 0600 from its first byte, also when it replaces a 0644 file. The
tests spy on the system calls it makes (``os.write``, ``os.fchmod``,
``os.fchown``, ``os.rename``) and look at the file system at each of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import stat
from unittest import mock

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import files as F

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="write_file chowns to root by default")

REAL = dict(write=os.write, fchmod=os.fchmod, fchown=os.fchown, rename=os.rename, unlink=os.unlink,
            symlink=os.symlink)
SECRET = "DB_PASSWORD=\"hunter2-very-secret\"\nAPI_KEY=\"k-0123456789\"\n"


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


class Spy(object):
    """Records, for the calls into files.py's ``os`` that touch *directory*,
    the call and the mode of the file it acts on; after each call it checks
    every file of *directory* that holds (a part of) *secret*."""

    def __init__(self, directory, secret=None):
        self.directory = str(directory)
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.events = []      # (call, file name, mode)
        self.exposed = []     # (after call, file name, mode) of a file with secret content at another mode
        self.secret_mode = None

    @staticmethod
    def fd_path(fd):
        try:
            return os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            return None

    def mine(self, path):
        return bool(path) and os.path.dirname(os.path.abspath(path)) == self.directory

    def record(self, call, path, mode):
        self.events.append((call, os.path.basename(path), mode))
        self.scan(call)

    def scan(self, call):
        if self.secret is None:
            return
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            if data and self.secret.startswith(data) and mode_of(path) != self.secret_mode:
                self.exposed.append((call, name, oct(mode_of(path))))

    # stand-ins -------------------------------------------------------------
    def write(self, fd, data):
        path = self.fd_path(fd)
        if self.mine(path):
            self.record("write", path, stat.S_IMODE(os.fstat(fd).st_mode))
        written = REAL["write"](fd, data)
        if self.mine(path):
            self.record("written", path, stat.S_IMODE(os.fstat(fd).st_mode))
        return written

    def fchmod(self, fd, mode):
        REAL["fchmod"](fd, mode)
        path = self.fd_path(fd)
        if self.mine(path):
            self.record("fchmod", path, stat.S_IMODE(os.fstat(fd).st_mode))

    def fchown(self, fd, uid, gid):
        REAL["fchown"](fd, uid, gid)
        path = self.fd_path(fd)
        if self.mine(path):
            self.record("fchown", path, stat.S_IMODE(os.fstat(fd).st_mode))

    def rename(self, src, dst, *args, **kwargs):
        if self.mine(src):
            self.record("rename", src, mode_of(src))
        REAL["rename"](src, dst, *args, **kwargs)
        if self.mine(dst):
            self.record("renamed", dst, stat.S_IMODE(os.lstat(dst).st_mode))

    def patches(self):
        return [mock.patch.object(F.os, name, side_effect=getattr(self, name)) for name in
                ("write", "fchmod", "fchown", "rename")]

    def run(self, func, *args, **kwargs):
        patches = self.patches()
        for patch in patches:
            patch.start()
        try:
            return func(*args, **kwargs)
        finally:
            for patch in reversed(patches):
                patch.stop()

    def calls(self, call):
        return [i for i, event in enumerate(self.events) if event[0] == call]


@pytest.fixture
def wide_umask():
    """umask 0: a file created without an explicit mode would be 0666."""
    old = os.umask(0)
    yield
    os.umask(old)


# --------------------------------------------------------------------------
# write_file
# --------------------------------------------------------------------------

@needs_root
def test_env_file_is_0600_at_every_step(tmp_path, wide_umask):
    path = tmp_path / "blog.env"
    spy = Spy(tmp_path, SECRET)
    spy.secret_mode = 0o600
    assert spy.run(F.write_file, str(path), SECRET, mode=0o600) is True
    assert spy.calls("write"), spy.events
    assert spy.calls("rename"), spy.events
    # Every mode seen at any call, on the temporary file and on the destination, is 0600.
    assert [event for event in spy.events if event[2] != 0o600] == []
    # Mode and owner are set before the first byte is written.
    assert spy.calls("fchmod") and spy.calls("fchmod")[0] < spy.calls("write")[0]
    assert spy.calls("fchown") and spy.calls("fchown")[0] < spy.calls("write")[0]
    assert spy.exposed == []
    with open(str(path)) as handle:
        assert handle.read() == SECRET
    st = os.stat(str(path))
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (0, 0)
    assert os.listdir(str(tmp_path)) == ["blog.env"]     # no temporary file left


@needs_root
def test_replacing_a_0644_file_with_a_0600_one_never_shows_the_new_content_at_0644(tmp_path, wide_umask):
    path = tmp_path / "blog.env"
    path.write_text("OLD=1\n")
    os.chmod(str(path), 0o644)
    spy = Spy(tmp_path, SECRET)
    spy.secret_mode = 0o600
    spy.run(F.write_file, str(path), SECRET, mode=0o600)
    assert spy.exposed == []
    writes = [event for event in spy.events if event[0] in ("write", "written", "rename", "renamed")]
    assert writes and all(event[2] == 0o600 for event in writes), spy.events
    # The destination is the old file (0644) until the rename, then the new one (0600).
    renamed = [event for event in spy.events if event[0] == "renamed"]
    assert renamed == [("renamed", "blog.env", 0o600)]
    assert mode_of(path) == 0o600 and path.read_text() == SECRET


@needs_root
def test_a_0644_file_gets_its_mode_before_its_content(tmp_path, wide_umask):
    path = tmp_path / "blog.service"
    spy = Spy(tmp_path)
    spy.run(F.write_file, str(path), "[Service]\n", mode=0o644)
    first_write = spy.calls("write")[0]
    assert spy.calls("fchmod")[0] < first_write
    # mkstemp's 0600 at most until fchmod, the requested mode from then on
    assert all(event[2] == 0o644 for event in spy.events[spy.calls("fchmod")[0]:]), spy.events
    assert all(event[2] in (0o600, 0o644) for event in spy.events)
    assert mode_of(path) == 0o644 and path.read_text() == "[Service]\n"


@needs_root
def test_write_file_takes_bytes_and_creates_the_directory(tmp_path):
    path = tmp_path / "new" / "dir" / "file.bin"
    F.write_file(str(path), b"\x00\xffbytes", mode=0o640, makedirs_mode=0o700)
    assert path.read_bytes() == b"\x00\xffbytes" and mode_of(path) == 0o640
    assert mode_of(tmp_path / "new" / "dir") == 0o700


@needs_root
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "blog.env"
    path.write_text("OLD=1\n")

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    with mock.patch.object(F.os, "write", side_effect=disk_full):
        with pytest.raises(F.WriteError) as info:
            F.write_file(str(path), SECRET, mode=0o600)
    assert str(path) in str(info.value) and "No space left" in str(info.value)
    assert path.read_text() == "OLD=1\n"
    assert os.listdir(str(tmp_path)) == ["blog.env"]


def test_write_file_into_a_missing_directory_names_the_path(tmp_path):
    path = tmp_path / "missing" / "blog.env"
    with pytest.raises(F.WriteError, match="cannot create a temporary file next to %s" % path):
        F.write_file(str(path), "x", mode=0o600)


@needs_root
def test_file_matches_and_copy_file(tmp_path):
    path = tmp_path / "a"
    F.write_file(str(path), "same\n", mode=0o600)
    assert F.file_matches(str(path), "same\n", mode=0o600, owner=0, group=0)
    assert F.file_matches(str(path), b"same\n")
    assert not F.file_matches(str(path), "other\n")
    assert not F.file_matches(str(path), "same\n", mode=0o644)
    assert not F.file_matches(str(tmp_path / "missing"), "same\n")
    os.symlink("a", str(tmp_path / "link"))
    assert not F.file_matches(str(tmp_path / "link"), "same\n")
    F.copy_file(str(path), str(tmp_path / "backup" / "a"), mode=0o600, makedirs_mode=0o700)
    assert (tmp_path / "backup" / "a").read_text() == "same\n" and mode_of(tmp_path / "backup" / "a") == 0o600
    with pytest.raises(F.WriteError, match="cannot read"):
        F.copy_file(str(tmp_path / "missing"), str(tmp_path / "b"), mode=0o600)
    assert F.remove_file(str(path)) is True and F.remove_file(str(path)) is False


# --------------------------------------------------------------------------
# append_json_lines
# --------------------------------------------------------------------------

def test_append_json_lines_appends_one_line_per_record(tmp_path):
    path = tmp_path / "log" / "onebox" / "deploy.jsonl"
    assert F.append_json_lines(str(path), [{"b": 1, "a": "x"}, {"site": "shop"}]) == 2
    assert F.append_json_lines(str(path), [{"site": "wiki", "n": [1, 2]}]) == 1
    lines = path.read_text().splitlines(True)
    assert lines == ['{"a": "x", "b": 1}\n', '{"site": "shop"}\n', '{"n": [1, 2], "site": "wiki"}\n']
    assert [json.loads(line) for line in lines][2] == {"site": "wiki", "n": [1, 2]}
    assert mode_of(path) == 0o640 and mode_of(path.parent) == 0o750


def test_append_json_lines_with_nothing_writes_nothing(tmp_path):
    path = tmp_path / "deploy.jsonl"
    assert F.append_json_lines(str(path), []) == 0
    assert not path.exists()


def test_append_json_lines_is_one_write_for_all_records(tmp_path):
    path = tmp_path / "deploy.jsonl"
    path.write_text('{"old": true}\n')
    with mock.patch.object(F.os, "write", side_effect=REAL["write"]) as write:
        F.append_json_lines(str(path), [{"n": n} for n in range(50)])
    assert write.call_count == 1
    assert path.read_text().count("\n") == 51 and path.read_text().startswith('{"old": true}\n')


def test_append_json_lines_failure_names_the_path(tmp_path):
    path = tmp_path / "deploy.jsonl"
    path.mkdir()
    with pytest.raises(F.WriteError, match="cannot append 1 record\\(s\\) to %s" % path):
        F.append_json_lines(str(path), [{"a": 1}])


# --------------------------------------------------------------------------
# point_symlink
# --------------------------------------------------------------------------

def test_point_symlink_replaces_a_symlink_atomically(tmp_path):
    site = tmp_path / "blog"
    (site / "releases" / "1.0").mkdir(parents=True)
    (site / "releases" / "1.1").mkdir()
    current = site / "current"
    os.symlink(str(site / "releases" / "1.0"), str(current))
    calls = []

    def unlink(path, *args, **kwargs):
        calls.append(("unlink", str(path)))
        return REAL["unlink"](path, *args, **kwargs)

    def rename(src, dst, *args, **kwargs):
        # At the moment of the switch the old link is still there: never a window without `current`.
        calls.append(("rename", os.path.basename(str(src)), str(dst), os.readlink(str(current))))
        return REAL["rename"](src, dst, *args, **kwargs)
    with mock.patch.object(F.os, "unlink", side_effect=unlink), mock.patch.object(F.os, "rename", side_effect=rename):
        F.point_symlink(str(current), str(site / "releases" / "1.1"))
    assert ("unlink", str(current)) not in calls
    renames = [c for c in calls if c[0] == "rename"]
    assert len(renames) == 1
    assert renames[0][2] == str(current) and renames[0][3] == str(site / "releases" / "1.0")
    assert renames[0][1] != "current" and renames[0][1].startswith("current.onebox-")
    assert os.readlink(str(current)) == str(site / "releases" / "1.1")
    assert sorted(os.listdir(str(site))) == ["current", "releases"]


def test_point_symlink_creates_a_missing_link_and_clears_a_stale_temporary_one(tmp_path):
    stale = tmp_path / ("current.onebox-%d" % os.getpid())
    os.symlink("nowhere", str(stale))
    F.point_symlink(str(tmp_path / "current"), "releases/2.0")
    assert os.readlink(str(tmp_path / "current")) == "releases/2.0"
    assert os.listdir(str(tmp_path)) == ["current"]


def test_point_symlink_never_replaces_a_directory(tmp_path):
    current = tmp_path / "current"
    current.mkdir()
    (current / "keep").write_text("data")
    with pytest.raises(F.WriteError) as info:
        F.point_symlink(str(current), "releases/2.0")
    assert str(current) in str(info.value) and "releases/2.0" in str(info.value)
    assert current.is_dir() and not current.is_symlink() and (current / "keep").read_text() == "data"
    assert os.listdir(str(tmp_path)) == ["current"]
    assert F.link_target(str(current)) is None


def test_tail_json_records_reads_whole_object_lines_of_the_tail_only(tmp_path):
    log = tmp_path / "deploy.jsonl"
    lines = [json.dumps({"n": n, "pad": "x" * 20}) for n in range(10)]
    log.write_text("\n".join(lines[:5]) + "\nnot json\n[1, 2]\n" + "\n".join(lines[5:]) + "\n")
    assert [r["n"] for r in F.tail_json_records(str(log), 1 << 20)] == list(range(10))
    # a tail that starts inside a line drops that line, never parses half of one
    tail = len(lines[9]) + 1 + len(lines[8]) + 1 + 5
    assert [r["n"] for r in F.tail_json_records(str(log), tail)] == [8, 9]
    assert F.tail_json_records(str(tmp_path / "missing.jsonl"), 100) == []
