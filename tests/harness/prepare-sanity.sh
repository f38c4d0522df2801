#!/usr/bin/env bash
# Make this machine ready for `ansible-test sanity` (used by `make sanity`).
#
#  * installs shellcheck from Debian when it is missing (the shellcheck test);
#  * ansible-test runs each sanity test in a virtualenv of its own under
#    ~/.ansible/test/venv, created without pip and bootstrapped with
#    ~/.ansible/test/cache/get_pip_<version>.py, which it downloads from a host
#    this machine cannot reach. This puts tests/harness/get_pip_offline.py there
#    instead, next to the wheels it installs, fetched from PyPI. A bootstrap
#    script that is not ours is left alone. The virtualenvs' own requirements
#    (pylint, voluptuous, yamllint, ...) are pinned by ansible-test and come from PyPI.
#
# Idempotent: once done, a second run uses no network.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}   # the Python that runs ansible-test
log() { printf 'prepare-sanity: %s\n' "$*" >&2; }

if ! command -v shellcheck >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    log "shellcheck is missing (run as root or install it)"; exit 1
  fi
  log "installing shellcheck"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

# What ansible-test bootstraps into its virtualenvs, e.g. "pip==24.2".
# (ansible-test internals: check here first when an ansible-core update breaks this.)
read -r -a packages < <("$python" - <<'EOF'
from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages
import sys
version = "%d.%d" % sys.version_info[:2]
print(" ".join("%s==%s" % item for item in get_venv_packages(NativePythonConfig(version=version, path="")).items()))
EOF
)
pip_version=
for pkg in "${packages[@]}"; do [[ $pkg == pip==* ]] && pip_version=${pkg#pip==}; done
[[ -n $pip_version ]] || { log "cannot tell which pip ansible-test bootstraps (got: ${packages[*]})"; exit 1; }

cache=$HOME/.ansible/test/cache
script=$cache/get_pip_${pip_version//./_}.py
mkdir -p "$cache"
if [[ -e $script ]] && ! grep -q 'get_pip_offline' "$script"; then
  log "keeping the bootstrap script found at $script"
  exit 0
fi
for pkg in "${packages[@]}"; do
  name=${pkg%%==*} version=${pkg#*==}
  compgen -G "$cache/${name//-/_}-$version-*.whl" >/dev/null \
    || "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$cache" "$pkg"
done
cp "$here/get_pip_offline.py" "$script"
log "ansible-test bootstraps pip ${packages[*]} with $script"
