# A WSGI app (standard library only) for Debian's gunicorn 20.1 run plainly,
# as a user would: no config file, no preload, no health port of its own
# (/livez and /readyz answer on the public socket, once a worker serves):
#   /usr/bin/gunicorn --workers 2 --graceful-timeout 10 app:app
# Each worker imports this module and warms up (APP_WARMUP seconds) before it
# serves. A release can carry a fault, named in a file FAULT next to this one:
#   exit-at-import   every worker exits at import; the master lives on and
#                    forks new ones for ever (systemd sees an active unit)
#   raise-at-import  every worker raises at import; the master exits (3)
#   slow-start       a warm-up of 20 s (longer than the site's ready timeout)
#   slower           a warm-up of 3 s: slower than usual, and healthy
#   never-ready      /readyz answers 503
#   hang-on-stop     never-ready, and a worker that is stopped hangs in its
#                    clean-up once it finished its requests: gunicorn kills it
#                    after its graceful timeout
import atexit
import json
import os
import sys
import time

RELEASE = os.path.basename(os.getcwd())   # WorkingDirectory= is the release behind current
try:
    with open("FAULT") as handle:
        FAULT = handle.read().strip()
except OSError:
    FAULT = ""
if FAULT == "exit-at-import":
    sys.exit(1)
if FAULT == "raise-at-import":
    raise RuntimeError("release %s is broken" % RELEASE)
if FAULT == "hang-on-stop":
    atexit.register(time.sleep, 3600)
time.sleep({"slow-start": 20.0, "slower": 3.0}.get(FAULT, float(os.environ.get("APP_WARMUP", "0.8"))))


def app(environ, start_response):
    ready = FAULT not in ("never-ready", "hang-on-stop")
    if environ["PATH_INFO"] == "/readyz" and not ready:
        status, body = "503 Service Unavailable", b"not ready\n"
    else:
        status = "200 OK"
        body = json.dumps({"site": os.environ.get("ONEBOX_SITE"), "version": RELEASE, "pid": os.getpid(),
                           "server": "gunicorn"}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
