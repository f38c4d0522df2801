#!/usr/bin/env bash
# Make this machine ready to run the collection's systemd test containers.
#
#  * installs podman, runc, debootstrap and wrk from Debian when they are missing;
#  * writes a project-local containers.conf (runtime + ulimits) that every make
#    target exports as CONTAINERS_CONF, so the host's own podman config is untouched;
#  * installs golang-go and golang-github-coreos-go-systemd-dev, with which the
#    Molecule scenario `apps` builds its Go app offline (tests/harness/build-go-app.sh);
#  * builds and caches a Debian image with systemd as PID 1 and the app servers
#    the scenarios deploy (gunicorn, uvicorn, Node.js), plus sshd and sudo.
#
# With --demo, only what `make demo` uses: no Go, no wrk on the host (the demo
# runs wrk inside the container); the image is the same.
#
# The image: suite ONEBOX_TEST_SUITE (default: the tag of ONEBOX_TEST_IMAGE up to
# its first '-', else bookworm); a tag ending in -acme (localhost/onebox-systemd:
# bookworm-acme, the image of the Molecule scenario https) adds Debian's ACME
# test server pebble and stunnel4 (a TLS client in front of wrk, which checks
# no certificate itself). Cached as localhost/onebox-systemd:SUITE-HASH,
# where HASH covers the suite, the package list and the recipe below, so a
# changed list builds a new image instead of reusing a stale one. That image is
# then also tagged ONEBOX_TEST_IMAGE (default localhost/onebox-systemd:bookworm),
# the name the Makefile, Molecule and the harness scripts run.
#
# Idempotent: a second run does nothing but print what it found.
set -euo pipefail
demo_only=false
case ${1:-} in
  --demo) demo_only=true ;;
  "") ;;
  *) echo "usage: prepare-host.sh [--demo]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${ONEBOX_CACHE_DIR:-$top/.cache}
image=${ONEBOX_TEST_IMAGE:-localhost/onebox-systemd:bookworm}
repo=localhost/onebox-systemd
if [[ -n ${ONEBOX_TEST_SUITE:-} ]]; then
  suite=$ONEBOX_TEST_SUITE
elif [[ $image == "$repo":* ]]; then
  tag=${image#"$repo":}; suite=${tag%%-*}
else
  suite=bookworm
fi
[[ $suite =~ ^[a-z]+$ ]] || { echo "prepare-host: bad suite '$suite' (ONEBOX_TEST_SUITE)" >&2; exit 1; }
# What the image holds; the same list for every suite.
image_packages=(
  systemd systemd-sysv dbus python3 curl ca-certificates procps iproute2 wrk
  openssh-server sudo      # a host reached over SSH, with become
  gunicorn uvicorn nodejs  # the app servers of molecule/apps (/usr/bin/gunicorn, /usr/bin/uvicorn, /usr/bin/node)
)
if [[ $image == "$repo":*-acme ]]; then
  image_packages+=(pebble stunnel4)
fi
# Units that make no sense in a container and slow the boot.
masked_units=(systemd-resolved.service systemd-timesyncd.service getty@tty1.service
              apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer)
# Bump when the build below changes in a way the lists do not show.
recipe=3
image_hash=$(printf '%s\n' "$suite" "recipe $recipe" "${image_packages[@]}" "${masked_units[@]}" \
             | sha256sum | cut -c1-10)
built=$repo:$suite-$image_hash
conf=$cache/containers.conf
mkdir -p "$cache"

log() { printf 'prepare-host: %s\n' "$*" >&2; }

# One run at a time on this machine: two checkouts preparing at once would
# build the same image twice and race for apt's lock.
lock=/run/lock/onebox-prepare-host.lock
[[ -w ${lock%/*} ]] || lock=${TMPDIR:-/tmp}/onebox-prepare-host.lock
exec 9>>"$lock"
flock 9

# --- packages --------------------------------------------------------------
missing=()
commands=(podman:podman runc:runc debootstrap:debootstrap python3:python3 make:make)
$demo_only || commands+=(wrk:wrk systemd-analyze:systemd go:golang-go)
for pair in "${commands[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# The Go app of molecule/apps imports github.com/coreos/go-systemd/activation
# from Debian's GOPATH tree (tests/harness/build-go-app.sh builds offline).
$demo_only || [[ -d /usr/share/gocode/src/github.com/coreos/go-systemd/activation ]] \
  || missing+=(golang-github-coreos-go-systemd-dev)
# python3-venv is needed for `python3 -m venv`; it is a package of its own on Debian.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${missing[*]} (run as root or install them)"; exit 1
  fi
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${missing[@]}" >/dev/null
fi

# --- container runtime -----------------------------------------------------
# crun refuses hybrid cgroup hosts ("cgroups in hybrid mode not supported");
# runc works there. On a pure cgroup v2 host the default runtime is fine.
fstype=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || echo unknown)
if [[ $fstype == cgroup2fs ]]; then runtime=""; else runtime=runc; fi
# Podman's default rlimits fail without CAP_SYS_RESOURCE when they reach the
# hard limit; stay well below it.
nofile=$(( $(ulimit -Hn) < 10000 ? $(ulimit -Hn) : 10000 ))
nproc_hard=$(ulimit -Hu); [[ $nproc_hard == unlimited ]] && nproc_hard=10000
nproc=$(( nproc_hard < 10000 ? nproc_hard : 10000 ))
{
  echo "# Written by tests/harness/prepare-host.sh; exported as CONTAINERS_CONF."
  echo "[containers]"
  echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
  if [[ $fstype != cgroup2fs ]]; then
    # A v1 or hybrid host gives a container's systemd only the legacy cgroup
    # hierarchy, where it never learns that a unit's cgroup emptied (no release
    # agent in a container): a crashed main process with children left then
    # waits out TimeoutStopSec before its restart. Real hosts run cgroup v2.
    # Each container gets a cgroup namespace of its own and the right to mount
    # its part of the unified hierarchy, which the image's onebox-init does
    # before it starts systemd (Podman's default capabilities plus SYS_ADMIN).
    echo "cgroupns = \"private\""
    echo "default_capabilities = [\"CHOWN\", \"DAC_OVERRIDE\", \"FOWNER\", \"FSETID\", \"KILL\", \"NET_BIND_SERVICE\","
    echo "  \"SETFCAP\", \"SETGID\", \"SETPCAP\", \"SETUID\", \"SYS_CHROOT\", \"SYS_ADMIN\"]"
  fi
  echo "[engine]"
  [[ -n $runtime ]] && echo "runtime = \"$runtime\""
  echo "cgroup_manager = \"cgroupfs\""
  echo "events_logger = \"file\""
} > "$conf.new"
mv "$conf.new" "$conf"
export CONTAINERS_CONF=$conf
log "cgroup fs: $fstype; runtime: ${runtime:-default}; ulimits nofile=$nofile nproc=$nproc"

# --- image -----------------------------------------------------------------
if [[ $image != "$repo":* ]] && podman image exists "$image"; then
  # An image of the user's own making: used as it is.
  log "image $image present (ONEBOX_TEST_IMAGE, not built here)"
  echo "$conf"
  exit 0
fi
if podman image exists "$built"; then
  log "image $built present (cached)"
else
  log "building $built with debootstrap (a few minutes)"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  # The tree lives on a tmpfs of its own where the host allows one: dpkg syncs
  # every file it unpacks, which a busy disk makes slow, and the tree is thrown
  # away after the import anyway.
  mount -t tmpfs -o size=4g,mode=0755 onebox-rootfs "$rootfs" 2>/dev/null \
    || log "no tmpfs for the image tree, building it on disk"
  trap 'umount -R "$rootfs" 2>/dev/null; rm -rf "$rootfs"' EXIT
  include=$(IFS=,; echo "${image_packages[*]}")
  debootstrap --variant=minbase --include="$include" \
    "$suite" "$rootfs" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
  for u in "${masked_units[@]}"; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$u"
  done
  # No SSH host keys in the image (every container would share them): each
  # container generates its own at first boot, before sshd checks its config.
  rm -f "$rootfs"/etc/ssh/ssh_host_*
  mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
  cat > "$rootfs/etc/systemd/system/ssh.service.d/onebox-host-keys.conf" <<'UNIT'
# Written by tests/harness/prepare-host.sh: the image ships no host keys.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
  # PID 1: systemd, after giving it a unified cgroup hierarchy when the host
  # has none to offer (see onebox-init).
  install -m 0755 "$here/onebox-init" "$rootfs/usr/local/sbin/onebox-init"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/usr/local/sbin/onebox-init"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' --change "LABEL onebox.image=$built" - "$built" >/dev/null
  log "built $built"
fi
# ONEBOX_TEST_IMAGE names the current build (moved off a stale one).
if [[ $image != "$built" ]]; then
  want=$(podman image inspect --format '{{.Id}}' "$built")
  have=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  if [[ $have != "$want" ]]; then
    podman tag "$built" "$image"
    log "tagged $built as $image${have:+ (was ${have:0:12}, built from another package list)}"
  fi
fi
echo "$conf"
