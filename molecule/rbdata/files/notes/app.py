#!/usr/bin/env python3
"""notes: a small app that keeps its state in SQLite (WAL mode), for the data
tests of the Molecule scenario rbdata (tests/test_sqlite.py). Standard
library only.

  POST /          inserts a row (the body), answers 201 {"id": ...}
  GET /           {"version", "schema", "rows", "pid"}
  /livez /readyz  health, on the public socket (systemd's fd 3)

The database is $NOTES_DB. Each release knows one schema, the number in the
file SCHEMA next to this one: 1 is notes(id, body), 2 adds notes.author. At
start-up a release creates schema 1 in an empty database, and refuses to run
(exit 3) on any other schema than its own, as an app that cannot read a
schema it does not know would; the before_roll hook of a deploy migrates.
On SIGTERM it drains: /readyz answers 503, each connection is closed after
its next answer, and the process exits once no request is in flight.
"""

import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASE = os.path.basename(HERE)
DB = os.environ["NOTES_DB"]
with open(os.path.join(HERE, "SCHEMA")) as handle:
    SCHEMA = int(handle.read().strip())
WARMUP = float(os.environ.get("NOTES_WARMUP", "0.3"))
STATE = {"ready": False, "draining": False, "active": 0}
LOCK = threading.Lock()
LOCAL = threading.local()


def log(msg):
    sys.stdout.write("notes %s: %s\n" % (RELEASE, msg))
    sys.stdout.flush()


def connect():
    conn = sqlite3.connect(DB, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def check_schema():
    conn = connect()
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found == 0 and SCHEMA == 1:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        conn.execute("PRAGMA user_version=1")
        found = 1
    conn.close()
    if found != SCHEMA:
        log("the database has schema %d, this release knows schema %d only; refusing to start" % (found, SCHEMA))
        sys.exit(3)


def db():
    if getattr(LOCAL, "conn", None) is None:
        LOCAL.conn = connect()
    return LOCAL.conn


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2   # an idle keep-alive connection is closed after this

    def log_message(self, *args):
        pass

    def setup(self):
        with LOCK:
            STATE["active"] += 1
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            with LOCK:
                STATE["active"] -= 1

    def answer(self, status, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if STATE["draining"]:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/livez":
            return self.answer(200, b"ok\n")
        if self.path == "/readyz":
            ok = STATE["ready"] and not STATE["draining"]
            return self.answer(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
        rows = db().execute("SELECT count(*) FROM notes").fetchone()[0]
        self.answer(200, {"version": RELEASE, "schema": SCHEMA, "rows": rows, "pid": os.getpid(),
                          "site": os.environ.get("ONEBOX_SITE")})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace") or "note"
        if SCHEMA == 1:
            cur = db().execute("INSERT INTO notes (body) VALUES (?)", (body,))
        else:
            cur = db().execute("INSERT INTO notes (body, author) VALUES (?, ?)", (body, RELEASE))
        self.answer(201, {"id": cur.lastrowid})


def main():
    check_schema()
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
        sock = socket.socket(fileno=3)
    else:
        sock = socket.create_server(("127.0.0.1", int(os.environ.get("PORT", "8080"))))
    time.sleep(WARMUP)
    server = ThreadingHTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket = sock
    server.daemon_threads = True

    def drain(_signum, _frame):
        STATE["draining"] = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, drain)
    STATE["ready"] = True
    log("serving schema %d from %s" % (SCHEMA, DB))
    server.serve_forever(poll_interval=0.05)
    deadline = time.monotonic() + 5
    while STATE["active"] and time.monotonic() < deadline:
        time.sleep(0.01)
    log("drained")


if __name__ == "__main__":
    main()
