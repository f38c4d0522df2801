#!/usr/bin/env bash
# make bench-roll: the same roll of three sites done by onebox.deploy.rolling_restart
# with the restart strategy, by a plain Ansible loop (systemd restart + uri
# retries, delay 1), and by the module with the overlap strategy, each under
# paced wrk load on every site; plus a baseline with load and no roll. Prints
# roll time, failed requests and latency.
# BENCH_SERVICE_TYPE=exec compares the two for apps that do not send READY=1;
# BENCH_ROUNDS sets the rounds (default 3).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=tests/harness/lib.sh
source tests/harness/lib.sh
name=onebox-bench
rounds=${BENCH_ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"; podman rm -f "$name" >/dev/null 2>&1 || true' EXIT

onebox_container_up "$name"
onebox_three_sites_inventory "$work/inventory.yml" "$name" "${BENCH_SERVICE_TYPE:-notify}"
ansible-playbook -i "$work/inventory.yml" playbooks/site.yml > "$work/converge.log" || { tail -n 30 "$work/converge.log"; exit 1; }
podman cp tests/harness/restart_under_load.py "$name:/usr/local/bin/restart_under_load.py"
podman exec "$name" sh -c "printf 'function delay()\n  return 5\nend\n' > /tmp/pace.lua"

echo "mode      round  roll_s  module_s  warmups_s  requests  failed  p99_ms(blog/shop/wiki)    max_ms(blog/shop/wiki)"
# One pass of MODE under load: baseline (no roll), module, naive or overlap.
bench_pass() {
  local mode=$1 round=$2 t0 t1 module_s
  for s in 8001 8002 8003; do
    podman exec "$name" sh -c "nohup wrk -t1 -c8 -d600s --timeout 10s --latency -s /tmp/pace.lua http://127.0.0.1:$s/ > /tmp/wrk-$s.txt 2>&1 &"
  done
  sleep 1
  t0=$(date +%s.%N)
  case $mode in
    baseline) sleep 5 ;;
    overlap) ansible-playbook -i "$work/inventory.yml" -e onebox_strategy=overlap tests/harness/bench/roll-module.yml > "$work/roll.log" \
               || { tail -n 30 "$work/roll.log"; exit 1; } ;;
    *) ansible-playbook -i "$work/inventory.yml" "tests/harness/bench/roll-$mode.yml" > "$work/roll.log" \
         || { tail -n 30 "$work/roll.log"; exit 1; } ;;
  esac
  t1=$(date +%s.%N)
  sleep 1
  podman exec "$name" sh -c 'pkill -INT -x wrk; while pgrep -x wrk >/dev/null; do sleep 0.1; done'
  module_s=-
  [[ $mode == baseline ]] || module_s=$(grep -o 'module_duration=[0-9.]*' "$work/roll.log" | cut -d= -f2 || true)
  for s in 8001 8002 8003; do podman exec "$name" cat "/tmp/wrk-$s.txt" > "$work/wrk-$s.txt"; done
  python3 - "$mode" "$round" "$t0" "$t1" "${module_s:--}" "$work" <<'PY'
import sys
sys.path.insert(0, "tests/harness")
from restart_under_load import parse_wrk
mode, rnd, t0, t1, module_s, work = sys.argv[1:]
res = [parse_wrk(open("%s/wrk-%s.txt" % (work, p)).read()) for p in (8001, 8002, 8003)]
print("%-9s %5s %7.2f %9s %10.1f %9d %7d  %-24s %s" % (
    mode, rnd, float(t1) - float(t0), module_s, 0.2 + 0.5 + 0.8,
    sum(r["requests"] for r in res), sum(r["failed"] for r in res),
    "/".join("%.0f" % (r["p99_ms"] or 0) for r in res), "/".join("%.0f" % (r["max_ms"] or 0) for r in res)))
PY
}

bench_pass baseline 0
for round in $(seq "$rounds"); do
  bench_pass module "$round"
  bench_pass naive "$round"
done
# Switch every site to the overlap strategy (template units, two instances).
ansible-playbook -i "$work/inventory.yml" -e onebox_strategy=overlap playbooks/site.yml > "$work/converge.log" \
  || { tail -n 30 "$work/converge.log"; exit 1; }
for round in $(seq "$rounds"); do
  bench_pass overlap "$round"
done
