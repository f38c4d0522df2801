#!/usr/bin/env bash
# The collection end to end with given ansible-core releases (make e2e-versions).
# For each VERSION: a fresh systemd test container onebox-e2e-VERSION
# (ONEBOX_TEST_IMAGE) on a podman network of the same name, reachable over SSH
# as the sudo user `deploy` (ssh-user.sh), and the controller of
# controller.sh for VERSION (a virtualenv here up to 2.19, a Debian 13
# container on that network from 2.20) running e2e-run.sh against it. One
# version after the other; each logs to LOGDIR/e2e-VERSION.log. Prints the logs
# of failed versions, then one line per version with its result and wall time.
# The containers and networks are removed at the end (kept when
# ONEBOX_E2E_KEEP=1). Exits non-zero when a version failed.
# Usage: e2e-versions.sh LOGDIR VERSION...
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${ONEBOX_CACHE_DIR:-$top/.cache}
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"
logdir=$1
shift
mkdir -p "$logdir"
[[ -n ${CONTAINERS_CONF:-} ]] || export CONTAINERS_CONF=$cache/containers.conf
key=$(bash "$here/ssh-key.sh")

# one VERSION: the target container, its inventory, the run. Output: the log.
one() {
  local v=$1 name=onebox-e2e-$1 work=$cache/e2e/$1 ip
  rm -rf "$work"
  mkdir -p "$work"
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman network exists "$name" || podman network create "$name" >/dev/null || return 1
  onebox_container_up "$name" --network "$name" || return 1
  bash "$here/ssh-user.sh" "$name" deploy || return 1
  ip=$(podman inspect --format "{{(index .NetworkSettings.Networks \"$name\").IPAddress}}" "$name") || return 1
  [[ -n $ip ]] || { echo "no address for $name on network $name"; return 1; }
  cat > "$work/inventory.yml" <<EOF
onebox:
  hosts:
    $name:
      ansible_host: $ip
      ansible_user: deploy
      ansible_ssh_private_key_file: $key
      ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
      ansible_python_interpreter: /usr/bin/python3
  vars:
    onebox_artifact_base: $top
    onebox_service_type: notify
EOF
  ONEBOX_CONTROLLER_NETWORK=$name bash "$here/controller.sh" "$v" -- bash "$here/e2e-run.sh" "$work"
}

declare -A rcs=() took=()
for v in "$@"; do
  began=$(date +%s)
  echo "e2e: ansible-core $v against onebox-e2e-$v ..."
  one "$v" > "$logdir/e2e-$v.log" 2>&1
  rcs[$v]=$? took[$v]=$(( $(date +%s) - began ))
  if [[ ${ONEBOX_E2E_KEEP:-} != 1 ]]; then
    podman rm -f "onebox-e2e-$v" >/dev/null 2>&1
    podman network rm "onebox-e2e-$v" >/dev/null 2>&1
  fi
done
rc=0
for v in "$@"; do
  if [[ ${rcs[$v]} != 0 ]]; then
    echo "===== e2e ansible-core $v failed ($logdir/e2e-$v.log)"
    cat "$logdir/e2e-$v.log"
    rc=1
  fi
done
for v in "$@"; do
  py=$(sed -n 's/^version *= *//p' "$cache/controllers/$v/venv/pyvenv.cfg" 2>/dev/null)
  printf 'e2e ansible-core %-8s Python %-7s %-6s %4ds   %s\n' "$v" "${py:-?}" \
    "$([[ ${rcs[$v]} == 0 ]] && echo ok || echo FAILED)" "${took[$v]}" \
    "$(grep -h '^e2e-run: steps' "$logdir/e2e-$v.log" | cut -d' ' -f3-)"
done
exit $rc
