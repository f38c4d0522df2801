"""Restart sites under load from wrk and count what the clients saw.

Runs on the systemd host (inside the test container): one independent `wrk`
process per site keeps sending requests to the site's public URL while every
site is restarted N times with `systemctl restart`, each restart followed by a
readiness wait. Prints one JSON document with, per site, the requests wrk sent,
its socket errors and non-2xx/3xx answers, latency percentiles, and whether the
socket stayed active through every restart.

Standard library only (the target has python3 and wrk, nothing else).
"""

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(match.group(1)) * UNIT[match.group(2)] if match else None


def parse_wrk(out):
    res = {"requests": 0, "connect_errors": 0, "read_errors": 0, "write_errors": 0,
           "timeouts": 0, "non_2xx_3xx": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    match = re.search(r"(\d+) requests in", out)
    if match:
        res["requests"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        res.update(connect_errors=int(match.group(1)), read_errors=int(match.group(2)),
                   write_errors=int(match.group(3)), timeouts=int(match.group(4)))
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match:
        res["non_2xx_3xx"] = int(match.group(1))
    match = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if match:
        res["max_ms"] = to_ms(match.group(3))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        if match:
            res[key] = to_ms(match.group(1))
    res["failed"] = (res["connect_errors"] + res["read_errors"] + res["write_errors"]
                     + res["timeouts"] + res["non_2xx_3xx"])
    return res


def ready(url, passes, deadline):
    seen = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                seen = seen + 1 if resp.status == 200 else 0
        except Exception:  # noqa: BLE001 - any failure resets the count
            seen = 0
        if seen >= passes:
            return True
        time.sleep(0.05)
    return False


def unit_state(unit):
    out = subprocess.run(["systemctl", "show", "-p", "ActiveState", "--value", unit],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip()


def most_within(began_s, seconds):
    """The most starts of *began_s* that fall into one window of *seconds*."""
    return max([sum(1 for b in began_s if a <= b < a + seconds) for a in began_s] or [0])


def roll_site(site, restarts, timeout, report, limit=None, max_restarts=0):
    """Restart *site* *restarts* times, each gated on readiness; with *limit*
    ``(burst, seconds)``, go on (up to *max_restarts*) until more than burst
    starts fell into one window of that many seconds: past a start limit of
    those values, however slow each restart is on a loaded machine."""
    socket_states = set()
    durations = []
    began_s = []
    began = time.monotonic()
    while len(began_s) < restarts or (limit and len(began_s) < max_restarts
                                      and most_within(began_s, limit[1]) <= limit[0]):
        start = time.monotonic()
        began_s.append(round(start - began, 2))
        proc = subprocess.run(["systemctl", "restart", site["unit"]], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            report["errors"].append("%s: systemctl restart rc=%d %s" % (
                site["name"], proc.returncode, proc.stderr.strip()))
            break
        socket_states.add(unit_state(site["socket"]))
        if not ready(site["readiness"], 2, time.monotonic() + timeout):
            report["errors"].append("%s: not ready within %ss" % (site["name"], timeout))
            break
        socket_states.add(unit_state(site["socket"]))
        durations.append(time.monotonic() - start)
    report["restarts"] = len(durations)
    report["restart_window_s"] = round(time.monotonic() - began, 2)
    report["began_s"] = began_s[:len(durations)]
    report["max_restart_s"] = round(max(durations), 3) if durations else None
    report["socket_states"] = sorted(socket_states)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True,
                        help="NAME,PUBLIC_URL,READINESS_URL (repeat per site)")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per site")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of load before and after")
    parser.add_argument("--timeout", type=float, default=30, help="readiness timeout per restart")
    parser.add_argument("--past-start-limit", metavar="BURST/SECONDS",
                        help="after --restarts, keep restarting each site until more than BURST of its starts "
                             "fell within SECONDS (at most --max-restarts in all)")
    parser.add_argument("--max-restarts", type=int, default=40)
    args = parser.parse_args()

    sites = []
    for spec in args.site:
        name, url, readiness = spec.split(",")
        sites.append({"name": name, "url": url, "readiness": readiness,
                      "unit": name + ".service", "socket": name + ".socket"})

    wrks = {}
    for site in sites:
        wrks[site["name"]] = subprocess.Popen(
            ["wrk", "-t1", "-c%d" % args.connections, "-d600s", "--timeout", "10s", "--latency",
             site["url"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(args.settle)

    reports = {site["name"]: {"errors": []} for site in sites}
    limit = None
    if args.past_start_limit:
        burst, seconds = args.past_start_limit.split("/")
        limit = (int(burst), float(seconds))
    threads = [threading.Thread(target=roll_site, args=(site, args.restarts, args.timeout,
                                                        reports[site["name"]], limit, args.max_restarts))
               for site in sites]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(args.settle)

    for site in sites:
        proc = wrks[site["name"]]
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
        reports[site["name"]].update(parse_wrk(out))
        reports[site["name"]]["wrk_output"] = out
    total = {key: sum(r[key] for r in reports.values())
             for key in ("requests", "failed", "connect_errors", "read_errors",
                         "write_errors", "timeouts", "non_2xx_3xx", "restarts")}
    json.dump({"sites": reports, "total": total}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
