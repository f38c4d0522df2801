#!/usr/bin/env bash
# Run Molecule scenarios side by side, at most ONEBOX_MOLECULE_JOBS (3) at a
# time, in the order given (the order that ends the last one soonest); each logs to
# LOGDIR/molecule-<scenario>.log. The trixie scenario runs on
# ONEBOX_TRIXIE_IMAGE, the https scenario on ONEBOX_ACME_IMAGE. Prints every log, then one line per scenario with its
# result and wall time; exits non-zero when a scenario failed.
# Usage: molecule-all.sh LOGDIR SCENARIO...
set -uo pipefail
logdir=$1
shift
jobs=${ONEBOX_MOLECULE_JOBS:-3}
mkdir -p "$logdir"
declare -A pid_of=() began=() rcs=() took=()
run() {
  local s=$1 image=${ONEBOX_TEST_IMAGE:-localhost/onebox-systemd:bookworm}
  [[ $s == trixie ]] && image=${ONEBOX_TRIXIE_IMAGE:-localhost/onebox-systemd:trixie}
  [[ $s == https ]] && image=${ONEBOX_ACME_IMAGE:-localhost/onebox-systemd:bookworm-acme}
  ONEBOX_TEST_IMAGE=$image molecule test -s "$s" > "$logdir/molecule-$s.log" 2>&1
}
reap() {  # wait for one job to end, note its result
  local done_pid s
  wait -n -p done_pid
  local rc=$?
  for s in "${!pid_of[@]}"; do
    if [[ ${pid_of[$s]} == "$done_pid" ]]; then
      rcs[$s]=$rc took[$s]=$(( $(date +%s) - began[$s] ))
      unset "pid_of[$s]"
    fi
  done
}
for s in "$@"; do
  while (( ${#pid_of[@]} >= jobs )); do reap; done
  began[$s]=$(date +%s)
  run "$s" &
  pid_of[$s]=$!
done
while (( ${#pid_of[@]} > 0 )); do reap; done
rc=0
for s in "$@"; do echo "===== molecule test -s $s"; cat "$logdir/molecule-$s.log"; done
for s in "$@"; do
  printf 'molecule %-10s %-6s %4ds\n' "$s" "$([[ ${rcs[$s]} == 0 ]] && echo ok || echo FAILED)" "${took[$s]}"
  [[ ${rcs[$s]} == 0 ]] || rc=1
done
exit $rc
