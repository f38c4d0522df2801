"""Load sites through Traefik (Host header routing) while restarting them.

Runs on the systemd host next to restart_under_load.py (it imports its wrk
parser and readiness helpers). One paced `wrk` per site sends requests to
Traefik's entry point with the site's Host header (each connection waits
--pace-ms between requests, so the machine keeps CPU for the restarts), while
every site named by --restart is restarted --restarts times with
`systemctl restart`, each restart followed by a readiness wait. Prints one
JSON document: per site the wrk counters (requests, socket errors,
non-2xx/3xx), latency p50/p99/max, and the restarts done.

Standard library only.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from restart_under_load import parse_wrk, roll_site  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True,
                        help="NAME,HOST,READINESS_URL (repeat per site)")
    parser.add_argument("--url", default="http://127.0.0.1:80/", help="Traefik entry point URL")
    parser.add_argument("--restart", action="append", default=None,
                        help="site to restart (repeat); default: every site")
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4, help="wrk connections per site")
    parser.add_argument("--pace-ms", type=int, default=5, help="pause of each connection between requests")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds of load before and after")
    parser.add_argument("--timeout", type=float, default=30, help="readiness timeout per restart")
    args = parser.parse_args()

    sites = []
    for spec in args.site:
        name, host, readiness = spec.split(",")
        sites.append({"name": name, "host": host, "readiness": readiness,
                      "unit": name + ".service", "socket": name + ".socket"})
    restart = set(args.restart) if args.restart else set(s["name"] for s in sites)

    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write("function delay()\n  return %d\nend\n" % args.pace_ms)
    lua.close()
    wrks = {}
    for site in sites:
        wrks[site["name"]] = subprocess.Popen(
            ["wrk", "-t1", "-c%d" % args.connections, "-d600s", "--timeout", "10s", "--latency",
             "-s", lua.name, "-H", "Host: " + site["host"], args.url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(args.settle)
    reports = {site["name"]: {"errors": [], "restarts": 0, "restart_window_s": 0} for site in sites}
    threads = [threading.Thread(target=roll_site, args=(site, args.restarts, args.timeout, reports[site["name"]]))
               for site in sites if site["name"] in restart]
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
    os.unlink(lua.name)
    total = {key: sum(r[key] for r in reports.values())
             for key in ("requests", "failed", "connect_errors", "read_errors", "write_errors",
                         "timeouts", "non_2xx_3xx", "restarts")}
    json.dump({"sites": reports, "total": total}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
