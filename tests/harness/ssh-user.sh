#!/usr/bin/env bash
# Make a test container reachable the way users connect: an unprivileged user
# with passwordless sudo, over SSH with the tests' key (ssh-key.sh).
# Usage: ssh-user.sh CONTAINER [USER]   (runs through podman exec, as root)
set -euo pipefail
name=$1 user=${2:-deploy}
key=$(bash "$(dirname "$0")/ssh-key.sh").pub
podman exec -i "$name" sh -ec "
  id -u $user >/dev/null 2>&1 || useradd --create-home --shell /bin/bash $user
  install -d -m 0700 -o $user -g $user /home/$user/.ssh
  cat > /home/$user/.ssh/authorized_keys
  chown $user: /home/$user/.ssh/authorized_keys
  chmod 0600 /home/$user/.ssh/authorized_keys
  printf '%s ALL=(ALL) NOPASSWD: ALL\n' $user > /etc/sudoers.d/onebox-tests
  chmod 0440 /etc/sudoers.d/onebox-tests
  systemctl enable --now ssh.service >/dev/null 2>&1
" < "$key"
