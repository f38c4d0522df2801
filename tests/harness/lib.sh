# shellcheck shell=bash
# Shared by demo.sh, the bench scripts and e2e-versions.sh (sourced, not run).

# Start a fresh systemd container NAME and wait until systemd has booted.
# Further arguments are options for podman run (e.g. --network NET).
onebox_container_up() {
  local name=$1 image=${ONEBOX_TEST_IMAGE:-localhost/onebox-systemd:bookworm} state
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman run -d --name "$name" --systemd=always "${@:2}" "$image" /usr/local/sbin/onebox-init >/dev/null
  for _ in $(seq 50); do
    state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && return 0
    sleep 0.2
  done
}

# The start of an inventory for container NAME (Podman connection, no become)
# with services of Type=TYPE; callers append more of `vars:`.
onebox_inventory_head() {
  local name=$1 type=$2
  cat <<INV
onebox:
  hosts:
    $name:
      ansible_connection: containers.podman.podman
      ansible_python_interpreter: /usr/bin/python3
  vars:
    onebox_become: false
    onebox_service_type: $type
INV
}

# Write an inventory for container NAME with the three reference-app sites
# (warm-ups 0.2, 0.5 and 0.8 s) and the given service type. Health ports are
# 10 apart: with the overlap strategy a site's second instance uses the next one.
onebox_three_sites_inventory() {
  local file=$1 name=$2 type=$3
  {
    onebox_inventory_head "$name" "$type"
    cat <<INV
    onebox_sites:
      - {name: blog, listen: "127.0.0.1:8001", health_listen: "127.0.0.1:19001", version: "1.0.0",
         artifact: files/reference-app, command: "bin/onebox-app --warmup 0.2"}
      - {name: shop, listen: "127.0.0.1:8002", health_listen: "127.0.0.1:19011", version: "1.0.0",
         artifact: files/reference-app, command: "bin/onebox-app --warmup 0.5"}
      - {name: wiki, listen: "127.0.0.1:8003", health_listen: "127.0.0.1:19021", version: "1.0.0",
         artifact: files/reference-app, command: "bin/onebox-app --warmup 0.8"}
INV
  } > "$file"
}
