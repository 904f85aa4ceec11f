#!/bin/sh
# mailstead-firstboot.service: the root-owned part of the first boot of a data partition.
#   /var/lib/mailstead          root 0755   (the data partition)
#     data/                     mailstead 0700: paths.data_dir (mailstead.db, mail, queue, tls)
#     .system/ssh/              root 0700: SSH host keys (sshd is off until the admin enables it)
#     .system/clamav/           clamav: ClamAV's signature database (bound to /var/lib/clamav)
#     hooks/                    root 0755: the admin's firmware hooks (hooks.admin_dir)
# Then the `first-boot` firmware hooks run (firmware-hooks/README.md).
# Idempotent; the last step marks it done so the unit's condition skips it next time.
set -eu
D=/var/lib/mailstead
umask 022
chown root:root "$D"
chmod 0755 "$D"
install -d -m 2700 -o mailstead -g mailstead "$D/data"   # setgid: appliance/datadir.py
install -d -m 0755 -o root -g root "$D/.system"
install -d -m 0700 -o root -g root "$D/.system/ssh"
install -d -m 0755 -o root -g root "$D/.system/ssh/authorized_keys"
install -d -m 0755 -o clamav -g clamav "$D/.system/clamav"
install -d -m 0755 -o root -g root "$D/hooks"
for type in ed25519 rsa; do
    key=$D/.system/ssh/ssh_host_${type}_key
    [ -f "$key" ] || ssh-keygen -q -t "$type" -N '' -C "mailstead host key" -f "$key"
done
/opt/mailstead/venv/bin/python -m appliance.update.hooks \
    --config /etc/mailstead/mailstead.toml first-boot \
    || echo "mailstead-firstboot: a first-boot hook failed (see the journal)"
touch "$D/.system/firstboot-done"
echo "mailstead-firstboot: data partition prepared, SSH host keys made"
