#!/usr/bin/env bash
# Run a command with a given ansible-core release as the Ansible controller.
#
#   controller.sh VERSION [--] COMMAND [ARG...]   run COMMAND with that ansible-core
#   controller.sh VERSION --prepare               only build the controller
#
# VERSION is an exact release, e.g. 2.16.19 or 2.21.5. Each gets a virtualenv
# of its own, .cache/controllers/VERSION/venv, with ansible-core==VERSION and
# tests/harness/controller-requirements.txt (pytest, shellcheck), made once and
# remade only when that list or the Python changes:
#
#  * ansible-core up to 2.19 runs on this machine's Python (Debian 12: 3.11);
#    the virtualenv is filled from the package index as usual;
#  * ansible-core 2.20 and later need Python 3.12 or newer on the controller,
#    which Debian 12 lacks: they run in a container of the Debian 13 test image
#    (ONEBOX_TRIXIE_IMAGE, Python 3.13, built by prepare-host.sh). The
#    container has no network of its own: its virtualenv is filled from wheels
#    fetched here (pip download --python-version 3.13) into one wheelhouse
#    shared by all versions, .cache/controllers/wheels-py3.13, which also holds
#    everything ansible-test sanity of that version installs, and pip inside
#    the container is pointed at it alone. The repository (and the cache, when
#    ONEBOX_CACHE_DIR puts it elsewhere) is mounted at the same path, so paths
#    mean the same inside and out.
#
# COMMAND runs in the current directory with the virtualenv's bin first on
# PATH, HOME=.cache/controllers/VERSION/home (so ansible-test's own
# virtualenvs and ~/.ansible are per version too), and
# ANSIBLE_COLLECTIONS_PATH naming only this repository as onebox.deploy.
# ANSIBLE_* and ONEBOX_* variables reach COMMAND in the container too.
# ONEBOX_CONTROLLER_NETWORK names a podman network for the container
# (default: none), e.g. one that a test host is on.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${ONEBOX_CACHE_DIR:-$top/.cache}
image=${ONEBOX_TRIXIE_IMAGE:-localhost/onebox-systemd:trixie}
host_python=${ONEBOX_HOST_PYTHON:-/usr/bin/python3}
# Fetches the container's wheels; the project virtualenv (make venv) by default.
fetch_python=${ONEBOX_FETCH_PYTHON:-$top/.venv/bin/python}
requirements=$here/controller-requirements.txt
# The pip the container virtualenvs start from (also what ansible-test 2.20 and 2.21 bootstrap).
container_pip=25.2

log() { printf 'controller: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

(($# >= 2)) || die "usage: controller.sh VERSION [--] COMMAND [ARG...] | controller.sh VERSION --prepare"
version=$1
shift
[[ $version =~ ^2\.([0-9]+)\.[0-9]+$ ]] || die "not an exact ansible-core release: $version"
minor=${BASH_REMATCH[1]}
[[ $1 == -- ]] && shift
(($# > 0)) || die "no command given"

dir=$cache/controllers/$version
venv=$dir/venv
wheels=$cache/controllers/wheels-py3.13
pipconf=$cache/controllers/pip-offline.conf
if ((minor >= 20)); then kind=container; else kind=host; fi
# prepare-host.sh writes it; make exports it (the runtime and ulimits this host needs).
if [[ -z ${CONTAINERS_CONF:-} && -f $cache/containers.conf ]]; then
  export CONTAINERS_CONF=$cache/containers.conf
fi
mkdir -p "$dir/home"

# in_container [PODMAN-OPTION...] -- COMMAND...: COMMAND in a throwaway container of the Debian 13 image.
in_container() {
  local -a opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  local -a mounts=(-v "$top:$top")
  [[ $cache == "$top"/* ]] || mounts+=(-v "$cache:$cache")
  local workdir=$top
  [[ $PWD == "$top" || $PWD == "$top"/* || $PWD == "$cache"/* ]] && workdir=$PWD
  local tty=()
  [[ -t 0 && -t 1 ]] && tty=(-t)
  # NET_ADMIN: root on a host has it, and the unit tests of the Traefik gate attach a socket filter with it.
  podman run --rm -i "${tty[@]}" --cap-add NET_ADMIN --name "onebox-controller-${version//./-}-$$-$RANDOM" \
    "${mounts[@]}" -v "$pipconf:/etc/pip.conf:ro" -w "$workdir" \
    -e HOME="$dir/home" -e VIRTUAL_ENV="$venv" \
    -e PATH="$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    -e LANG=C.UTF-8 --env 'ANSIBLE_*' --env 'ONEBOX_*' --env 'PY_COLORS' \
    "${opts[@]}" "$image" "$@"
}

# fetch ARG...: wheels for Python 3.13 into the shared wheelhouse (pip download arguments).
fetch() {
  "$fetch_python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.13 -d "$wheels" "$@"
}

# The key of a finished virtualenv: remade when any of it changes.
key() {
  local py
  if [[ $kind == host ]]; then py=$("$host_python" -c 'import sys; print(sys.version)'); else py=$(podman image inspect --format '{{.Id}}' "$image"); fi
  printf '%s\n' "ansible-core==$version" "$kind $py" "pip $container_pip" "offline sanity 1"
  cat "$requirements"
}

prepare_host() {
  "$host_python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$version" -r "$requirements"
}

prepare_container() {
  podman image exists "$image" || die "no image $image: run make host (tests/harness/prepare-host.sh)"
  [[ -x $fetch_python ]] || die "no $fetch_python to fetch wheels with: run make venv"
  mkdir -p "$wheels"
  # One version fills the shared wheelhouse at a time (a wheel another is
  # still writing is not there yet for this one).
  exec 8>"$wheels.lock"
  flock 8
  # Replaced, not rewritten: running containers have the file mounted.
  printf '[global]\nno-index = true\nfind-links = %s\ndisable-pip-version-check = true\n' "$wheels" > "$pipconf.$$"
  mv -f "$pipconf.$$" "$pipconf"
  fetch "pip==$container_pip" "ansible-core==$version" -r "$requirements"
  # shellcheck disable=SC2016  # expanded by sh in the container, from its arguments
  in_container --network none -- sh -ec '
    python3 -m venv --without-pip "$1"
    "$1/bin/python" "$2"/pip-"$3"-py3-none-any.whl/pip install -q --no-index --find-links "$2" \
      "pip==$3" "ansible-core==$4" -r "$5"' sh "$venv" "$wheels" "$container_pip" "$version" "$requirements"
  # What ansible-test sanity installs into the virtualenvs it makes: the
  # packages it bootstraps them with (see prepare-sanity.sh) and the frozen
  # requirements of each test.
  local bootstrap site
  bootstrap=$(in_container --network none -- "$venv/bin/python" - <<'EOF'
from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages
import sys
version = "%d.%d" % sys.version_info[:2]
print(" ".join("%s==%s" % item for item in get_venv_packages(NativePythonConfig(version=version, path="")).items()))
EOF
)
  read -r -a bootstrap <<<"$bootstrap"
  fetch "${bootstrap[@]}"
  site=$(echo "$venv"/lib/python3.*/site-packages)
  local req
  for req in "$site"/ansible_test/_data/requirements/sanity.*.txt; do
    fetch -r "$req"
  done
  exec 8>&-
}

prepare() {
  local want
  want=$(key)
  [[ -f $venv/.onebox-key && $(cat "$venv/.onebox-key") == "$want" ]] && return 0
  log "making the ansible-core $version controller ($kind) in $venv"
  rm -rf "$venv"
  "prepare_$kind"
  printf '%s\n' "$want" > "$venv/.onebox-key"
}

# One preparation at a time per version (the matrix and an end-to-end run may
# both ask for the same controller).
exec 9>"$dir/.lock"
flock 9
prepare
flock -u 9
exec 9>&-
[[ $1 == --prepare ]] && exit 0

# The repository as onebox.deploy, and nothing else (make collection makes the same link).
mkdir -p "$cache/collections/ansible_collections/onebox"
ln -sfn "$top" "$cache/collections/ansible_collections/onebox/deploy"
export ANSIBLE_COLLECTIONS_PATH=$cache/collections
if [[ $kind == host ]]; then
  HOME=$dir/home VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH exec "$@"
fi
in_container --network "${ONEBOX_CONTROLLER_NETWORK:-none}" -- "$@"
