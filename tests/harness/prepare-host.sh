#!/usr/bin/env bash
# Make this machine ready to run the collection's systemd test containers.
#
#  * installs podman, runc, debootstrap and wrk from Debian when they are missing;
#  * writes a project-local containers.conf (runtime + ulimits) that every make
#    target exports as CONTAINERS_CONF, so the host's own podman config is untouched;
#  * builds and caches a Debian bookworm image with systemd as PID 1.
#
# Idempotent: a second run does nothing but print what it found.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${ONEBOX_CACHE_DIR:-$top/.cache}
image=${ONEBOX_TEST_IMAGE:-localhost/onebox-systemd:bookworm}
conf=$cache/containers.conf
mkdir -p "$cache"

log() { printf 'prepare-host: %s\n' "$*" >&2; }

# --- packages --------------------------------------------------------------
missing=()
for pair in podman:podman runc:runc debootstrap:debootstrap wrk:wrk \
            systemd-analyze:systemd python3:python3 make:make; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
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
  echo "[engine]"
  [[ -n $runtime ]] && echo "runtime = \"$runtime\""
  echo "cgroup_manager = \"cgroupfs\""
  echo "events_logger = \"file\""
} > "$conf.new"
mv "$conf.new" "$conf"
export CONTAINERS_CONF=$conf
log "cgroup fs: $fstype; runtime: ${runtime:-default}; ulimits nofile=$nofile nproc=$nproc"

# --- image -----------------------------------------------------------------
if podman image exists "$image"; then
  log "image $image present (cached)"
else
  log "building $image with debootstrap (about a minute)"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,python3,dbus,curl,procps,iproute2,wrk,ca-certificates \
    bookworm "$rootfs" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
  # Trim units that make no sense in a container and slow the boot.
  for u in systemd-resolved.service systemd-timesyncd.service getty@tty1.service \
           apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$u"
  done
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' - "$image" >/dev/null
  log "built $image"
fi
echo "$conf"
