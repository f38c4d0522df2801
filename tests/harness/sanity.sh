#!/usr/bin/env bash
# ansible-test sanity with the ansible-test and the python3 found on PATH (make
# sanity: the project virtualenv; make matrix: each controller of
# controller.sh), on a copy of exactly what `ansible-galaxy collection build`
# ships (build_ignore applied, untracked files included), laid out as
# .../ansible_collections/onebox/deploy with galaxy.yml in place of
# MANIFEST.json. The copy lives outside this checkout: inside a git work tree
# ansible-test tests only the files git tracks, and none under .cache/ are.
#
# Each test runs in a virtualenv of its own that ansible-test builds from the
# package index (prepare-sanity.sh makes that work without its download host).
# Ignores, each with its reason: tests/sanity/ignore-X.Y.txt for ansible-core X.Y.
# Not run, with the reason:
#  * pslint: needs PowerShell (pwsh), which neither Debian nor PyPI provides;
#    the collection ships no PowerShell, and this fails if some ever appears;
#  * compile and import for Pythons other than the controller's: only that one
#    is installed where the tests run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
python=$(command -v python3)
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
core=$("$python" -c 'from ansible.release import __version__; print(__version__)')
log() { printf 'sanity: %s\n' "$*" >&2; }

PYTHON=$python bash "$here/prepare-sanity.sh"
root=${TMPDIR:-/tmp}/onebox-deploy-sanity-$(printf %s "$top" | cksum | cut -d' ' -f1)-$core
dir=$root/ansible_collections/onebox/deploy
rm -rf "$root"
mkdir -p "$dir"
ansible-galaxy collection build --output-path "$root" "$top" >/dev/null
tar -xzf "$root"/onebox-deploy-*.tar.gz -C "$dir"
cp "$top/galaxy.yml" "$dir/"
rm "$dir/MANIFEST.json" "$dir/FILES.json"
cd "$dir"
if ps=$(find . -name '*.ps1' -o -name '*.psm1' -o -name '*.psd1' | grep .); then
  log "PowerShell needs the pslint sanity test, which cannot run here: $ps"; exit 1
fi
log "ansible-core $core, Python $pyver; not run here: pslint (no pwsh; no PowerShell shipped), compile/import for Pythons other than $pyver (not installed)"
env -u ANSIBLE_COLLECTIONS_PATH ansible-test sanity --python "$pyver" --skip-test pslint 2>&1 | tee "$root/sanity.log"
! grep -q 'All targets skipped' "$root/sanity.log" || { log "ansible-test found nothing to test"; exit 1; }
rm -rf "$root"
