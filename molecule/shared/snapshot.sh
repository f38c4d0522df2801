# Everything a deploy may touch on a host, as text: files (path, size, mode,
# owner, mtime), accounts, and the units this collection wrote with their
# states. Run on the host (podman exec ... sh -c "$(cat snapshot.sh)"); the
# fresh-host check step and the tests' snapshot fixture compare two of these.
find /srv /etc/onebox /etc/systemd/system /var/log/onebox /var/lib/onebox-traefik /etc/traefik \
  -printf '%p %s %m %u %T@\n' 2>/dev/null | sort
getent passwd | sort
getent group | sort
for f in $(grep -l 'Managed by onebox.deploy' /etc/systemd/system/*.socket /etc/systemd/system/*.service \
           2>/dev/null); do
  u=${f##*/}
  systemctl list-units --all --no-legend --plain "${u%%.*}.*" "${u%%@*}@*"
done | awk '{print $1, $3, $4}' | sort -u
