#!/usr/bin/env bash
# Runs a command with the test controller's processes (make, molecule,
# ansible-playbook, pytest, podman's CLI, sanity, ...) in a CPU cgroup of
# their own, ONEBOX_CONTROLLER_CPU_SHARES (1024) against the 1024 of the group
# that holds every test container, so that under contention the containers
# (the hosts under test: systemd, the sites, wrk) get one of the 2 cores,
# and the controller the other.
#
# Why: on a host with the cgroup-v1 cpu controller, Podman (cgroupfs manager)
# puts every container under /libpod_parent, one group that weighs 1024, while
# processes started from a shell stay in the root group, where each busy task
# weighs 1024 on its own. Three lanes of ansible-playbook and sanity beside
# the containers left all the containers together about a quarter of a core,
# and a site's restart under wrk's load took longer than wrk's 10 s timeout
# (CI: 8 timeouts in Molecule default and trixie). A real server does not
# share its CPU with its deploy controller this way; the tests measure the server.
# The weights are equal, not in the containers' favour: with 512 for the
# controller, the loads (wrk takes what it gets) left the playbooks they
# measure a third of the CPU and every scenario took about twice as long.
#
# Elsewhere (cgroup v2, a cpu cgroup that is not the root, no write access)
# the command runs as it is, and one line says why.
# Usage: controller-cgroup.sh COMMAND [ARG...]
set -uo pipefail
cpu=/sys/fs/cgroup/cpu
group=$cpu/onebox-controllers
shares=${ONEBOX_CONTROLLER_CPU_SHARES:-1024}
mine=$(sed -n 's/^[0-9]*:\(.*,\)\{0,1\}cpu\(,.*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup)
if [[ ! -f $cpu/cpu.shares ]]; then
  echo "controller-cgroup: no cgroup-v1 cpu controller here; the command runs in its own cgroup as it is" >&2
elif [[ $mine != / && $mine != /onebox-controllers ]]; then
  echo "controller-cgroup: already in cpu cgroup $mine; left as it is" >&2
elif ! { mkdir -p "$group" && echo "$shares" > "$group/cpu.shares" && echo $$ > "$group/cgroup.procs"; } 2>/dev/null; then
  echo "controller-cgroup: cannot write $group; the command runs in the root cpu cgroup" >&2
else
  echo "controller-cgroup: controller processes in cpu:/onebox-controllers (cpu.shares $shares), the test containers in cpu:/libpod_parent (1024)" >&2
fi
exec "$@"
