#!/usr/bin/env bash
# make demo: three demo sites in a local systemd container, converged with
# playbooks/site.yml, then restarted 10 times each under load from wrk.
# Prints the count of failed requests. Leaves the container running for a look
# around (podman exec -it onebox-demo bash); `make clean` removes it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=tests/harness/lib.sh
source tests/harness/lib.sh
name=onebox-demo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

onebox_container_up "$name"
onebox_three_sites_inventory "$work/inventory.yml" "$name" notify
echo "demo: converging three sites with playbooks/site.yml"
ansible-playbook -i "$work/inventory.yml" playbooks/site.yml > "$work/converge.log" \
  || { tail -n 40 "$work/converge.log"; exit 1; }
grep -A3 'PLAY RECAP' "$work/converge.log"

echo "demo: wrk loads all three sites while each is restarted 10 times"
podman cp tests/harness/restart_under_load.py "$name:/usr/local/bin/restart_under_load.py"
podman exec "$name" python3 /usr/local/bin/restart_under_load.py --restarts 10 \
  --site blog,http://127.0.0.1:8001/,http://127.0.0.1:19001/readyz \
  --site shop,http://127.0.0.1:8002/,http://127.0.0.1:19011/readyz \
  --site wiki,http://127.0.0.1:8003/,http://127.0.0.1:19021/readyz > "$work/report.json"
python3 - "$work/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print("%-6s %8s %9s %7s %8s %8s %8s" % ("site", "restarts", "requests", "failed", "p50_ms", "p99_ms", "max_ms"))
for name, s in report["sites"].items():
    print("%-6s %8d %9d %7d %8.1f %8.1f %8.1f" % (name, s["restarts"], s["requests"], s["failed"],
                                                 s["p50_ms"] or 0, s["p99_ms"] or 0, s["max_ms"] or 0))
t = report["total"]
print("\nfailed requests: %d of %d (%d restarts under load)" % (t["failed"], t["requests"], t["restarts"]))
sys.exit(1 if t["failed"] else 0)
PY
