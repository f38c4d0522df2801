# -*- coding: utf-8 -*-
"""A site's data on the host (plugins/module_utils/snapshots.py): snapshots
of live SQLite databases, WAL included, private from their first byte; what
preflight sees; pruning; and the swap of a rollback that restores one, with
every start of the site held. Real files and real SQLite under tmp_path, as
the user running the tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import grp
import json
import os
import pwd
import sqlite3
import stat

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import snapshots as D

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def rows(path):
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return conn.execute("SELECT count(*) FROM notes").fetchone()[0], conn.execute(
            "PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path):
    """A site directory with shared/notes.db in WAL mode, 50 rows of it only in the -wal, a writer still open."""
    site_dir = tmp_path / "srv" / "notes"
    (site_dir / "shared").mkdir(parents=True)
    db = site_dir / "shared" / "notes.db"
    writer = sqlite3.connect(str(db), isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO notes (body) VALUES (?)", [("n%d" % i,) for i in range(50)])
    writer.execute("COMMIT")
    assert os.path.getsize(str(db) + "-wal") > 0
    entry = dict(name="notes", site_dir=str(site_dir), user=USER, group=GROUP, data=["shared/notes.db"],
                 from_version="1.0.0", to_version="2.0.0")
    yield entry
    writer.close()


def take(site, when=1796608700.0, **kw):
    return D.Snapshots(clock=lambda: when, **kw).take(site, run_id="r1", by="alice@laptop")


def test_a_snapshot_of_a_live_wal_database_is_consistent_private_and_leaves_the_source_alone(site):
    db = os.path.join(site["site_dir"], "shared", "notes.db")
    before = [open(db + suffix, "rb").read() for suffix in ("", "-wal")]
    entry = take(site)
    assert entry["taken"] and entry["name"] == "20261207T015820Z-1.0.0-to-2.0.0"
    assert entry["path"] == os.path.join(site["site_dir"], "snapshots", entry["name"])
    copy = os.path.join(entry["path"], "shared", "notes.db")
    assert sorted(os.listdir(entry["path"])) == ["shared", "snapshot.json"]
    assert os.listdir(os.path.join(entry["path"], "shared")) == ["notes.db"]   # no -journal left
    assert entry["files"] == [dict(path="shared/notes.db", bytes=os.path.getsize(copy),
                                   seconds=entry["files"][0]["seconds"])]
    assert entry["bytes"] == os.path.getsize(copy) and entry["not_created"] == []
    # owned by the site's user, nobody else can read it; snapshots/ is root's and not listable
    assert mode(os.path.dirname(entry["path"])) == 0o711
    assert (mode(entry["path"]), mode(os.path.join(entry["path"], "shared")), mode(copy)) == (0o700, 0o700, 0o600)
    assert os.stat(copy).st_uid == os.getuid()
    assert rows(copy) == (50, "ok")                                   # the rows only in the -wal are in it
    meta = json.load(open(os.path.join(entry["path"], "snapshot.json")))
    assert meta["from_version"] == "1.0.0" and meta["to_version"] == "2.0.0" and meta["run_id"] == "r1"
    assert meta["taken_at"] == 1796608700.0 and meta["files"] == entry["files"] and meta["by"] == "alice@laptop"
    assert mode(os.path.join(entry["path"], "snapshot.json")) == 0o600
    # the live database was only read
    assert [open(db + suffix, "rb").read() for suffix in ("", "-wal")] == before
    assert not any(name.startswith(".") for name in os.listdir(os.path.dirname(entry["path"])))


def test_the_copy_is_private_from_its_first_byte(site, monkeypatch):
    seen = []
    real = D.sqlite3.connect

    def connect(path, *args, **kwargs):
        if not path.startswith("file:"):
            st = os.stat(path)
            seen.append((stat.S_IMODE(st.st_mode), st.st_size, mode(os.path.dirname(os.path.dirname(path))),
                         os.stat(os.path.dirname(os.path.dirname(path))).st_uid))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(D.sqlite3, "connect", connect)
    take(site)
    # created empty, 0600, in a directory of root's (here: of the test's user) that nobody else can enter
    assert seen == [(0o600, 0, 0o700, os.getuid())]


def test_the_source_is_opened_read_only(site, monkeypatch):
    sources = []
    real = D.sqlite3.connect

    def connect(path, *args, **kwargs):
        if path.startswith("file:"):
            sources.append((path, kwargs.get("uri")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(D.sqlite3, "connect", connect)
    take(site)
    assert sources == [("file:%s/shared/notes.db?mode=ro" % site["site_dir"], True)]


def test_a_file_not_created_yet_is_skipped_and_said(site):
    entry = take(dict(site, data=["shared/notes.db", "shared/later.db"]))
    assert entry["taken"] and entry["not_created"] == ["shared/later.db"]
    nothing = take(dict(site, data=["shared/later.db"]))
    assert nothing["taken"] is False and nothing["path"] is None and nothing["not_created"] == ["shared/later.db"]


def test_a_first_release_before_the_account_exists_skips_the_snapshot_and_says_why(site):
    first = dict(site, from_version=None, user="onebox-no-such-user", group="onebox-no-such-group")
    entry = take(first)
    assert entry["taken"] is False and entry["skipped"].startswith(
        "no snapshot before the first release: the account onebox-no-such-user:onebox-no-such-group does not exist")
    with pytest.raises(D.DataError, match="does not exist"):
        take(dict(first, from_version="1.0.0"))          # once a release served, the account must be there


def test_check_mode_says_what_it_would_copy_and_writes_nothing(site):
    entry = take(site, check_mode=True)
    assert entry["would"] and not entry["taken"]
    assert entry["files"][0]["path"] == "shared/notes.db" and entry["bytes"] > 0
    assert not os.path.exists(os.path.join(site["site_dir"], "snapshots"))


@pytest.mark.parametrize("how", ["file", "directory"])
def test_a_link_is_never_followed(site, tmp_path, how):
    other = tmp_path / "other"
    other.mkdir()
    db = os.path.join(site["site_dir"], "shared", "notes.db")
    if how == "file":
        os.rename(db, str(other / "notes.db"))
        os.symlink(str(other / "notes.db"), db)
    else:
        shared = os.path.join(site["site_dir"], "shared")
        os.rename(shared, str(other / "shared"))
        os.symlink(str(other / "shared"), shared)
    with pytest.raises(D.DataError, match="is a symbolic link"):
        take(site)
    state, problems = D.data_state(site["site_dir"], site["data"])
    assert state == {} and "is a symbolic link" in problems[0]


def test_a_file_that_is_no_database_fails_and_leaves_no_partial_snapshot(site):
    with open(os.path.join(site["site_dir"], "shared", "notes.txt"), "w") as handle:
        handle.write("not a database, " * 100)
    with pytest.raises(D.DataError, match="the SQLite backup failed"):
        take(dict(site, data=["shared/notes.db", "shared/notes.txt"]))
    assert os.listdir(os.path.join(site["site_dir"], "snapshots")) == []


def test_a_second_snapshot_in_the_same_second_gets_a_name_of_its_own(site):
    first, second = take(site), take(site)
    assert first["name"] != second["name"] and second["name"].startswith(first["name"] + "-")
    assert [s["name"] for s in D.list_snapshots(site["site_dir"])] == sorted([first["name"], second["name"]])


def test_data_state_for_preflight(site):
    state, problems = D.data_state(site["site_dir"], ["shared/notes.db", "shared/later.db"])
    assert problems == [] and state["shared/later.db"] == dict(exists=False, bytes=0)
    assert state["shared/notes.db"]["exists"] and state["shared/notes.db"]["bytes"] > os.path.getsize(
        os.path.join(site["site_dir"], "shared", "notes.db"))         # the -wal counts
    os.mkdir(os.path.join(site["site_dir"], "shared", "dir.db"))
    assert D.data_state(site["site_dir"], ["shared/dir.db"])[1] == [
        "shared/dir.db: %s/shared/dir.db is not a regular file" % site["site_dir"]]


def snap(name, from_version, taken_at):
    return dict(name=name, from_version=from_version, taken_at=taken_at)


def test_prune_keeps_the_newest_and_the_one_a_data_rollback_needs():
    snaps = [snap("a", "1.0", 1), snap("b", "2.0", 2), snap("c", "3.0", 3), snap("d", "4.0", 4), snap("e", "4.0", 5)]
    assert D.prune_plan(snaps, 2) == ["a", "b", "c"]
    assert D.prune_plan(snaps, 2, previous="2.0") == ["a", "c"]       # b restores 2.0: kept
    assert D.prune_plan(snaps, 2, previous="4.0") == ["a", "b", "c"]  # the newest of 4.0 is kept anyway
    assert D.prune_plan(snaps, 9) == []


def test_prune_deletes_old_snapshots_and_leftovers(site):
    names = [take(site, when=1796608700.0 + i)["name"] for i in range(4)]
    base = os.path.join(site["site_dir"], "snapshots")
    os.mkdir(os.path.join(base, ".x.partial-abc"))
    assert D.prune(site["site_dir"], 2, check_mode=True) == names[:2] and len(os.listdir(base)) == 5
    assert D.prune(site["site_dir"], 2) == names[:2]
    assert sorted(os.listdir(base)) == names[2:]
    assert D.prune(str(site["site_dir"]) + "-none", 2) == []


# --------------------------------------------------------------------------
# the swap of a rollback that restores data
# --------------------------------------------------------------------------

class Reloads(object):
    """Stands in for Systemctl: counts daemon-reloads and what the hold looked like at each."""

    def __init__(self, swap_of):
        self.swap_of = swap_of
        self.seen = []

    def daemon_reload(self):
        swap = self.swap_of()
        dropin = os.path.join(swap.dropin_dir, D.HOLD_DROPIN)
        self.seen.append(open(dropin).read() if os.path.exists(dropin) else None)


@pytest.fixture
def swap_of(site, tmp_path, monkeypatch):
    """A snapshot of notes with 50 rows; then the live database gets 25 more and a -shm; a DataSwap factory."""
    monkeypatch.setattr(D, "RUNTIME_DIR", str(tmp_path / "run"))
    snapshot = take(site)
    conn = sqlite3.connect(os.path.join(site["site_dir"], "shared", "notes.db"), isolation_level=None)
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [("later %d" % i,) for i in range(25)])
    conn.close()
    os.chmod(os.path.join(site["site_dir"], "shared", "notes.db"), 0o640)
    made = []

    def make(**kw):
        spec = dict(site="notes", site_dir=site["site_dir"], user=USER, group=GROUP, unit_file="notes.service",
                    files=["shared/notes.db"], snapshot=snapshot["path"], written_by="2.0.0", target="1.0.0")
        spec.update(kw)
        systemd = Reloads(lambda: made[-1])
        made.append(D.DataSwap(systemd, spec, flock="/usr/bin/flock", clock=lambda: 1796609000.0))
        return made[-1]

    return make


def test_held_makes_every_start_wait_for_the_lock_and_leaves_nothing_behind(swap_of):
    swap = swap_of()
    with swap.held():
        other = os.open(swap.lock_path, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)        # a start's shared lock would wait
        os.close(other)
    assert swap.systemd.seen == [
        "# Managed by onebox.deploy: every start of notes.service waits here while the site's data is swapped.\n"
        "# Removed right after; under /run, so a reboot clears it too.\n"
        "[Service]\nExecStartPre=+/usr/bin/flock --shared %s /bin/true\n" % swap.lock_path, None]
    assert not os.path.exists(swap.dropin_dir)
    other = os.open(swap.lock_path, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)                # free again
    os.close(other)
    assert swap.dropin_dir.endswith("/run/systemd/system/notes.service.d")


def test_the_hold_ends_also_when_the_swap_fails(swap_of):
    swap = swap_of()
    with pytest.raises(RuntimeError):
        with swap.held():
            raise RuntimeError("boom")
    assert swap.systemd.seen[-1] is None and not os.path.exists(swap.dropin_dir)


def test_apply_moves_the_live_files_aside_and_puts_the_snapshot_in_place_then_undo_reverses_it(swap_of, site):
    db = os.path.join(site["site_dir"], "shared", "notes.db")
    assert os.path.exists(db + "-shm") and os.path.exists(db + "-wal")
    live_before = open(db, "rb").read()
    done = swap_of().apply()
    assert done["aside"] == os.path.join(site["site_dir"], "aside", "20261207T020320Z-written-by-2.0.0")
    assert rows(db) == (50, "ok")                                     # the snapshot's rows
    assert (mode(db), os.stat(db).st_uid) == (0o640, os.getuid())     # as the replaced file was
    assert sorted(os.listdir(os.path.join(done["aside"], "shared"))) == ["notes.db", "notes.db-shm", "notes.db-wal"]
    assert open(os.path.join(done["aside"], "shared", "notes.db"), "rb").read() == live_before
    assert rows(os.path.join(done["aside"], "shared", "notes.db")) == (75, "ok")   # every row, the later ones too
    assert (mode(os.path.join(site["site_dir"], "aside")), mode(done["aside"])) == (0o711, 0o700)
    assert done["restored"] == [dict(path="shared/notes.db", bytes=os.path.getsize(db))]
    assert done["moved_from"] == [db, db + "-wal", db + "-shm"] and done["kept"] == [] and done["not_created"] == []

    undone = swap_of().undo(done)
    assert open(db, "rb").read() == live_before and os.path.exists(db + "-shm")
    assert rows(db) == (75, "ok")                                      # its own files are back
    assert undone["aside"].endswith("-written-by-1.0.0-failed")
    # the restored copy is kept, with the -wal and -shm its readers made
    assert sorted(os.listdir(os.path.join(undone["aside"], "shared"))) == ["notes.db", "notes.db-shm", "notes.db-wal"]
    assert rows(os.path.join(undone["aside"], "shared", "notes.db")) == (50, "ok")


def test_a_file_the_snapshot_records_as_not_created_is_moved_aside_and_stays_absent(swap_of, site):
    later = os.path.join(site["site_dir"], "shared", "later.db")
    sqlite3.connect(later).execute("CREATE TABLE t (x)").connection.close()
    meta_path = os.path.join(swap_of().spec["snapshot"], "snapshot.json")
    meta = json.load(open(meta_path))
    meta["not_created"] = ["shared/later.db"]
    with open(meta_path, "w") as handle:
        json.dump(meta, handle)
    done = swap_of(files=["shared/notes.db", "shared/later.db", "shared/unknown.db"]).apply()
    assert not os.path.exists(later) and done["not_created"] == ["shared/later.db"]
    assert done["kept"] == ["shared/unknown.db"]                     # the snapshot does not know it: left alone


def test_a_swap_that_fails_puts_every_live_file_back(swap_of, site, monkeypatch):
    db = os.path.join(site["site_dir"], "shared", "notes.db")
    before = open(db, "rb").read()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(D, "write_stream", broken)
    with pytest.raises(D.DataError, match="the live files are back in place: .*No space left on device"):
        swap_of().apply()
    assert open(db, "rb").read() == before and os.path.exists(db + "-wal")


def test_a_snapshot_file_that_is_a_link_is_never_read(swap_of, tmp_path):
    swap = swap_of()
    copy = os.path.join(swap.spec["snapshot"], "shared", "notes.db")
    secret = tmp_path / "secret"
    secret.write_text("another site's data")
    os.unlink(copy)
    os.symlink(str(secret), copy)
    with pytest.raises(D.DataError, match="without following links"):
        swap.apply()
