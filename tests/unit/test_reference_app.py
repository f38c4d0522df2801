"""Tests for the reference app (files/reference-app/bin/onebox-app).

Every test runs the real app as a subprocess on free loopback ports.
"""

import http.client
import importlib.machinery
import importlib.util
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "files" / "reference-app" / "bin" / "onebox-app"
# interpreter that runs the app (override to check e.g. Python 3.9 compatibility)
PY = os.environ.get("ONEBOX_APP_PYTHON", sys.executable)

# dup2 the passed listening socket onto fd 3 and exec the app with the
# systemd socket-activation variables, exactly like systemd would.
SHIM = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.environ['LISTEN_FDS'] = '1'\n"
    "os.environ['LISTEN_FDNAMES'] = 'http'\n"
    "os.execv(sys.executable, [sys.executable] + sys.argv[2:])\n"
)


# --------------------------------------------------------------------------
# helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def get(port, path, timeout=5.0):
    """One request on a fresh connection: (status, headers, body) or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (ConnectionError, OSError):
        return None
    finally:
        conn.close()


def status(port, path, timeout=2.0):
    r = get(port, path, timeout=timeout)
    return r[0] if r else None


def raw_request(sock, path, timeout=5.0):
    """Send GET on a raw socket and read one response: (status, headers, body)."""
    sock.settimeout(timeout)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
    return read_response(sock)


def read_response(sock):
    """Read one HTTP response from a raw socket: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response head: %r" % buf)
        buf += chunk
    head, _sep, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    code = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _sep, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    return code, headers, rest[:length]


def is_closed(sock, timeout):
    """True if the peer closes the connection within timeout."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


class App:
    def __init__(self, proc, logfile, port, health_port):
        self.proc = proc
        self.logfile = logfile
        self.port = port
        self.health_port = health_port

    def log(self):
        return self.logfile.read_text()

    def wait_live(self, timeout=5.0):
        wait_for(lambda: status(self.health_port, "/livez") == 200 or self._dead(),
                 timeout, what="/livez")
        assert self.proc.poll() is None, self.log()

    def _dead(self):
        return self.proc.poll() is not None

    def wait_draining(self, timeout=5.0):
        """Poll the health port until /readyz answers 503 after SIGTERM."""
        try:
            wait_for(lambda: status(self.health_port, "/readyz") == 503,
                     timeout, what="/readyz 503 while draining")
        except AssertionError:
            raise AssertionError("not seen draining (rc=%r); log:\n%s"
                                 % (self.proc.poll(), self.log()))

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=5.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("app did not exit; log:\n" + self.log())


@pytest.fixture
def start_app(tmp_path):
    apps = []

    def start(*args, port=None, health_port=None, env=None, inherit=None,
              listen_flag=True):
        port = port or free_port()
        logfile = tmp_path / ("app%d.log" % len(apps))
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("LISTEN_", "ONEBOX_", "APP_"))
                    and k != "NOTIFY_SOCKET"}
        full_env.update(env or {})
        argv = [str(APP)]
        if listen_flag:
            argv += ["--listen", "127.0.0.1:%d" % port]
        if health_port:
            argv += ["--health-listen", "127.0.0.1:%d" % health_port]
        argv += list(args)
        out = open(logfile, "w")
        if inherit is not None:
            cmd = [PY, "-c", SHIM, str(inherit.fileno()), str(APP)] + argv[1:]
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    env=full_env, pass_fds=(inherit.fileno(),))
        else:
            proc = subprocess.Popen([PY] + argv, stdout=out,
                                    stderr=subprocess.STDOUT, env=full_env)
        out.close()
        app = App(proc, logfile, port, health_port or port)
        apps.append(app)
        return app

    yield start
    for app in apps:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait(5)


def in_thread(fn, *args):
    result = {}

    def run():
        try:
            result["value"] = fn(*args)
        except Exception as exc:  # reported by the test
            result["error"] = exc
        result["t"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


# --------------------------------------------------------------------------
# pure functions

def load_module():
    loader = importlib.machinery.SourceFileLoader("onebox_app", str(APP))
    spec = importlib.util.spec_from_loader("onebox_app", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_app_file_is_executable_with_shebang():
    assert os.access(APP, os.X_OK)
    assert APP.read_text().startswith("#!/usr/bin/env python3\n")


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("[::1]:9000", ("::1", 9000)),
    ("8081", ("", 8081)),
    (":8082", ("", 8082)),
    ("localhost:80", ("localhost", 80)),
])
def test_parse_listen(text, expected):
    assert load_module().parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "::1:80", "[::1]80", "host:", "host:99999"])
def test_parse_listen_rejects(text):
    with pytest.raises(ValueError):
        load_module().parse_listen(text)


# --------------------------------------------------------------------------
# lifecycle

def test_warmup_shared_socket(start_app):
    app = start_app("--warmup", "0.8", "--name", "blog", "--version-label", "v7")
    app.wait_live()
    t_live = time.monotonic()
    assert status(app.port, "/readyz") == 503
    # a public request made during warm-up is held, then served
    t, res = in_thread(get, app.port, "/")
    wait_for(lambda: status(app.port, "/readyz") == 200, what="/readyz 200")
    t_ready = time.monotonic()
    t.join(5)
    code, headers, body = res["value"]
    assert code == 200
    assert res["t"] >= t_live + 0.2, "public request answered during warm-up"
    assert b'"site":"blog"' in body and b'"version":"v7"' in body
    assert ('"pid":%d' % app.proc.pid).encode() in body
    assert int(headers["content-length"]) == len(body)
    assert t_ready - t_live < 3
    assert "ready after" in app.log()


def test_separate_health_does_not_accept_public_during_warmup(start_app):
    health = free_port()
    app = start_app("--warmup", "1.0", health_port=health)
    app.wait_live()
    assert status(health, "/readyz") == 503
    assert status(health, "/") == 404  # only health paths on the health port
    public = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    with public:
        public.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        answered_early = select.select([public], [], [], 0.2)[0]
        # readiness is monotonic during warm-up: if it is still 503 now, the
        # whole select() window was inside warm-up
        assert status(health, "/readyz") == 503, "warm-up ended too early for test"
        assert not answered_early, "public socket accepted during warm-up"
        public.settimeout(5)
        code, _headers, body = read_response(public)  # answered after warm-up
        assert code == 200 and b'"site"' in body
        assert status(health, "/readyz") == 200
    assert status(app.port, "/") == 200
    assert status(app.port, "/readyz") == 200  # health also on public socket


def test_socket_inheritance(start_app):
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    port = lst.getsockname()[1]
    with lst:
        # the test keeps its listening socket open (like systemd does), so a
        # bind() by the app would fail with EADDRINUSE: serving proves inheritance
        app = start_app("--warmup", "0.2", port=port, inherit=lst,
                        health_port=free_port())
        app.wait_live()
        wait_for(lambda: status(port, "/") == 200, what="public 200")
        assert "inherited socket fd 3 (http) for 127.0.0.1:%d" % port in app.log()

        # connections queued during drain stay in the backlog for the next
        # process: the app must not accept them
        busy = socket.create_connection(("127.0.0.1", port), timeout=5)
        t, res = in_thread(raw_request, busy, "/sleep?ms=500")
        time.sleep(0.1)
        app.signal()
        app.wait_draining()
        time.sleep(0.05)
        queued = socket.create_connection(("127.0.0.1", port), timeout=5)
        queued.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert app.wait_exit() == 0
        t.join(5)
        assert res["value"][0] == 200
        lst.settimeout(2)
        accepted, _addr = lst.accept()  # still waiting in the kernel backlog
        with accepted, queued, busy:
            accepted.settimeout(2)
            assert accepted.recv(100).startswith(b"GET / HTTP/1.1")


@pytest.mark.parametrize("abstract", [True, False], ids=["abstract", "path"])
def test_notify_ready_and_stopping(start_app, tmp_path, abstract):
    if abstract:
        name = "@onebox-test-%s" % uuid.uuid4().hex
        bind_addr = "\0" + name[1:]
    else:
        name = bind_addr = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind(bind_addr)
        ns.settimeout(5)
        app = start_app("--warmup", "0.3", env={"NOTIFY_SOCKET": name})
        msg = ns.recv(4096).decode()
        assert "READY=1" in msg.split("\n")
        # ready before READY=1; the request may wait for a loaded machine (make test runs the unit tests
        # beside the Molecule scenarios: 2 s once timed out), the answer may not
        assert status(app.port, "/readyz", timeout=15.0) == 200
        app.signal()
        assert "STOPPING=1" in ns.recv(4096).decode().split("\n")
        assert app.wait_exit() == 0


def test_sigterm_drains_inflight_request(start_app):
    health = free_port()
    app = start_app("--warmup", "0.2", "--drain-timeout", "5", health_port=health)
    app.wait_live()
    wait_for(lambda: status(health, "/readyz") == 200, what="ready")
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    t, res = in_thread(raw_request, sock, "/sleep?ms=500")
    time.sleep(0.1)  # request is in flight
    t_term = time.monotonic()
    app.signal()
    app.wait_draining()
    assert status(health, "/livez") == 200
    assert app.proc.poll() is None  # still finishing the request
    t.join(5)
    assert "error" not in res, res
    code, headers, body = res["value"]
    assert code == 200 and body.startswith(b"slept 500")
    assert headers["connection"] == "close"
    assert is_closed(sock, 2)
    sock.close()
    assert app.wait_exit() == 0
    assert time.monotonic() - t_term < 3
    log = app.log()
    assert "draining: 1 open connections" in log
    assert "drained in" in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_idle_keepalive_closed_on_drain(start_app, sig):
    app = start_app("--warmup", "0.2", "--idle-grace", "0.2")
    app.wait_live()
    wait_for(lambda: status(app.port, "/readyz") == 200, what="ready")
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    with sock:
        code, headers, _body = raw_request(sock, "/")
        assert code == 200 and headers["connection"] == "keep-alive"
        t0 = time.monotonic()
        app.signal(sig)
        assert is_closed(sock, 3), "idle keep-alive connection not closed"
        assert time.monotonic() - t0 < 2
    assert app.wait_exit() == 0


def test_idle_connection_request_within_grace_is_served(start_app):
    health = free_port()
    app = start_app("--warmup", "0.2", "--idle-grace", "1.5", health_port=health)
    app.wait_live()
    wait_for(lambda: status(health, "/readyz") == 200, what="ready")
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    with sock:
        assert raw_request(sock, "/")[0] == 200
        app.signal()
        app.wait_draining()
        code, headers, _body = raw_request(sock, "/")
        assert code == 200 and headers["connection"] == "close"
        assert is_closed(sock, 2)
    assert app.wait_exit() == 0


def test_idle_keepalive_is_closed_only_after_the_idle_grace_while_a_request_runs(start_app):
    """Drain order: an idle keep-alive connection stays open for the idle grace (not closed the instant
    SIGTERM arrives), then is closed; an in-flight request still finishes, with Connection: close."""
    health = free_port()
    app = start_app("--warmup", "0.2", "--idle-grace", "1.0", "--drain-timeout", "5", health_port=health)
    app.wait_live()
    wait_for(lambda: status(health, "/readyz") == 200, what="ready")
    idle = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    busy = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    with idle, busy:
        assert raw_request(idle, "/")[1]["connection"] == "keep-alive"
        t, res = in_thread(raw_request, busy, "/sleep?ms=2500")
        time.sleep(0.1)  # the request is in flight
        t0 = time.monotonic()
        app.signal()
        app.wait_draining()
        assert not is_closed(idle, 0.5), "idle connection closed before the idle grace"
        assert is_closed(idle, 2), "idle connection not closed after the idle grace"
        closed_after = time.monotonic() - t0
        assert 0.9 <= closed_after < 2.0, closed_after
        assert app.proc.poll() is None  # still serving the request in flight
        t.join(5)
        code, headers, _body = res["value"]
        assert code == 200 and headers["connection"] == "close"
    assert app.wait_exit() == 0


def test_drain_timeout_cuts_connections(start_app):
    app = start_app("--warmup", "0.2", "--drain-timeout", "0.3")
    app.wait_live()
    wait_for(lambda: status(app.port, "/readyz") == 200, what="ready")
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    with sock:
        sock.sendall(b"GET /sleep?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        app.signal()
        assert app.wait_exit() == 0
        assert time.monotonic() - t0 < 4  # cut at the 0.3 s drain timeout, not after the 5 s request
    assert "cutting 1 connections" in app.log()


def test_crash_on_start(start_app):
    app = start_app("--crash-on-start")
    assert app.wait_exit() == 3


def test_crash_on_start_env(start_app):
    app = start_app(env={"APP_CRASH_ON_START": "1"})
    assert app.wait_exit() != 0


def test_never_ready(start_app, tmp_path):
    name = "@onebox-test-%s" % uuid.uuid4().hex
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind("\0" + name[1:])
        app = start_app(env={"APP_NEVER_READY": "1", "APP_WARMUP_SECONDS": "0.2",
                             "NOTIFY_SOCKET": name})
        app.wait_live()
        # public traffic is served once warm-up is over ...
        wait_for(lambda: status(app.port, "/") == 200, what="public 200")
        # ... but the app never reports ready
        assert status(app.port, "/readyz") == 503
        assert status(app.port, "/livez") == 200
        ns.settimeout(0.3)
        with pytest.raises(socket.timeout):
            ns.recv(4096)
        assert status(app.port, "/readyz") == 503
        app.signal()
        assert app.wait_exit() == 0


def test_env_configuration(start_app):
    port, health = free_port(), free_port()
    app = start_app(port=port, listen_flag=False, env={
        "ONEBOX_LISTEN": "127.0.0.1:%d" % port,
        "ONEBOX_HEALTH_LISTEN": "127.0.0.1:%d" % health,
        "APP_WARMUP_SECONDS": "0.1", "ONEBOX_SITE": "shop",
        "ONEBOX_VERSION": "2024.1"})
    wait_for(lambda: status(health, "/readyz") == 200, what="ready")
    code, _headers, body = get(port, "/")
    assert code == 200 and b'"site":"shop"' in body and b'"version":"2024.1"' in body
    assert "onebox-app[shop]: ready after" in app.log()
    app.signal()
    assert app.wait_exit() == 0
