"""One `make bench` pass: fixed-duration paced load on one URL, plus a sampler.

Runs on the systemd host (inside the bench container), next to
restart_under_load.py (it imports its wrk parser and readiness wait).

  bench_load.py wait --ready-url URL [--traefik-service NAME]
      waits until URL answered 200 twice in a row and, with --traefik-service,
      until Traefik's API lists that service's server as UP;
  bench_load.py run --url URL [--host HOST] --duration S ...
      runs for exactly --duration seconds, side by side:
        * `wrk` (the independent load generator, source of the counts and the
          latency percentiles): 1 thread, --connections keep-alive
          connections, each pausing --pace-ms between requests (wrk Lua
          `delay()`), --timeout 10s;
        * a sampler (standard library): --sampler-connections threads, each
          sending one GET, recording (start time, latency, outcome), pausing
          --sampler-pace-ms, and so on. wrk reports only totals; the sampler
          gives the per-request timeline for the plot. Outcomes: the HTTP
          status, or refused / reset / timeout / other:<exception>.
      Prints one JSON document: start time (Unix seconds), wrk's numbers and
      output, and the samples as [seconds since start, latency ms, outcome].

Standard library only (the target has python3 and wrk, nothing else).
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from restart_under_load import parse_wrk, ready  # noqa: E402


def wait(args):
    if not ready(args.ready_url, 2, time.monotonic() + args.timeout):
        sys.exit("%s did not answer 200 within %ss" % (args.ready_url, args.timeout))
    if not args.traefik_service:
        return
    url = "%s/api/http/services/%s" % (args.traefik_api.rstrip("/"), args.traefik_service)
    deadline = time.monotonic() + args.timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                seen = json.load(resp).get("serverStatus", {})
            if seen and set(seen.values()) == {"UP"}:
                return
        except Exception as exc:  # noqa: BLE001 - not loaded yet
            seen = repr(exc)
        time.sleep(0.1)
    sys.exit("Traefik service %s not UP within %ss: %s" % (args.traefik_service, args.timeout, seen))


def outcome_of(exc):
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine,
                        http.client.IncompleteRead)):
        return "reset"
    return "other:" + type(exc).__name__


def sample(url, host, pace, timeout, t_start, stop_at, out):
    parts = urlsplit(url)
    path = parts.path or "/"
    headers = {"Host": host} if host else {}
    conn = None
    while time.time() < stop_at:
        began = time.time()
        clock = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            outcome = str(resp.status)
            if resp.will_close:
                conn.close()
                conn = None
        except Exception as exc:  # noqa: BLE001 - every failure is a data point
            outcome = outcome_of(exc)
            if conn is not None:
                conn.close()
            conn = None
        out.append([round(began - t_start, 4), round((time.monotonic() - clock) * 1000.0, 2), outcome])
        time.sleep(pace)
    if conn is not None:
        conn.close()


def run(args):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write("function delay()\n  return %d\nend\n" % args.pace_ms)
    lua.close()
    cmd = ["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.duration, "--timeout", "10s",
           "--latency", "-s", lua.name]
    if args.host:
        cmd += ["-H", "Host: " + args.host]
    cmd.append(args.url)
    t_start = time.time()
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop_at = t_start + args.duration
    samples = [[] for _ in range(args.sampler_connections)]
    threads = [threading.Thread(target=sample, args=(args.url, args.host, args.sampler_pace_ms / 1000.0,
                                                     10.0, t_start, stop_at, samples[i]))
               for i in range(args.sampler_connections)]
    for thread in threads:
        thread.start()
    out, _err = wrk.communicate(timeout=args.duration + 60)
    for thread in threads:
        thread.join()
    os.unlink(lua.name)
    merged = sorted(s for part in samples for s in part)
    json.dump({"t_start": t_start, "t_end": time.time(), "duration": args.duration, "url": args.url,
               "host": args.host, "connections": args.connections, "pace_ms": args.pace_ms,
               "wrk": parse_wrk(out), "wrk_rc": wrk.returncode, "wrk_output": out,
               "sampler": {"connections": args.sampler_connections, "pace_ms": args.sampler_pace_ms,
                           "samples": merged}}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_wait = sub.add_parser("wait", help="wait for readiness (and Traefik's health check)")
    p_wait.add_argument("--ready-url", required=True)
    p_wait.add_argument("--traefik-service", help="e.g. onebox-blog@file")
    p_wait.add_argument("--traefik-api", default="http://127.0.0.1:8080")
    p_wait.add_argument("--timeout", type=float, default=60)
    p_run = sub.add_parser("run", help="fixed-duration wrk load plus the sampler; prints JSON")
    p_run.add_argument("--url", required=True)
    p_run.add_argument("--host", default="", help="Host header (routing through Traefik)")
    p_run.add_argument("--duration", type=int, default=25)
    p_run.add_argument("--connections", type=int, default=4, help="wrk connections")
    p_run.add_argument("--pace-ms", type=int, default=5, help="pause of each wrk connection between requests")
    p_run.add_argument("--sampler-connections", type=int, default=2)
    p_run.add_argument("--sampler-pace-ms", type=int, default=10)
    args = parser.parse_args()
    if args.cmd == "wait":
        wait(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
