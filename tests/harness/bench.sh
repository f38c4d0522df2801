#!/usr/bin/env bash
# make bench: the same app, the same load and the same number of restarts under
# each way of restarting it, in one systemd container (onebox-bench):
#   plain      the reference app binding its own port, in a plain .service
#              written here (no socket activation), direct and through Traefik
#              (single backend, health check on /readyz, retry middleware);
#   restart    socket activation, strategy restart (playbooks/site.yml),
#              direct and through Traefik (the traefik role: /livez + retry);
#   overlap    socket activation, strategy overlap, direct and through Traefik.
# Every unit is restarted by onebox.deploy.rolling_restart (strategy restart:
# `systemctl restart`, then wait for /readyz; overlap: start the other
# instance, wait for its /readyz, stop the old one), BENCH_RESTARTS times in
# one module run, under paced wrk load of fixed duration plus a sampler for the
# timeline (tests/harness/bench_load.py). Prints one table and writes
# docs/bench/<date>.md, docs/bench/<date>.png and docs/benchmark.md
# (tests/harness/bench_report.py). Not part of `make test`: asserts nothing.
#
# BENCH_RESTARTS (5) restarts per pass; BENCH_CONNECTIONS (4) wrk connections;
# BENCH_PACE_MS (5) pause per wrk connection between requests; BENCH_DURATION
# (25) seconds of load per pass; BENCH_SETTLE (2) seconds of load before the
# first restart; BENCH_WARMUP (0.5), BENCH_IDLE_GRACE (0.2), BENCH_DRAIN_TIMEOUT
# (10) the app's flags; BENCH_SAMPLER_CONNECTIONS (2), BENCH_SAMPLER_PACE_MS (10);
# BENCH_OUT (docs) where the results go; BENCH_KEEP=1 keeps container and raw data.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=tests/harness/lib.sh
source tests/harness/lib.sh
name=onebox-bench
restarts=${BENCH_RESTARTS:-5}
conns=${BENCH_CONNECTIONS:-4}
pace=${BENCH_PACE_MS:-5}
duration=${BENCH_DURATION:-25}
settle=${BENCH_SETTLE:-2}
warmup=${BENCH_WARMUP:-0.5}
grace=${BENCH_IDLE_GRACE:-0.2}
drain=${BENCH_DRAIN_TIMEOUT:-10}
sconns=${BENCH_SAMPLER_CONNECTIONS:-2}
space=${BENCH_SAMPLER_PACE_MS:-10}
out=${BENCH_OUT:-docs}
began=$(date +%s)
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
# BENCH_KEEP=1 keeps the container and the raw data (printed path) for a look.
if [[ -n ${BENCH_KEEP:-} ]]; then
  trap 'echo "bench: raw data in $work; container $name left running" >&2' EXIT
else
  trap 'rm -rf "$work"; podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
fi
say() { printf 'bench: %s\n' "$*" >&2; }

app_flags="--warmup $warmup --idle-grace $grace --drain-timeout $drain"
say "starting container $name"
onebox_container_up "$name"
{ onebox_inventory_head "$name" notify; cat <<INV
    onebox_drain_timeout: $drain
    onebox_artifact_base: $top
    onebox_traefik_enabled: true
    onebox_traefik_install: true
    onebox_traefik_binary_src: $top/.venv/bin/traefik
    onebox_sites:
      - {name: app-restart, listen: "127.0.0.1:8001", health_listen: "127.0.0.1:19001", version: "1.0.0",
         strategy: restart, artifact: files/reference-app, command: "bin/onebox-app $app_flags", domain: restart.test}
      - {name: app-overlap, listen: "127.0.0.1:8002", health_listen: "127.0.0.1:19011", version: "1.0.0",
         strategy: overlap, artifact: files/reference-app, command: "bin/onebox-app $app_flags", domain: overlap.test}
INV
} > "$work/inventory.yml"
say "converging two socket-activated sites and Traefik with playbooks/site.yml"
ansible-playbook -i "$work/inventory.yml" playbooks/site.yml > "$work/converge.log" \
  || { tail -n 40 "$work/converge.log"; exit 1; }

# The plain way: the same app file, binding its own port, in a hand-written unit.
say "installing the plain service app-plain.service (no socket)"
podman cp files/reference-app/bin/onebox-app "$name:/usr/local/bin/onebox-app"
podman exec -i "$name" sh -c 'cat > /etc/systemd/system/app-plain.service' <<UNIT
# make bench: the reference app binding its own port, no socket activation.
[Unit]
Description=bench: app-plain (binds 127.0.0.1:8003 itself)
# No start rate limit, so the bench measures restarts, not systemd's limit.
StartLimitIntervalSec=0

[Service]
Type=notify
User=nobody
Group=nogroup
Environment=ONEBOX_SITE=app-plain
ExecStart=/usr/local/bin/onebox-app --listen 127.0.0.1:8003 --health-listen 127.0.0.1:19021 $app_flags
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=$((${drain%.*} + 5))
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
UNIT
podman exec "$name" sh -c 'systemctl daemon-reload && systemctl enable --quiet --now app-plain.service' \
  || { podman exec "$name" journalctl -u app-plain.service --no-pager | tail -n 20; exit 1; }

# Traefik for the plain app: a file of our own next to the role's, copied from
# the role's router, service and retry middleware for app-restart, with the
# health check on /readyz (what a setup without a second backend typically does).
podman exec -i "$name" python3 - <<'PY'
import json, os
live = "/etc/traefik/dynamic/onebox.yml"
text = open(live).read()
doc = json.loads("\n".join(l for l in text.splitlines() if not l.startswith("#") and l != "---"))
http = doc["http"]
router = dict(http["routers"]["onebox-app-restart"], rule="Host(`plain.test`)", service="bench-plain",
              middlewares=["bench-retry"])
service = json.loads(json.dumps(http["services"]["onebox-app-restart"]))
service["loadBalancer"]["servers"] = [{"url": "http://127.0.0.1:8003"}]
service["loadBalancer"]["healthCheck"].update(path="/readyz", port=19021)
plain = {"http": {"routers": {"bench-plain": router}, "services": {"bench-plain": service},
                  "middlewares": {"bench-retry": http["middlewares"]["onebox-retry"]}}}
with open("/etc/traefik/dynamic/.bench-plain.tmp", "w") as f:
    json.dump(plain, f, indent=2)
os.chmod("/etc/traefik/dynamic/.bench-plain.tmp", 0o644)
os.rename("/etc/traefik/dynamic/.bench-plain.tmp", "/etc/traefik/dynamic/bench-plain.yml")
PY
for f in restart_under_load.py bench_load.py; do podman cp "tests/harness/$f" "$name:/usr/local/bin/$f"; done
podman exec "$name" cat /etc/traefik/dynamic/onebox.yml /etc/traefik/dynamic/bench-plain.yml > "$work/traefik-dynamic.txt"

# One pass: LABEL WAY PATH URL HOST READY_URL TRAEFIK_SERVICE JOURNAL_UNIT ROLL_ARGS...
bench_pass() {
  local label=$1 way=$2 path=$3 url=$4 host=$5 ready=$6 svc=$7 junit=$8 load t0
  shift 8
  say "pass $label: $duration s of load, $restarts restarts from about ${settle}s on"
  podman exec "$name" python3 /usr/local/bin/bench_load.py wait --ready-url "$ready" ${svc:+--traefik-service "$svc"}
  podman exec "$name" python3 /usr/local/bin/bench_load.py run --url "$url" --host "$host" \
    --duration "$duration" --connections "$conns" --pace-ms "$pace" \
    --sampler-connections "$sconns" --sampler-pace-ms "$space" > "$work/$label.load.json" &
  load=$!
  sleep "$settle"
  if ! ansible-playbook -i "$work/inventory.yml" tests/harness/bench/roll-repeat.yml \
       -e bench_restarts="$restarts" -e bench_result="$work/$label.roll.json" "$@" > "$work/$label.roll.log"; then
    tail -n 30 "$work/$label.roll.log"; wait "$load" || true; exit 1
  fi
  wait "$load"
  t0=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["t_start"]) - 1)' "$work/$label.load.json")
  podman exec "$name" journalctl -o json --no-pager --since "@$t0" -u "$junit" > "$work/$label.journal.json"
  printf '%s\t%s\t%s\n' "$label" "$way" "$path" >> "$work/passes.tsv"
}

plain_unit='{"bench_unit": {"name": "app-plain.service", "readiness_url": "http://127.0.0.1:19021/readyz",
  "liveness_url": "http://127.0.0.1:19021/livez"}}'
traefik=http://127.0.0.1:80/
bench_pass plain-direct plain direct http://127.0.0.1:8003/ "" http://127.0.0.1:8003/readyz "" \
  app-plain.service -e "$plain_unit"
bench_pass plain-traefik plain traefik $traefik plain.test http://127.0.0.1:8003/readyz bench-plain@file \
  app-plain.service -e "$plain_unit"
bench_pass restart-direct restart direct http://127.0.0.1:8001/ "" http://127.0.0.1:8001/readyz "" \
  app-restart.service -e bench_site=app-restart
bench_pass restart-traefik restart traefik $traefik restart.test http://127.0.0.1:8001/readyz onebox-app-restart@file \
  app-restart.service -e bench_site=app-restart
bench_pass overlap-direct overlap direct http://127.0.0.1:8002/ "" http://127.0.0.1:8002/readyz "" \
  'app-overlap@*' -e bench_site=app-overlap
bench_pass overlap-traefik overlap traefik $traefik overlap.test http://127.0.0.1:8002/readyz onebox-app-overlap@file \
  'app-overlap@*' -e bench_site=app-overlap

traefik_version=$(podman exec "$name" /usr/local/bin/traefik version | awk '/^Version:/ {print $2}')
command="make bench"
for v in BENCH_RESTARTS BENCH_CONNECTIONS BENCH_PACE_MS BENCH_DURATION BENCH_SETTLE BENCH_WARMUP BENCH_IDLE_GRACE \
         BENCH_DRAIN_TIMEOUT BENCH_SAMPLER_CONNECTIONS BENCH_SAMPLER_PACE_MS; do
  if [[ -n ${!v:-} ]]; then command="$v=${!v} $command"; fi
done
python3 - "$work/meta.json" <<PY
import json, sys
json.dump({"date": "$(date +%F)", "cores": $(nproc), "cpu": "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)",
           "traefik": "$traefik_version", "restarts": $restarts, "connections": $conns, "pace_ms": $pace,
           "duration": $duration, "settle": $settle, "warmup": $warmup, "idle_grace": $grace, "drain_timeout": $drain,
           "sampler_connections": $sconns, "sampler_pace_ms": $space, "command": "$command",
           "loadavg": "$loadavg", "runtime_s": $(date +%s) - $began}, open(sys.argv[1], "w"))
PY
python3 tests/harness/bench_report.py --work "$work" --out "$out"
say "done in $(( $(date +%s) - began )) s"
