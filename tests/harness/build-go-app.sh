#!/usr/bin/env bash
# Build the Go app of the Molecule scenario `apps` (molecule/apps/go/main.go)
# offline, with Debian's golang-go and golang-github-coreos-go-systemd-dev in
# GOPATH mode (tests/harness/prepare-host.sh installs both).
# Usage: build-go-app.sh RELEASE_DIR   -> RELEASE_DIR/bin/go-app (static)
# Does nothing when RELEASE_DIR/bin/go-app is newer than main.go.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 RELEASE_DIR" >&2; exit 2; }
src="$(cd "$(dirname "$0")/../../molecule/apps/go" && pwd)/main.go"
out="$1/bin/go-app"
if [[ -x $out && $out -nt $src ]]; then
    exit 0
fi
mkdir -p "$1/bin"
cache="${GOCACHE:-${TMPDIR:-/tmp}/onebox-go-cache}"
# GOPATH=/usr/share/gocode is where Debian's golang-*-dev packages put their
# sources; GO111MODULE=off and GOFLAGS= keep the go tool from looking for a
# module proxy.
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS="" GOPROXY=off CGO_ENABLED=0 GOCACHE="$cache" \
    go build -trimpath -ldflags='-s -w' -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "built $out"
