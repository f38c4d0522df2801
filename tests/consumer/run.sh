#!/usr/bin/env bash
# Galaxy build + consumer test (`make galaxy-check`).
#
# Builds the collection tarball the way it is published, checks what it holds,
# installs it offline into an empty collections directory and uses that copy
# the way an infrastructure repository would: FQCNs only, with
# ANSIBLE_COLLECTIONS_PATH naming the fresh install and nothing else (no source
# tree, no collections of the ansible package). Runs on the controller alone:
# no container, no network.
#
# Needs ansible-core on PATH (the Makefile puts the project virtualenv there).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=${ONEBOX_CACHE_DIR:-$top/.cache}/consumer

log() { printf 'galaxy-check: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

rm -rf "$work"
mkdir -p "$work/dist" "$work/collections" "$work/infra"

# --- build -------------------------------------------------------------------
ansible-galaxy collection build --output-path "$work/dist" "$top" >/dev/null
tarballs=("$work"/dist/onebox-deploy-*.tar.gz)
if ((${#tarballs[@]} != 1)) || [[ ! -f ${tarballs[0]} ]]; then fail "expected one tarball in $work/dist"; fi
tarball=${tarballs[0]}
version=$(sed -n 's/^version: *//p' "$top/galaxy.yml")
[[ $tarball == */onebox-deploy-$version.tar.gz ]] || fail "$tarball does not carry galaxy.yml's version $version"
log "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"

# --- what the tarball holds -------------------------------------------------
tar -tzf "$tarball" | sed 's#^\./##; s#/$##' | sort > "$work/contents.txt"
for path in MANIFEST.json FILES.json meta/runtime.yml README.md LICENSE \
            roles/site/tasks/main.yml roles/traefik/tasks/main.yml \
            roles/site/meta/argument_specs.yml roles/traefik/meta/argument_specs.yml \
            plugins/modules plugins/module_utils plugins/filter plugins/action \
            templates/service.j2 templates/socket.j2 templates/env.j2 roles/traefik/templates/traefik-dynamic.yml.j2 \
            playbooks/site.yml playbooks/deploy.yml playbooks/status.yml playbooks/run.yml changelogs/changelog.yaml \
            files/reference-app/bin/onebox-app; do
  grep -qxF "$path" "$work/contents.txt" || fail "tarball lacks $path"
done
# build_ignore'd and generated paths must stay out.
if grep -nE '^(\.venv|\.cache|\.git|\.ci|\.config|\.pytest_cache|molecule|tests/output)(/|$)|^(Makefile|requirements-dev\.txt|\.gitignore)$|(^|/)__pycache__(/|$)|\.pyc$|\.tar\.gz$' \
     "$work/contents.txt"; then
  fail "tarball holds build_ignore'd or generated paths (listed above)"
fi
# Executables stay executable through the build.
tar -tvzf "$tarball" files/reference-app/bin/onebox-app roles/traefik/files/onebox-traefik-check \
  | awk '$1 !~ /^-rwx/ { print; bad = 1 } END { exit bad }' || fail "an executable lost its x bit in the tarball"

# --- install it as a user would ---------------------------------------------
export ANSIBLE_COLLECTIONS_PATH=$work/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_LOCAL_TEMP=$work/tmp ANSIBLE_REMOTE_TEMP=$work/tmp
export ANSIBLE_RETRY_FILES_ENABLED=false
ansible-galaxy collection install --offline -p "$work/collections" "$tarball" >/dev/null
installed=$work/collections/ansible_collections/onebox/deploy
[[ -f $installed/MANIFEST.json ]] || fail "no MANIFEST.json in $installed"
listed=$(ansible-galaxy collection list onebox.deploy --format json)
python3 - "$listed" "$work/collections/ansible_collections" "$version" <<'EOF' || fail "ansible-galaxy does not see exactly the fresh install"
import json, sys
found = json.loads(sys.argv[1])
expected = {sys.argv[2]: {"onebox.deploy": {"version": sys.argv[3]}}}
sys.exit(0 if found == expected else "found %r, expected %r" % (found, expected))
EOF
log "installed onebox.deploy $version into $work/collections (the only collections path)"

# --- ansible-doc for every plugin and role of the installed copy ------------
# names DIR PATTERN SUFFIX: base names of DIR/PATTERN without SUFFIX, one a line
names() {
  local path
  for path in "$1"/$2; do
    [[ -e $path ]] && basename "$path" "$3"
  done
  return 0
}
mapfile -t modules < <(names "$installed/plugins/modules" '*.py' .py | grep -vx __init__)
mapfile -t filters < <(ansible-doc -t filter -l onebox.deploy --json | python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin))))')
mapfile -t roles < <(names "$installed/roles" '*/' /)
((${#modules[@]} > 0 && ${#filters[@]} > 0 && ${#roles[@]} > 0)) || fail "no modules, filters or roles found"
# Every filter the collection documents is one ansible-doc lists, and the reverse.
documented=$(names "$installed/plugins/filter" '*.yml' .yml | sed 's/^/onebox.deploy./' | sort)
[[ $documented == "$(printf '%s\n' "${filters[@]}")" ]] \
  || fail "filters listed by ansible-doc (${filters[*]}) differ from plugins/filter/*.yml ($(echo "$documented" | tr '\n' ' '))"
# One ansible-doc run per plugin type; every NAME must come back documented
# (ansible-doc exits 0 with {} for a plugin it cannot find), from the fresh install.
check_doc() {  # TYPE NAME...
  local type=$1 out
  shift
  out=$(ansible-doc -t "$type" --json "$@") || fail "ansible-doc -t $type $*"
  python3 - "$out" "$installed" "$@" <<'EOF' || fail "ansible-doc -t $type: see above"
import json, sys
docs, installed, names = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
bad = []
for name in names:
    entry = docs.get(name) or {}
    where = entry.get("path") or (entry.get("doc") or {}).get("filename") or ""
    if not (entry.get("doc") or entry.get("entry_points")):
        bad.append("%s: no documentation" % name)
    elif where != installed and not where.startswith(installed + "/"):
        bad.append("%s: loaded from %s, not from the fresh install" % (name, where))
sys.exit("\n".join(bad) or 0)
EOF
}
check_doc module "${modules[@]/#/onebox.deploy.}"
check_doc filter "${filters[@]}"
check_doc role "${roles[@]/#/onebox.deploy.}"
log "ansible-doc: ${#modules[@]} modules, ${#filters[@]} filters, ${#roles[@]} roles"

# --- an infrastructure repository that uses it ------------------------------
cp "$here/playbook.yml" "$here/inventory.yml" "$work/infra/"
cd "$work/infra"
mapfile -t playbooks < <(names "$installed/playbooks" '*.yml' .yml)
for p in "${playbooks[@]}"; do
  ansible-playbook -i inventory.yml --syntax-check "onebox.deploy.$p" >/dev/null \
    || fail "ansible-playbook --syntax-check onebox.deploy.$p"
done
log "syntax-check: $(printf 'onebox.deploy.%s ' "${playbooks[@]}")"
ansible-playbook -i inventory.yml playbook.yml -e "onebox_app_dir=$installed/files/reference-app"

# --- the infra repo's own ansible-lint, with the collection in ./collections --
# A user's repository lints everything in it, the installed collection
# included; nothing of ours may need excluding (production profile, offline).
lintrepo=$work/lint-repo
mkdir -p "$lintrepo/inventory/group_vars"
git -C "$lintrepo" init -q
ansible-galaxy collection install --offline --force -p "$lintrepo/collections" "$tarball" >/dev/null
printf '[defaults]\ncollections_path = ./collections\n' > "$lintrepo/ansible.cfg"
printf -- '---\nonebox:\n  hosts:\n    web1.example.org:\n' > "$lintrepo/inventory/hosts.yml"
printf -- '---\nonebox_sites: []\n' > "$lintrepo/inventory/group_vars/onebox.yml"
printf -- '---\n- name: Converge the onebox sites\n  ansible.builtin.import_playbook: onebox.deploy.site\n' \
  > "$lintrepo/site.yml"
(cd "$lintrepo" && env -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_COLLECTIONS_SCAN_SYS_PATH -u ANSIBLE_LOCAL_TEMP -u ANSIBLE_REMOTE_TEMP ansible-lint --profile production --offline --nocolor >lint.log 2>&1) \
  || { cat "$lintrepo/lint.log" >&2; fail "ansible-lint --profile production in an infra repo with the collection in ./collections"; }
log "ansible-lint --profile production passes in an infra repo with the collection in ./collections"
log "OK"
