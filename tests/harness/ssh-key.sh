#!/usr/bin/env bash
# The SSH key the tests connect with (as a user with sudo, like users do):
# .cache/ssh/id_ed25519, made once. Prints the private key's path.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${ONEBOX_CACHE_DIR:-$top/.cache}/ssh
mkdir -p "$dir"
chmod 700 "$dir"
if [[ ! -s $dir/id_ed25519 ]]; then
  command -v ssh-keygen >/dev/null || { apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null; }
  ssh-keygen -q -t ed25519 -N '' -C onebox-tests -f "$dir/id_ed25519"
fi
echo "$dir/id_ed25519"
