# Everything a deploy may touch on a host, as text: files (path, size, mode,
# owner, mtime), accounts, and the units this collection wrote with their
# states. Run on the host (podman exec ... sh -c "$(cat snapshot.sh)"); the
# fresh-host check step and the tests' snapshot fixture compare two of these.
# A socket's sub-state `running` is written as `listening`: both mean bound and
# accepting, and a socket whose Service= unit is not the instance serving
# (strategy overlap) turns `running` on the next connection systemd sees,
# whoever makes it (a probe, a check-mode report), while starting nothing.
find /srv /etc/onebox /etc/systemd/system /var/log/onebox /var/lib/onebox-traefik /etc/traefik \
  -printf '%p %s %m %u %T@\n' 2>/dev/null | sort
getent passwd | sort
getent group | sort
for f in $(grep -l 'Managed by onebox.deploy' /etc/systemd/system/*.socket /etc/systemd/system/*.service \
           2>/dev/null); do
  u=${f##*/}
  systemctl list-units --all --no-legend --plain "${u%%.*}.*" "${u%%@*}@*"
done | awk '{ if ($1 ~ /[.]socket$/ && $4 == "running") $4 = "listening"; print $1, $3, $4 }' | sort -u
