#!/usr/bin/env bash
# One end-to-end run of the collection with the ansible-core on PATH (run by
# e2e-versions.sh through controller.sh), against the hosts of
# WORK/inventory.yml, from the repository root:
#
#  1. the collection built and installed offline with this ansible-galaxy (it
#     refuses a collection whose requires_ansible excludes it), then used by
#     FQCN from that install only;
#  2. converge the reference app as two sites (restart and overlap);
#  3. converge again: changed=0;
#  4. --check --diff: changed=0;
#  5. deploy a new release with the load probe: 0 failed requests;
#  6. rollback: both sites serve the first release again;
#  7. history: the deploy and the rollback are in the audit log.
#
# Fails on "does not support Ansible version"; prints the other warnings.
# Last line: each step's wall time. Usage: e2e-run.sh WORK
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$1
inv=$work/inventory.yml
log() { printf 'e2e-run: %s\n' "$*"; }
fail() { log "FAIL: $*"; exit 1; }
cd "$top"

export ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_LOCAL_TEMP=$work/tmp ANSIBLE_RETRY_FILES_ENABLED=false ANSIBLE_PIPELINING=true
export ANSIBLE_TIMEOUT=60 ANSIBLE_NOCOLOR=true ANSIBLE_FORCE_COLOR=false

sites() {  # VERSION: the two sites on that release, as extra vars
  cat <<EOF
onebox_sites:
  - {name: blog, listen: "127.0.0.1:8001", health_listen: "127.0.0.1:19001", version: "$1",
     artifact: files/reference-app, command: bin/onebox-app --warmup 0.2}
  - {name: shop, listen: "127.0.0.1:8002", health_listen: "127.0.0.1:19011", version: "$1",
     artifact: files/reference-app, command: bin/onebox-app --warmup 0.3, strategy: overlap}
EOF
}
sites 1.0.0 > "$work/v1.yml"
sites 2.0.0 > "$work/v2.yml"

times=()
# play NAME PLAYBOOK ARG...: run it, keep its output in WORK/NAME.out, note its wall time
play() {
  local name=$1 began rc=0
  shift
  began=$(date +%s)
  log "$name: ansible-playbook -i $inv $*"
  ansible-playbook -i "$inv" "$@" > "$work/$name.out" 2>&1 || rc=$?
  cat "$work/$name.out"
  times+=("$name $(( $(date +%s) - began ))s")
  ((rc == 0)) || fail "$name: ansible-playbook exited $rc"
  if grep -n 'does not support Ansible version' "$work/$name.out"; then
    fail "$name: the collection does not declare ansible-core $core"
  fi
}
recap() {  # NAME: the PLAY RECAP lines of that run
  grep -E '^[^ ]+ +: ok=[0-9]+ +changed=' "$work/$1.out" || fail "$1: no PLAY RECAP"
}
unchanged() {  # NAME: every host of that run reported changed=0
  if recap "$1" | grep -v ' changed=0 '; then fail "$1: something changed (above)"; fi
}

core=$(ansible --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p')
log "ansible-core $core, $(python --version), collections from $ANSIBLE_COLLECTIONS_PATH"
began=$(date +%s)
ansible-galaxy collection build --output-path "$work/dist" "$top" >/dev/null
ansible-galaxy collection install --offline -p "$work/collections" "$work"/dist/onebox-deploy-*.tar.gz \
  > "$work/install.out" 2>&1 || { cat "$work/install.out"; fail "ansible-galaxy collection install"; }
cat "$work/install.out"
! grep -n 'does not support Ansible version' "$work/install.out" || fail "install: the collection does not declare ansible-core $core"
times+=("install $(( $(date +%s) - began ))s")

play converge onebox.deploy.site -e @"$work/v1.yml"
play converge-again onebox.deploy.site -e @"$work/v1.yml"
unchanged converge-again
play check onebox.deploy.site -e @"$work/v1.yml" --check --diff
unchanged check
play deploy onebox.deploy.deploy -e @"$work/v2.yml"
probes=$(grep -oE 'probe: [0-9]+ requests sent, [0-9]+ failed' "$work/deploy.out") || fail "deploy: no probe report"
log "deploy: $(echo "$probes" | paste -sd ';')"
while read -r _ sent _ _ failed _; do
  ((sent > 0)) || fail "deploy: the probe sent no request"
  ((failed == 0)) || fail "deploy: $failed of $sent probe requests failed"
done <<<"$probes"
play rollback onebox.deploy.rollback -e @"$work/v2.yml"
current=$(ansible -i "$inv" onebox -b -o -m ansible.builtin.command \
  -a 'readlink /srv/onebox/blog/current /srv/onebox/shop/current')
echo "$current"
[[ $(grep -o 'releases/1\.0\.0' <<<"$current" | wc -l) == 2 ]] || fail "rollback: not both sites on 1.0.0"
play history onebox.deploy.history -e @"$work/v2.yml"
for site in blog shop; do
  grep -qE "deploy $site 1\.0\.0 -> 2\.0\.0: success.*probe 0/[1-9]" "$work/history.out" || fail "history: no deploy of $site to 2.0.0"
  grep -qE "rollback $site 2\.0\.0 -> 1\.0\.0: success" "$work/history.out" || fail "history: no rollback of $site to 1.0.0"
done
warnings=$(cat "$work"/*.out | grep -E '^\[(WARNING|DEPRECATION WARNING)\]' | sort | uniq -c || true)
[[ -z $warnings ]] || { log "warnings:"; echo "$warnings"; }
log "OK"
echo "e2e-run: steps ${times[*]}"
