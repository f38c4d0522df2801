"""Data and releases: a real SQLite app under real write load.

`notes` (molecule/rbdata/files/notes/app.py, Python's http.server and
sqlite3 in WAL mode) inserts a row on every POST. Its releases know one
schema each and refuse to start on another. The tests run in file order and
build on each other:

1. the first deploy: the database is not created yet, nothing to snapshot;
2. a 100 MB database (a blob table) and some rows;
3. check mode says what it would snapshot, and takes nothing;
4. 2.0.0 deployed under wrk POST load, with a before_roll hook that migrates
   the schema to 2 while 1.0.0 serves: 0 failed requests, and the snapshot,
   taken before the hook, holds schema 1;
5. a rollback without data: 1.0.0 refuses schema 2, so the rollback fails and
   2.0.0 serves again, and the run says the data was last written by 2.0.0
   and how to restore it;
6. the rollback with data under read load: 1.0.0 serves schema 1 with the
   snapshot's rows, the files moved aside hold every row written after it;
7. history shows what happened to the data;
8. a deploy of 2.0.0 without its migration: 2.0.0 refuses schema 1, the
   code is rolled back, the data is not, and the run says what ran against it;
9. every snapshot and the files moved aside pass PRAGMA integrity_check;
10. a snapshot that fails (a declared file that is no database) stops the
    deploy before anything changes;
11. the restore by hand of docs/data.md, its commands as written;
12. overlap is refused for a site with data; the site is removed with purge.
"""

import json
import os
import shutil

import pytest
from conftest import (PROJECT, hold_machine_for_load, paced_load_results, print_table, public_url, run_playbook,
                      start_paced_load)

AUDIT_LOG = "/var/log/onebox/deploy.jsonl"
SITE_DIR = "/srv/onebox/notes"
DB = SITE_DIR + "/shared/notes.db"
APP = os.path.join(PROJECT, "molecule", "rbdata", "files", "notes")
NOTES = dict(name="notes", listen="127.0.0.1:8201", version="1.0.0", service_type="exec",
             command="/usr/bin/python3 app.py", ready_timeout=10, env={"NOTES_DB": DB}, data=["shared/notes.db"])
FACTS = {}     # what the tests measured, for the ones after them and the summary


def release(tmp_path, version, schema):
    path = tmp_path / version
    shutil.copytree(APP, str(path))
    (path / "SCHEMA").write_text("%d\n" % schema)
    return str(path)


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notes")
    return {"1.0.0": dict(NOTES, artifact=release(tmp, "1.0.0", 1)),
            "2.0.0": dict(NOTES, version="2.0.0", artifact=release(tmp, "2.0.0", 2))}


def audit(host):
    return [r for r in (json.loads(line) for line in host.file(AUDIT_LOG).content_string.splitlines() if line.strip())
            if r.get("site") == "notes"]


def served(host):
    return json.loads(host.check_output("curl -fsS --max-time 10 %s" % public_url(NOTES)))


def sql(host, path, query, user="root"):
    """One query on the database at *path*, opened read-only, as JSON rows."""
    script = ("import json, sqlite3, sys; c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); "
              "print(json.dumps(c.execute(sys.argv[2]).fetchall()))")
    return json.loads(host.check_output("runuser -u %s -- python3 -c %s %s %s" % (
        user, _quote(script), _quote(path), _quote(query))))


def said(out, *needles):
    """Print the lines of a run's output about the data (the callback may wrap them)."""
    for line in out.splitlines():
        if any(needle in line for needle in needles):
            print("  | " + line.strip())


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def facts(host, path):
    """Schema, rows, the highest id, a checksum of the ids, integrity of a notes database."""
    user_version = sql(host, path, "PRAGMA user_version")[0][0]
    count, top, total = sql(host, path, "SELECT count(*), max(id), sum(id) FROM notes")[0]
    return dict(schema=user_version, rows=count, max_id=top, id_sum=total,
                integrity=sql(host, path, "PRAGMA integrity_check")[0][0],
                columns=[c[1] for c in sql(host, path, "PRAGMA table_info(notes)")])


def test_first_deploy_has_no_data_to_snapshot_yet(host, releases):
    rc, out = run_playbook({"onebox_sites": [releases["1.0.0"]]}, playbook="deploy.yml")
    said(out, "notes 1.0.0 (")
    assert rc == 0, out[-3000:]
    assert "notes 1.0.0 (data shared/notes.db not created yet, nothing to snapshot)" in out, out[-3000:]
    record = audit(host)[-1]
    assert record["outcome"] == "success" and record["data"]["snapshot"] is None, record
    assert record["data"]["not_created"] == ["shared/notes.db"], record
    assert served(host)["version"] == "1.0.0" and served(host)["schema"] == 1


def test_a_100_mb_database_with_rows(host):
    fill = ("import sqlite3; c = sqlite3.connect('%s', timeout=30, isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); "
            "c.execute('CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)'); "
            "c.execute('WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100) "
            "INSERT INTO blobs SELECT x, randomblob(1048576) FROM n'); "
            "c.executemany('INSERT INTO notes (body) VALUES (?)', [('seed %%d' %% i,) for i in range(1000)]); "
            "c.execute('COMMIT')" % DB)
    host.check_output("runuser -u notes -- python3 -c %s" % _quote(fill))
    assert host.run("curl -fsS -X POST --data first %s" % public_url(NOTES)).rc == 0
    size = int(host.check_output("stat -c %%s %s" % DB)) + int(host.run("stat -c %%s %s-wal" % DB).stdout or 0)
    assert size > 100 * 2 ** 20, size
    FACTS["rows_before_load"] = served(host)["rows"]
    assert FACTS["rows_before_load"] == 1001


def test_check_mode_says_what_it_would_snapshot_and_changes_nothing(host, releases):
    rc, out = run_playbook({"onebox_sites": [releases["2.0.0"]]}, playbook="deploy.yml", args=["--check"])
    assert rc == 0, out[-3000:]
    text = " ".join(out.split())        # the callback may wrap a long line
    print("  | " + text[text.find("notes 1.0.0 (check mode"):].split(")'")[0] + ")")
    assert "notes 1.0.0 (check mode: would roll to 2.0.0 after a snapshot of shared/notes.db (at most " in text, text
    # the database and its -wal on disk: at least the 100 MB written
    assert float(text.split("shared/notes.db (at most ")[1].split(" MB")[0]) > 100 * 2 ** 20 / 1e6, text
    assert not host.file(SITE_DIR + "/snapshots").exists


def test_deploy_that_migrates_the_schema_under_write_load_snapshots_first_and_fails_no_request(host, releases,
                                                                                              tmp_path):
    hook = tmp_path / "migrate.yml"
    migrate = ("import sqlite3; c = sqlite3.connect('%s', timeout=30, isolation_level=None); "
               "c.execute('BEGIN IMMEDIATE'); c.execute('ALTER TABLE notes ADD COLUMN author TEXT'); "
               "c.execute('PRAGMA user_version=2'); c.execute('COMMIT')" % DB)
    hook.write_text("---\n- name: Migrate the notes database to schema 2 while 1.0.0 serves\n"
                    "  ansible.builtin.command:\n    argv: [runuser, -u, notes, --, python3, -c, %s]\n"
                    "  changed_when: true\n" % json.dumps(migrate))
    hold_machine_for_load()
    host.check_output("printf 'wrk.method = \"POST\"\\nwrk.body = \"note\"\\n"
                      "function delay()\\n  return 5\\nend\\n' > /tmp/post.lua")
    host.check_output("nohup wrk -t1 -c8 -d900s --timeout 10s --latency -s /tmp/post.lua %s > /tmp/wrk-notes.txt "
                      "2>&1 &" % public_url(NOTES))
    rc, out = run_playbook({"onebox_sites": [releases["2.0.0"]], "onebox_hooks": {"before_roll": [str(hook)]}},
                           playbook="deploy.yml")
    load = paced_load_results(host, [NOTES])["notes"]
    said(out, "notes 2.0.0 (", "probe:")
    assert rc == 0, out[-3000:]
    record = audit(host)[-1]
    assert (record["from_version"], record["to_version"], record["outcome"]) == ("1.0.0", "2.0.0", "success"), record
    snapshot = record["data"]["snapshot"]
    assert snapshot and snapshot["files"][0]["path"] == "shared/notes.db", record
    assert "data snapshot before it: %.1f MB" % (snapshot["bytes"] / 1e6) in out, out[-3000:]
    per_100mb = snapshot["files"][0]["seconds"] / (snapshot["files"][0]["bytes"] / 100e6)
    FACTS.update(snapshot=snapshot, load=load, probe=record["probe"], per_100mb=per_100mb,
                 ready_s=record["time_to_ready_s"])
    print("snapshot of %.1f MB under write load: %.3f s, %.3f s per 100 MB" % (
        snapshot["bytes"] / 1e6, snapshot["files"][0]["seconds"], per_100mb))
    print("wrk POST during the deploy: %d requests, %d failed, max %.0f ms; deploy probe: %d sent, %d failed" % (
        load["requests"], load["failed"], load["max_ms"] or 0, record["probe"]["sent"], record["probe"]["failed"]))
    assert load["requests"] > 500 and load["failed"] == 0, load
    assert record["probe"]["failed"] == 0, record

    # stored per release, the site's user's and nobody else's
    path = snapshot["path"]
    assert os.path.basename(path).endswith("-1.0.0-to-2.0.0"), path
    assert host.check_output("stat -c '%%U %%a' %s/snapshots" % SITE_DIR) == "root 711"
    assert host.check_output("stat -c '%%U %%G %%a' %s" % path) == "notes notes 700"
    assert host.check_output("stat -c '%%U %%G %%a' %s/shared/notes.db" % path) == "notes notes 600"
    assert host.run("runuser -u nobody -- cat %s/shared/notes.db" % path).rc != 0

    # taken before the hook's migration, consistent while 1.0.0 wrote, with the -wal's rows in it
    snap = facts(host, path + "/shared/notes.db")
    live = facts(host, DB)
    FACTS.update(snap=snap, live=live)
    assert snap["integrity"] == "ok" and snap["schema"] == 1 and "author" not in snap["columns"], snap
    assert live["schema"] == 2 and "author" in live["columns"], live
    assert FACTS["rows_before_load"] <= snap["rows"] < live["rows"], (snap, live)
    # every completed POST left a row (a request cut at wrk's stop may have left one more)
    written = live["rows"] - FACTS["rows_before_load"]
    assert load["requests"] <= written <= load["requests"] + 8, (load, written)


def test_a_rollback_without_data_says_who_wrote_it_and_how_to_restore(host, releases):
    rc, out = run_playbook({"onebox_sites": [releases["2.0.0"]], "onebox_rollback_sites": ["notes"]},
                           playbook="rollback.yml")
    said(out, "notes: data", "notes.service")
    # 1.0.0 does not know schema 2: it refuses to start, and notes returns to 2.0.0
    assert rc != 0, out[-3000:]
    assert "rolled back notes.service to 2.0.0, which is serving again" in out, out[-3000:]
    assert "notes: data not restored: shared/notes.db was last written by 2.0.0, the release rolled back" in out
    assert ("-e onebox_rollback_to=1.0.0 -e onebox_rollback_data=true" in out
            and FACTS["snapshot"]["name"] in out), out[-3000:]
    assert served(host)["version"] == "2.0.0"
    record = audit(host)[-1]
    assert (record["action"], record["outcome"]) == ("rollback", "rolled_back"), record
    assert record["data"]["restored"] is False and record["data"]["requested"] is False, record
    assert record["data"]["last_written_by"] == "2.0.0", record


def test_the_rollback_with_data_brings_code_schema_and_rows_back_and_keeps_what_was_written(host, releases):
    live = facts(host, DB)    # nothing writes now: what the files moved aside must hold
    start_paced_load(host, [NOTES])
    rc, out = run_playbook({"onebox_sites": [releases["2.0.0"]], "onebox_rollback_sites": ["notes"],
                            "onebox_rollback_data": True}, playbook="rollback.yml")
    load = paced_load_results(host, [NOTES])["notes"]
    said(out, "notes: data", "rolled back:")
    assert rc == 0, out[-3000:]
    record = audit(host)[-1]
    assert (record["action"], record["from_version"], record["to_version"], record["outcome"]) == (
        "rollback", "2.0.0", "1.0.0", "success"), record
    assert record["data"]["restored"] is True and record["data"]["snapshot"]["name"] == FACTS["snapshot"]["name"]
    aside = record["data"]["aside"]
    assert "notes: data restored from the snapshot %s" % FACTS["snapshot"]["path"] in out, out[-3000:]

    # the old release serves its schema with the snapshot's rows
    now = served(host)
    restored = facts(host, DB)
    moved = facts(host, aside + "/shared/notes.db")
    FACTS.update(restored=restored, moved=moved, rollback_load=load, swap_s=record["data"]["swap_seconds"])
    assert now["version"] == "1.0.0" and now["schema"] == 1, now
    assert restored["schema"] == 1 and "author" not in restored["columns"], restored
    assert restored["integrity"] == "ok"
    assert restored["rows"] == FACTS["snap"]["rows"] == now["rows"], (restored, FACTS["snap"], now)
    assert (restored["max_id"], restored["id_sum"]) == (FACTS["snap"]["max_id"], FACTS["snap"]["id_sum"])
    # the files moved aside: never deleted, every row, those written after the snapshot included
    assert host.check_output("stat -c '%%U %%a' %s" % aside) == "notes 700"
    assert moved["integrity"] == "ok" and moved["schema"] == 2, moved
    assert (moved["rows"], moved["max_id"], moved["id_sum"]) == (live["rows"], live["max_id"], live["id_sum"])
    after = sql(host, aside + "/shared/notes.db", "SELECT count(*) FROM notes WHERE id > %d" % FACTS["snap"]["max_id"])
    assert after[0][0] == live["rows"] - FACTS["snap"]["rows"] > 0
    # the hold kept requests waiting in the socket's backlog, none failed
    print("rollback with data under read load: %d requests, %d failed, max %.0f ms; swap %.2f s" % (
        load["requests"], load["failed"], load["max_ms"] or 0, FACTS["swap_s"]))
    assert load["requests"] > 100 and load["failed"] == 0, load
    assert host.run("ls /run/systemd/system/notes.service.d/").rc != 0   # the hold's drop-in is gone


def test_history_shows_what_happened_to_the_data(host, releases):
    rc, out = run_playbook({"onebox_sites": [releases["1.0.0"]], "onebox_history_site": "notes",
                            "onebox_history_limit": 4}, playbook="history.yml")
    assert rc == 0, out[-3000:]
    text = " ".join(out.split())        # the callback may wrap a long line
    expected = [
        "deploy notes (first deploy) -> 1.0.0: success", "no snapshot (shared/notes.db not created yet)",
        "deploy notes 1.0.0 -> 2.0.0: success", "snapshot %.1f MB in" % (FACTS["snapshot"]["bytes"] / 1e6),
        "rollback notes 2.0.0 -> 1.0.0: rolled_back", "data not restored (last written by 2.0.0)",
        "rollback notes 2.0.0 -> 1.0.0: success", "data restored from %s" % FACTS["snapshot"]["name"]]
    at = [text.find(part) for part in expected]
    print("\n".join(line for line in out.splitlines() if "notes" in line))
    assert -1 not in at and at == sorted(at), list(zip(expected, at))


def test_a_failed_deploy_rolls_the_code_back_not_the_data_and_says_what_ran_against_it(host, releases):
    """2.0.0 without its migration refuses schema 1: the deploy is rolled back to 1.0.0, the data is not."""
    rc, out = run_playbook({"onebox_sites": [releases["2.0.0"]]}, playbook="deploy.yml")
    said(out, "notes: data", "rolled back notes", "notes 1.0.0 (")
    assert rc != 0, out[-3000:]
    assert "rolled back notes.service to 1.0.0, which is serving again" in out, out[-3000:]
    text = " ".join(out.split())
    assert ("notes: data not restored: since its snapshot, 2.0.0 (it started, never answered a request) ran against "
            "shared/notes.db, which 1.0.0 now serves as they left it. To put back the snapshot taken before the deploy"
            in text), out[-3000:]
    assert "-e onebox_rollback_to=1.0.0 -e onebox_rollback_data=true" in text
    record = audit(host)[-1]
    assert record["outcome"] == "rolled_back" and record["data"]["restored"] is False, record
    assert record["data"]["new_release"] == "started, never answered a request", record
    assert record["data"]["before_roll_hooks"] == 0 and record["data"]["snapshot"]["bytes"] > 100e6, record
    assert served(host)["version"] == "1.0.0" and facts(host, DB)["rows"] == FACTS["restored"]["rows"]


def test_every_snapshot_and_every_file_moved_aside_passes_the_integrity_check(host):
    """Both snapshots before 2.0.0 (the migrating deploy's and the failed one's), and the files moved aside."""
    snapshots = host.check_output("ls %s/snapshots" % SITE_DIR).split()
    asides = host.check_output("ls %s/aside" % SITE_DIR).split()
    assert len(snapshots) == 2 and all(name.endswith("-1.0.0-to-2.0.0") for name in snapshots), snapshots
    assert len(asides) == 1 and asides[0].endswith("-written-by-2.0.0"), asides
    rows = []
    for path in (["%s/snapshots/%s/shared/notes.db" % (SITE_DIR, n) for n in snapshots]
                 + ["%s/aside/%s/shared/notes.db" % (SITE_DIR, n) for n in asides]):
        found = facts(host, path)
        rows.append(dict(file=path[len(SITE_DIR) + 1:], schema=found["schema"], rows=found["rows"],
                         integrity=found["integrity"]))
        assert found["integrity"] == "ok", (path, found)
    print_table("integrity_check of every snapshot and every file moved aside", rows, list(rows[0]))
    # the second snapshot holds what 1.0.0 served after the restore: the first one's rows and schema
    assert (rows[1]["schema"], rows[1]["rows"]) == (1, FACTS["restored"]["rows"]), rows


def test_a_snapshot_that_fails_stops_the_deploy_before_anything_changes(host, releases, tmp_path):
    """A second declared file that is no SQLite database: its backup fails after the first file's succeeded."""
    host.check_output("runuser -u notes -- sh -c 'echo not a database > %s/shared/junk.db'" % SITE_DIR)
    pid = host.check_output("systemctl show -p MainPID --value notes.service")
    before = host.check_output("ls -a %s/snapshots %s/releases; readlink %s/current" % (SITE_DIR, SITE_DIR, SITE_DIR))
    site = dict(releases["2.0.0"], version="3.0.0", artifact=release(tmp_path, "3.0.0", 2),
                data=["shared/notes.db", "shared/junk.db"])
    rc, out = run_playbook({"onebox_sites": [site]}, playbook="deploy.yml")
    text = " ".join(out.split())
    said(out, "snapshot before 3.0.0")
    assert rc != 0, out[-3000:]
    assert ("site notes: field 'data': the snapshot before 3.0.0 failed, so the deploy stops before anything changed: "
            "%s/shared/junk.db: the SQLite backup failed: file is not a database" % SITE_DIR) in text, out[-3000:]
    # no release unpacked, no snapshot (not even the first file's), the same process serves 1.0.0
    assert host.check_output("ls -a %s/snapshots %s/releases; readlink %s/current" % (
        SITE_DIR, SITE_DIR, SITE_DIR)) == before
    assert host.check_output("systemctl show -p MainPID --value notes.service") == pid
    assert served(host)["version"] == "1.0.0"
    host.check_output("rm %s/shared/junk.db" % SITE_DIR)


def test_the_restore_by_hand_of_the_docs_puts_the_snapshot_back(host):
    """docs/data.md, "Restoring by hand": its commands, as written, with the first snapshot's name."""
    with open(os.path.join(PROJECT, "docs", "data.md")) as handle:
        page = handle.read()
    block = page.split("## Restoring by hand", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    example = "20261207T014500Z-1.0.0-to-2.0.0"
    assert "snap=$site/snapshots/%s\n" % example in block, block
    for _ in range(5):
        host.check_output("curl -fsS -X POST --data after %s" % public_url(NOTES))
    assert served(host)["rows"] == FACTS["snap"]["rows"] + 5
    out = host.run("bash -c %s" % _quote(block.replace(example, FACTS["snapshot"]["name"])))
    print(out.stdout + out.stderr)
    now = served(host)
    assert (now["version"], now["schema"], now["rows"]) == ("1.0.0", 1, FACTS["snap"]["rows"]), now
    restored = facts(host, DB)
    assert restored["integrity"] == "ok" and restored["id_sum"] == FACTS["snap"]["id_sum"], restored
    assert host.check_output("stat -c '%%U %%G' %s" % DB) == "notes notes"
    by_hand = host.check_output("ls -d %s/aside/*-by-hand" % SITE_DIR)
    assert facts(host, by_hand + "/shared/notes.db")["rows"] == FACTS["snap"]["rows"] + 5


def test_overlap_is_refused_for_data_with_one_writer_and_purge_removes_the_site(host, releases):
    overlap = dict(releases["1.0.0"], strategy="overlap", health_listen="127.0.0.1:19201")
    rc, out = run_playbook({"onebox_sites": [overlap]}, playbook="site.yml")
    assert rc != 0
    assert ("site 'notes' (onebox_sites[0]): field 'strategy' overlap runs the old and the new release at once for a "
            "moment, so two processes would write shared/notes.db" in out), out[-3000:]
    assert "set data_writers: many if the app allows two writers" in out
    rc, out = run_playbook({"onebox_sites": [{"name": "notes", "state": "absent", "purge": True}]}, playbook="site.yml")
    assert rc == 0, out[-3000:]
    assert not host.file(SITE_DIR).exists


def test_data_summary(host):
    """The figures of the data tests above."""
    snap, live, restored, moved = FACTS["snap"], FACTS["live"], FACTS["restored"], FACTS["moved"]
    print_table("notes: a 100 MB SQLite database (WAL) through a migrating deploy and a rollback with data", [
        dict(what="snapshot before 2.0.0 (under POST load)", schema=snap["schema"], rows=snap["rows"],
             integrity=snap["integrity"], note="%.1f MB in %.3f s: %.3f s per 100 MB" % (
                 FACTS["snapshot"]["bytes"] / 1e6, FACTS["snapshot"]["files"][0]["seconds"], FACTS["per_100mb"])),
        dict(what="live after the deploy (2.0.0)", schema=live["schema"], rows=live["rows"], integrity=live["integrity"],
             note="wrk POST: %d requests, %d failed; probe %d/%d failed" % (
                 FACTS["load"]["requests"], FACTS["load"]["failed"], FACTS["probe"]["failed"], FACTS["probe"]["sent"])),
        dict(what="restored (1.0.0 serves it)", schema=restored["schema"], rows=restored["rows"],
             integrity=restored["integrity"], note="swap %.2f s; wrk GET: %d requests, %d failed" % (
                 FACTS["swap_s"], FACTS["rollback_load"]["requests"], FACTS["rollback_load"]["failed"])),
        dict(what="moved aside (what 2.0.0 wrote)", schema=moved["schema"], rows=moved["rows"],
             integrity=moved["integrity"], note="%d rows written after the snapshot" % (moved["rows"] - snap["rows"])),
    ], ["what", "schema", "rows", "integrity", "note"])
