# onebox.deploy app for gunicorn, deployed by the Molecule scenario `apps` and
# shown in docs/recipes.md: a WSGI app (standard library only) under Debian's
# gunicorn 20.1 (package `gunicorn`) with sync workers. The release directory
# runs it as
#   /usr/bin/gunicorn --workers 2 -c gunicorn.conf.py app:app
# gunicorn.conf.py preloads this module in the master, before the workers fork:
# the health port (a thread of the master) is bound first, then the warm-up
# runs. gunicorn takes the socket from systemd itself (LISTEN_FDS and LISTEN_PID):
# no --bind.
import json
import mmap
import os
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARBITER = []                  # the master's gunicorn arbiter, from when_ready() (gunicorn.conf.py)
DRAINING = threading.Event()  # set in the master when it begins to stop
# A worker's pid once it serves (post_worker_init, after its SIGTERM handler is
# set), in a slot for its age: memory the master shares with the workers it forks.
SERVING = mmap.mmap(-1, 4 * 256)
STATUS = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


def serving(worker):
    return struct.unpack_from("i", SERVING, 4 * (worker.age % 256))[0] == worker.pid


def ready():
    """In the master: it has the socket, every worker serves, and it is not stopping. A worker
    still booting would lose a SIGTERM sent now and serve on until graceful_timeout's SIGKILL."""
    if not ARBITER or DRAINING.is_set():
        return False
    try:
        workers = list(ARBITER[0].WORKERS.values())
    except RuntimeError:  # the master changed the dict meanwhile
        return False
    return len(workers) >= ARBITER[0].num_workers and all(map(serving, workers))


def health(path, is_ready):
    """/livez: 200 while alive, warm-up and drain included; /readyz: 200 only while serving."""
    if path == "/livez":
        return 200
    if path == "/readyz":
        return 200 if is_ready else 503
    return None


class HealthPort(BaseHTTPRequestHandler):
    def do_GET(self):
        code = health(self.path, ready()) or 404
        text = b"ok\n" if code == 200 else b"not ready\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass  # no journal line per health check


# The health port first, so that the deploy can watch the warm-up (host:port,
# [v6]:port or a bare port). Without a port of its own, the public socket
# answers /livez and /readyz.
health_port = None
addr = os.environ.get("ONEBOX_HEALTH_LISTEN", "")
if addr and addr != os.environ.get("ONEBOX_LISTEN"):
    host, _, port = addr.rpartition(":")

    class HealthServer(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    health_port = HealthServer((host.strip("[]"), int(port)), HealthPort)
    threading.Thread(target=health_port.serve_forever, daemon=True).start()

# Warm-up, before gunicorn takes the socket and forks the workers: meanwhile
# connections wait in the socket's backlog (strategy restart) or go to the old
# instance (overlap).
time.sleep(float(os.environ.get("APP_WARMUP", "0.8")))


def app(environ, start_response):
    code = health(environ["PATH_INFO"], True)  # a worker that answers serves
    if code is None:
        body = json.dumps({"site": os.environ.get("ONEBOX_SITE"), "version": os.environ.get("ONEBOX_VERSION"),
                           "pid": os.getpid(), "server": "gunicorn"}).encode()
    else:
        body = b"ok\n" if code == 200 else b"not ready\n"
    start_response(STATUS[code or 200], [("Content-Type", "application/json" if code is None else "text/plain"),
                                         ("Content-Length", str(len(body)))])
    return [body]
