"""Restart sites under load from wrk and count what the clients saw.

Runs on the systemd host (inside the test container): one independent `wrk`
process per site keeps sending requests to the site's public URL while every
site is restarted N times with `systemctl restart`, each restart followed by a
readiness wait. wrk is stopped only once every site is ready again and a
settle time has passed, so that requests still waiting in a socket's backlog
get their answer (or their error) counted. Prints one JSON document with, per
site, the restarts asked and done, the requests wrk sent, its socket errors and
non-2xx/3xx answers, latency percentiles, whether the socket stayed active
through every restart, systemd's automatic restarts and the journal lines of
the site's units that mean a start or stop went wrong; and `problems`: every
reason the run is not a clean one (empty when it is).

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
    those values, however slow each restart is on a loaded machine. The first
    restart that fails or does not come ready ends the site's loop (an error)."""
    socket_states = set()
    durations = []
    began_s = []
    began = time.monotonic()
    report["asked"] = restarts
    while len(began_s) < restarts or (limit and len(began_s) < max_restarts
                                      and most_within(began_s, limit[1]) <= limit[0]):
        start = time.monotonic()
        began_s.append(round(start - began, 2))
        proc = subprocess.run(["systemctl", "restart", site["unit"]], capture_output=True,
                              text=True, check=False)
        took = time.monotonic() - start
        if proc.returncode != 0:
            report["errors"].append("%s: restart %d: systemctl restart rc=%d after %.1fs: %s" % (
                site["name"], len(began_s), proc.returncode, took, " ".join(proc.stderr.split())))
            break
        socket_states.add(unit_state(site["socket"]))
        if not ready(site["readiness"], 2, time.monotonic() + timeout):
            report["errors"].append("%s: restart %d: not ready within %ss after systemctl restart "
                                    "returned (it took %.1fs)" % (site["name"], len(began_s), timeout, took))
            break
        socket_states.add(unit_state(site["socket"]))
        durations.append(time.monotonic() - start)
    report["restarts"] = len(durations)
    report["restart_window_s"] = round(time.monotonic() - began, 2)
    report["began_s"] = began_s[:len(durations)]
    report["restart_s"] = [round(d, 3) for d in durations]
    report["max_restart_s"] = round(max(durations), 3) if durations else None
    report["socket_states"] = sorted(socket_states)


# Journal lines of a site's units that mean a start or stop went wrong: systemd's
# own (a start or stop that timed out or failed, an automatic restart, a process
# killed, a socket that failed) and the reference app's (a lost sd_notify, a
# failed accept or bind, a drain cut short, an uncaught exception).
JOURNAL_TROUBLE = re.compile(
    r"timed out|Failed with result|Failed to start|Main process exited|Scheduled restart job"
    r"|Killing process|start-limit|Trigger limit|Failed to queue|Failed to listen|refusing"
    r"|sd_notify\(.*failed|accept failed|cannot (bind|open)|drain timeout|connection error"
    r"|configuration error|Traceback|Error")


def journal_trouble(units, since):
    """The journal lines of *units* since the epoch time *since* that match JOURNAL_TROUBLE."""
    args = ["journalctl", "--no-pager", "-q", "-o", "short-precise", "--since", "@%.3f" % since]
    for unit in units:
        args += ["-u", unit]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if JOURNAL_TROUBLE.search(line)]


def n_restarts(unit):
    """systemd's count of the automatic restarts (Restart=) of *unit*."""
    value = subprocess.run(["systemctl", "show", "-p", "NRestarts", "--value", unit],
                           capture_output=True, text=True, check=False).stdout.strip()
    return int(value) if value.isdigit() else 0


def problems(sites):
    """Every reason the run of *sites* (the report's per-site dicts) is not a
    clean one, one line each, site first; empty when it is clean."""
    out = []
    for name, s in sorted(sites.items()):
        if s["restarts"] < s["asked"]:
            out.append("%s: %d of %d restarts done" % (name, s["restarts"], s["asked"]))
        out.extend(s["errors"])
        if s.get("auto_restarts"):
            out.append("%s: systemd restarted it %d times on its own (Restart=on-failure)"
                       % (name, s["auto_restarts"]))
        out.extend("%s: journal: %s" % (name, line) for line in s.get("journal", []))
        if s["socket_states"] != ["active"]:
            out.append("%s: socket states seen: %s (want only active)" % (name, ", ".join(s["socket_states"])))
        if s["failed"]:
            out.append("%s: %d failed requests (connect %d, read %d, write %d, timeout %d, non-2xx/3xx %d)"
                       % (name, s["failed"], s["connect_errors"], s["read_errors"], s["write_errors"],
                          s["timeouts"], s["non_2xx_3xx"]))
        if not s["requests"]:
            out.append("%s: wrk got no answer at all" % name)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True,
                        help="NAME,PUBLIC_URL,READINESS_URL (repeat per site)")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per site")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of load before the restarts, and after every site is ready again")
    parser.add_argument("--timeout", type=float, default=30, help="readiness timeout per restart")
    parser.add_argument("--final-timeout", type=float, default=120,
                        help="after the restarts, how long every site may take to be ready again before "
                             "wrk is stopped (longer than a unit's start timeout: a hung start that systemd "
                             "ends and restarts still gets its waiting requests answered and counted)")
    parser.add_argument("--past-start-limit", metavar="BURST/SECONDS",
                        help="after --restarts, keep restarting each site until more than BURST of its starts "
                             "fell within SECONDS (at most --max-restarts in all)")
    parser.add_argument("--max-restarts", type=int, default=40)
    parser.add_argument("--pace-ms", type=float, default=0,
                        help="each wrk connection waits this long after an answer before its next request "
                             "(0: as fast as it can)")
    args = parser.parse_args()

    sites = []
    for spec in args.site:
        name, url, readiness = spec.split(",")
        sites.append({"name": name, "url": url, "readiness": readiness,
                      "unit": name + ".service", "socket": name + ".socket"})

    since = time.time()
    auto_before = {site["name"]: n_restarts(site["unit"]) for site in sites}
    wrks = {}
    pace = []
    if args.pace_ms:
        with open("/tmp/restart-under-load-pace.lua", "w") as handle:
            handle.write("function delay()\n  return %g\nend\n" % args.pace_ms)
        pace = ["-s", "/tmp/restart-under-load-pace.lua"]
    for site in sites:
        # The load generator yields the CPU (nice 10) to the sites it loads and to the host: unpaced,
        # three wrk processes want three cores, and on a 2-core host that starved the restarts they
        # measure (a warm-up of 0.7 s took over 10 s: 8 timeouts) and every other process with them.
        wrks[site["name"]] = subprocess.Popen(
            ["nice", "-n", "10", "wrk", "-t1", "-c%d" % args.connections, "-d600s", "--timeout", "10s", "--latency"]
            + pace + [site["url"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    # wrk stops at once on SIGINT, and a request it is still waiting for is
    # counted nowhere: stop it only once every site answers again and the
    # requests queued meanwhile had time to get their answers.
    deadline = time.monotonic() + args.final_timeout
    for site in sites:
        if not ready(site["readiness"], 2, deadline):
            reports[site["name"]]["errors"].append("%s: not ready again within %ss after the restarts"
                                                   % (site["name"], args.final_timeout))
    time.sleep(args.settle)

    for site in sites:
        proc = wrks[site["name"]]
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
        report = reports[site["name"]]
        report.update(parse_wrk(out))
        report["wrk_output"] = out
        report["auto_restarts"] = n_restarts(site["unit"]) - auto_before[site["name"]]
        report["journal"] = journal_trouble([site["unit"], site["socket"]], since)
    total = {key: sum(r[key] for r in reports.values())
             for key in ("requests", "failed", "connect_errors", "read_errors",
                         "write_errors", "timeouts", "non_2xx_3xx", "restarts", "asked")}
    json.dump({"sites": reports, "total": total, "problems": problems(reports)}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
