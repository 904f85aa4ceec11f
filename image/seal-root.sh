#!/bin/sh
# Runs inside the image's root tree (chroot) after the overlay is copied: users, enabled
# and masked units, and the clean-up that makes the tree a read-only, host-free root.
# Called by build-image.sh as `chroot ROOT /bin/sh -s < seal-root.sh`.
set -eu

# -- users: one unprivileged user for the engine, the console and the monitor
getent group mailstead >/dev/null || groupadd --system mailstead
getent passwd mailstead >/dev/null || useradd --system --gid mailstead \
    --home-dir /var/lib/mailstead/data --no-create-home --shell /usr/sbin/nologin mailstead
# no password logins at all (root's password locked; console login needs the admin to
# enable SSH keys in the web console)
usermod --password '!' root
passwd --lock root >/dev/null

# -- units
# (systemd-repart.service is in sysinit.target.wants already; it grows the data partition)
systemctl enable --quiet systemd-networkd.service systemd-networkd-wait-online.service \
    systemd-resolved.service nftables.service clamav-daemon.service clamav-freshclam.service \
    mailstead-firstboot.service mailstead-welcome.service mailstead-engine.service \
    mailstead-console.service mailstead-console-public.service \
    mailstead-console-http.service mailstead-dav.service mailstead-monitor.service \
    mailstead-daily.timer
# the A/B updater (issue 9): judge a new slot after each boot; check for releases daily
systemctl enable --quiet mailstead-update-commit.service mailstead-update.timer \
    mailstead-update-request.path
# the admin's LAN (console.allowed_networks) into the firewall's sets, at boot and on change
systemctl enable --quiet mailstead-firewall.service mailstead-firewall.path mailstead-ssh.service mailstead-ssh.path
# SSH stays off until the admin enables it in the console
systemctl disable ssh.service >/dev/null 2>&1 || true
systemctl mask ssh.socket >/dev/null 2>&1 || true
# no unattended apt runs: updates come as whole images through the A/B updater (issue 9);
# the root is read-only anyway
systemctl mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service \
    apt-daily-upgrade.service >/dev/null 2>&1 || true
# clamonacc (on-access scanning as root) is not used: mail is scanned through clamd's socket
systemctl mask --quiet clamav-clamonacc.service
# the read-only root has nothing for these to do
systemctl mask e2scrub_all.timer e2scrub_reap.service fstrim.timer >/dev/null 2>&1 || true

# -- host keys are made per appliance on first boot, on the data partition
rm -f /etc/ssh/ssh_host_*

# -- nothing of the build host stays in the image: no mirror, no package lists
printf '# Mailstead updates come as whole images (A/B slots); apt is not used on the appliance.\n' \
    > /etc/apt/sources.list
rm -rf /etc/apt/sources.list.d/* /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
    /var/log/* /tmp/* /var/tmp/* /root/.cache
mkdir -p /var/lib/apt/lists/partial

# -- per-machine identity: made at each boot (read-only root: kept in /run)
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -sf /etc/machine-id /var/lib/dbus/machine-id
rm -f /var/lib/systemd/random-seed

# -- mount points and the read-only root
mkdir -p /var/lib/mailstead /var/lib/clamav /efi
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
echo "sealed"
