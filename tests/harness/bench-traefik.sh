#!/usr/bin/env bash
# make bench-traefik: the same paced load and restarts through Traefik with
#  (a) the onebox.deploy.traefik configuration: health check on /livez at the
#      health port, retry middleware (with status 502/503) on every router;
#  (b) the same file with the health check on /readyz, which turns 503 while
#      an app drains (and warms up): the single backend is marked down;
#  (c) and (d): (a) and (b) with a retry middleware without status codes, as
#      on Traefik before 3.7 (only network errors are retried).
# Prints one table (requests, failed, error kinds, p99, max per site and config).
# BENCH_RESTARTS (default 5) restarts per site; BENCH_CONNECTIONS (default 4).
# Not part of `make test`: prints numbers, asserts nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=tests/harness/lib.sh
source tests/harness/lib.sh
name=onebox-bench-traefik
restarts=${BENCH_RESTARTS:-5}
conns=${BENCH_CONNECTIONS:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"; podman rm -f "$name" >/dev/null 2>&1 || true' EXIT

onebox_container_up "$name"
{ onebox_inventory_head "$name" notify; cat <<INV
    onebox_artifact_base: $top
    onebox_traefik_enabled: true
    onebox_traefik_install: true
    onebox_traefik_binary_src: $top/.venv/bin/traefik
    onebox_sites:
      - {name: blog, listen: "127.0.0.1:8001", health_listen: "127.0.0.1:19001", version: "1.0.0",
         artifact: files/reference-app, command: "bin/onebox-app --warmup 0.2", domain: blog.test}
      - {name: shop, listen: "127.0.0.1:8002", health_listen: "127.0.0.1:19002", version: "1.0.0",
         artifact: files/reference-app, command: "bin/onebox-app --warmup 0.5", domain: shop.test}
      - {name: wiki, listen: "127.0.0.1:8003", health_listen: "127.0.0.1:19003", version: "1.0.0",
         artifact: files/reference-app, command: "bin/onebox-app --warmup 0.8", domain: wiki.test}
INV
} > "$work/inventory.yml"
ansible-playbook -i "$work/inventory.yml" playbooks/site.yml > "$work/converge.log" \
  || { tail -n 30 "$work/converge.log"; exit 1; }
podman cp tests/harness/restart_under_load.py "$name:/usr/local/bin/restart_under_load.py"
podman cp tests/harness/traefik_load.py "$name:/usr/local/bin/traefik_load.py"

wait_up() {
  podman exec "$name" python3 - <<'PY'
import json, time, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    svcs = json.load(urllib.request.urlopen("http://127.0.0.1:8080/api/http/services"))
    states = [v for s in svcs if s["name"].startswith("onebox-") for v in s.get("serverStatus", {}).values()]
    if len(states) == 3 and set(states) == {"UP"}:
        break
    time.sleep(0.2)
PY
}

run() {
  local label=$1
  wait_up
  podman exec "$name" python3 /usr/local/bin/traefik_load.py --restarts "$restarts" --connections "$conns" \
    --site blog,blog.test,http://127.0.0.1:19001/readyz \
    --site shop,shop.test,http://127.0.0.1:19002/readyz \
    --site wiki,wiki.test,http://127.0.0.1:19003/readyz > "$work/$label.json"
}

# Rewrites the live dynamic file (atomic rename) with the health check on
# PATH and the retry status codes kept or dropped, then waits until Traefik
# serves it (the file provider throttles reloads for 2 s).
variant() {
  podman exec -i "$name" python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
path, status = sys.argv[1], sys.argv[2] == "status"
live = "/etc/traefik/dynamic/onebox.yml"
text = open(live).read()
header = [l for l in text.splitlines() if l.startswith("#") or l == "---"]
doc = json.loads("\n".join(l for l in text.splitlines() if not l.startswith("#") and l != "---"))
for svc in doc["http"]["services"].values():
    svc["loadBalancer"]["healthCheck"]["path"] = path
retry = doc["http"]["middlewares"]["onebox-retry"]["retry"]
if status:
    retry["status"] = ["502", "503"]
else:
    retry.pop("status", None)
with open(live + ".bench", "w") as out:
    out.write("\n".join(header) + "\n" + json.dumps(doc, indent=2) + "\n")
import os
os.rename(live + ".bench", live)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    svc = json.load(urllib.request.urlopen("http://127.0.0.1:8080/api/http/services/onebox-blog@file"))
    mw = json.load(urllib.request.urlopen("http://127.0.0.1:8080/api/http/middlewares/onebox-retry@file"))
    if svc["loadBalancer"]["healthCheck"]["path"] == path and ("status" in mw["retry"]) == status:
        break
    time.sleep(0.3)
else:
    sys.exit("Traefik did not load the %s variant" % path)
PY
}

run a-livez
variant /readyz status
run b-readyz
variant /livez nostatus
run c-livez-nostatus
variant /readyz nostatus
run d-readyz-nostatus

python3 - "$work" "$restarts" "$conns" <<'PY'
import json, sys
work, restarts, conns = sys.argv[1:]
rows = []
for label, title in (("a-livez", "(a) onebox: /livez, retry 502/503"), ("b-readyz", "(b) /readyz, retry 502/503"),
                     ("c-livez-nostatus", "(c) /livez, retry network errors only"),
                     ("d-readyz-nostatus", "(d) /readyz, retry network errors only")):
    report = json.load(open("%s/%s.json" % (work, label)))
    for name, s in list(report["sites"].items()) + [("total", dict(report["total"], p99_ms=max(
            x["p99_ms"] or 0 for x in report["sites"].values()), max_ms=max(x["max_ms"] or 0 for x in report["sites"].values())))]:
        kinds = ", ".join("%s %d" % (k, s[k]) for k in ("connect_errors", "read_errors", "timeouts", "non_2xx_3xx")
                          if s.get(k)) or "-"
        rows.append((title, name, s["restarts"], s["requests"], s["failed"], kinds,
                     "%.1f" % (s["p99_ms"] or 0), "%.1f" % (s["max_ms"] or 0)))
head = ("config", "site", "restarts", "requests", "failed", "error kinds", "p99_ms", "max_ms")
print("Through Traefik 3.7, %s restarts per site, wrk %s paced connections per site (5 ms pause)" % (restarts, conns))
print("| " + " | ".join(head) + " |")
print("|" + "|".join("---" for _ in head) + "|")
for row in rows:
    print("| " + " | ".join(str(c) for c in row) + " |")
PY
