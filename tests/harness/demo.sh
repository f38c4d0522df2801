#!/usr/bin/env bash
# make demo: three demo sites in a local systemd container, converged with
# playbooks/site.yml, then restarted 10 times each under load from wrk
# (tests/harness/restart_under_load.py).
#
# Prints per site the restarts done of those asked, the requests and failed
# requests, latencies and the slowest restart, then every problem the harness
# found; exits 1 with "demo: FAILED" when a site got fewer restarts than asked,
# a start or restart failed or timed out, systemd restarted a site on its own,
# the journal shows a start or stop gone wrong, or any request failed.
#
# The container is ONEBOX_DEMO_NAME (the Makefile passes one per checkout:
# onebox-demo-<checksum of the checkout's path>, so demos of two checkouts can
# run side by side). It is left running for a look around
# (podman exec -it NAME bash); `make clean` removes it. ONEBOX_DEMO_RESTARTS
# (10) restarts per site.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=tests/harness/lib.sh
source tests/harness/lib.sh
name=${ONEBOX_DEMO_NAME:-onebox-demo-$(printf %s "$top" | cksum | cut -d' ' -f1)}
restarts=${ONEBOX_DEMO_RESTARTS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
began=$SECONDS

echo "demo: container $name"
onebox_container_up "$name"
onebox_three_sites_inventory "$work/inventory.yml" "$name" notify
echo "demo: converging three sites with playbooks/site.yml"
ansible-playbook -i "$work/inventory.yml" playbooks/site.yml > "$work/converge.log" \
  || { tail -n 40 "$work/converge.log"; echo "demo: FAILED: the converge failed"; exit 1; }
grep -A3 'PLAY RECAP' "$work/converge.log"

echo "demo: wrk loads all three sites while each is restarted $restarts times"
podman cp tests/harness/restart_under_load.py "$name:/usr/local/bin/restart_under_load.py"
podman exec "$name" python3 /usr/local/bin/restart_under_load.py --restarts "$restarts" \
  --site blog,http://127.0.0.1:8001/,http://127.0.0.1:19001/readyz \
  --site shop,http://127.0.0.1:8002/,http://127.0.0.1:19011/readyz \
  --site wiki,http://127.0.0.1:8003/,http://127.0.0.1:19021/readyz > "$work/report.json" \
  || { echo "demo: FAILED: the load harness did not finish"; exit 1; }
python3 - "$work/report.json" "$name" "$((SECONDS - began))" <<'PY'
import json
import sys

report, name, took = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
print("%-6s %8s %9s %7s %8s %8s %8s %12s" % ("site", "restarts", "requests", "failed", "p50_ms", "p99_ms",
                                            "max_ms", "slowest_s"))
for site, s in report["sites"].items():
    print("%-6s %8s %9d %7d %8.1f %8.1f %8.1f %12s" % (
        site, "%d/%d" % (s["restarts"], s["asked"]), s["requests"], s["failed"], s["p50_ms"] or 0,
        s["p99_ms"] or 0, s["max_ms"] or 0, "%.2f" % s["max_restart_s"] if s["max_restart_s"] else "-"))
t = report["total"]
print("\nfailed requests: %d of %d (%d of %d restarts under load; wrk: connect %d, read %d, write %d, "
      "timeout %d, non-2xx/3xx %d)" % (t["failed"], t["requests"], t["restarts"], t["asked"], t["connect_errors"],
                                      t["read_errors"], t["write_errors"], t["timeouts"], t["non_2xx_3xx"]))
if report["problems"]:
    print("\nproblems:")
    for line in report["problems"]:
        print("  " + line)
    print("\ndemo: FAILED after %d s: %d problem(s) above; the sites' journals: "
          "podman exec %s journalctl -u blog -u shop -u wiki" % (took, len(report["problems"]), name))
    sys.exit(1)
print("demo: OK after %d s: every restart done, no request failed, nothing in the journal" % took)
PY
