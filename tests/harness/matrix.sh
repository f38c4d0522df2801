#!/usr/bin/env bash
# The ansible-core version matrix (make matrix): for each VERSION, in the
# controller controller.sh makes for it (a virtualenv of its own; Python 3.11
# here up to 2.19, Python 3.13 in a Debian 13 container from 2.20), made
# first, then ansible-test sanity (sanity.sh) and the unit tests (pytest
# tests/unit) side by side.
# Versions run side by side, at most ONEBOX_MATRIX_JOBS (2) at a time; each
# step logs to LOGDIR/VERSION-STEP.log. Prints the logs of failed steps, then
# one table: version x controller Python x result and wall time of each step.
# Exits non-zero when a step failed.
# ONEBOX_MATRIX_STEPS (default "sanity unit") names the steps to run after
# prepare: `make test` runs the unit tests of every version first, on a quiet
# machine, and sanity later beside Molecule.
# Usage: matrix.sh LOGDIR VERSION...
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${ONEBOX_CACHE_DIR:-$top/.cache}
logdir=$1
shift
jobs=${ONEBOX_MATRIX_JOBS:-2}
steps=" ${ONEBOX_MATRIX_STEPS:-sanity unit} "

# The collection declares exactly what is tested: every minor that
# meta/runtime.yml's requires_ansible admits is in the matrix and the other way
# round, the roles' min_ansible_version is its lowest, and the version
# requirements-dev.txt pins is one of them.
python3 - "$top" "$@" <<'EOF' || exit 1
import re, sys, yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
top, tested = sys.argv[1], sys.argv[2:]
spec = SpecifierSet(yaml.safe_load(open(top + "/meta/runtime.yml"))["requires_ansible"])
minors = sorted({tuple(map(int, v.split(".")[:2])) for v in tested})
admitted = [(2, m) for m in range(30) if any(Version("2.%d.%d" % (m, p)) in spec for p in (0, 99))]
problems = []
if admitted != minors:
    problems.append("requires_ansible %s admits %s, the matrix tests %s" % (
        spec, " ".join("%d.%d" % m for m in admitted), " ".join("%d.%d" % m for m in minors)))
problems += ["requires_ansible %s excludes %s" % (spec, v) for v in tested if Version(v) not in spec]
floor = "%d.%d" % minors[0]
for role in ("site", "traefik"):
    found = yaml.safe_load(open("%s/roles/%s/meta/main.yml" % (top, role)))["galaxy_info"]["min_ansible_version"]
    if str(found) != floor:
        problems.append("roles/%s/meta/main.yml: min_ansible_version %s, the oldest tested is %s" % (role, found, floor))
pinned = re.search(r"^ansible-core==(\S+)", open(top + "/requirements-dev.txt").read(), re.M).group(1)
if pinned not in tested:
    problems.append("requirements-dev.txt pins ansible-core %s, which the matrix does not test" % pinned)
sys.exit("\n".join("matrix: " + p for p in problems) or 0)
EOF
mkdir -p "$logdir"
rm -f "$logdir"/*.log "$logdir"/*.result

# step VERSION NAME COMMAND...: run one step of a version, note its result and time.
step() {
  local v=$1 name=$2 began rc
  shift 2
  began=$(date +%s)
  (cd "$top" && "$@") > "$logdir/$v-$name.log" 2>&1
  rc=$?
  echo "$name $rc $(( $(date +%s) - began ))" >> "$logdir/$v.result"
  return $rc
}
# Every step of one version; a failed preparation skips the others. Sanity
# and the unit tests run side by side: the unit tests mostly wait (for the
# processes, sockets and timeouts they test), about a quarter of one core.
# Their timing checks must not starve, though: sanity (pylint & co., all CPU)
# runs at a lower priority, the unit tests at the highest (nice -20: beside
# three Molecule scenarios converging, 0.6 s, 2 s and 5 s bounds of the unit
# tests were missed at nice 0 and -5; they mostly sleep, so the scenarios
# lose little), and one version's unit tests run at a time.
one() {
  local v=$1 ctl=$here/controller.sh
  step "$v" prepare bash "$ctl" "$v" --prepare || return 1
  if [[ $steps == *" sanity "* ]]; then
    step "$v" sanity nice -n 10 bash "$ctl" "$v" -- bash tests/harness/sanity.sh &
  fi
  if [[ $steps == *" unit "* ]]; then
    (
      # beside sanity, one version's unit tests at a time
      [[ $steps == " unit " ]] || flock 7
      step "$v" unit nice -n -20 bash "$ctl" "$v" -- python -m pytest -q -p no:cacheprovider tests/unit
    ) 7>"$logdir/unit.lock" &
  fi
  wait
}

began=$(date +%s)
running=0
for v in "$@"; do
  while (( running >= jobs )); do wait -n; running=$((running - 1)); done
  one "$v" &
  running=$((running + 1))
done
wait
took=$(( $(date +%s) - began ))

# field VERSION STEP: "ok 93s", "FAILED 12s" or "-" (not run)
field() {
  local line rc secs
  line=$(grep "^$2 " "$logdir/$1.result" 2>/dev/null) || { echo -; return; }
  read -r _ rc secs <<<"$line"
  if [[ $rc == 0 ]]; then echo "ok ${secs}s"; else echo "FAILED ${secs}s"; fi
}
rc=0
for v in "$@"; do
  for s in prepare sanity unit; do
    if [[ $(field "$v" $s) == FAILED* ]]; then
      echo "===== ansible-core $v: $s failed ($logdir/$v-$s.log)"
      cat "$logdir/$v-$s.log"
      rc=1
    fi
  done
done
printf '%-13s %-8s %-20s %-12s %-12s %-12s\n' ansible-core Python controller prepare sanity unit
for v in "$@"; do
  py=$(sed -n 's/^version *= *//p' "$cache/controllers/$v/venv/pyvenv.cfg" 2>/dev/null)
  minor=${v#2.}; minor=${minor%%.*}
  if (( minor >= 20 )); then where="Debian 13 container"; else where="Debian 12 host"; fi
  printf '%-13s %-8s %-20s %-12s %-12s %-12s\n' "$v" "${py:-?}" "$where" \
    "$(field "$v" prepare)" "$(field "$v" sanity)" "$(field "$v" unit)"
done
echo "matrix:${steps% } of ${#} versions, $jobs at a time, ${took}s wall time"
exit $rc
