#!/bin/sh
# In-guest checks of `./build.sh image-test`. vm_checks.py writes this script and a unit
# that runs it into root-a of the *test copy* of the image (debugfs); the shipped image has
# neither. Each result is one line on the second serial port (the host reads probe.log):
#   PROBE ok|fail NAME DETAIL      and      PROBE-STEP NAME (the host acts, e.g. NVMe fault)
# then PROBE-END. The md RAID steps wait for the host's console set-up (setup_done), so
# postmaster's mailbox exists when the monitor mails the alert.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
MS="/opt/mailstead/venv/bin/mailstead --config /etc/mailstead/mailstead.toml"
T=/run/probe; mkdir -p $T
result() { echo "PROBE $1 $2 $(tr '\n' ' ' < $T/out | cut -c1-400)"; }
check() { name=$1; shift; if "$@" > $T/out 2>&1; then result ok "$name"; else result fail "$name"; fi; }

root_read_only() {
    findmnt -no OPTIONS / | grep -q '^ro' || { echo "/ is not ro"; return 1; }
    if touch /probe-write 2>/dev/null; then echo "wrote to /"; return 1; fi
    findmnt -no SOURCE,OPTIONS /
}
UNITS="mailstead-engine mailstead-console mailstead-console-public mailstead-console-http mailstead-dav
       mailstead-monitor mailstead-welcome mailstead-firstboot nftables"
units_state() {
    bad=0
    for u in $UNITS; do
        state=$(systemctl is-active $u); printf '%s=%s ' $u "$state"
        [ "$state" = active ] || bad=1
    done
    return $bad
}
units_active() {
    # all of them active within the boot budget: under TCG the three gunicorns and the
    # monitor may still be starting (or waiting out a restart) when the probe begins
    for i in $(seq 1 60); do
        if units_state > $T/units; then cat $T/units; echo "(after ${i}x3 s)"; return 0; fi
        sleep 3
    done
    cat $T/units; echo
    for u in $UNITS; do
        [ "$(systemctl is-active $u)" = active ] \
            || systemctl status --no-pager -n 8 $u 2>&1 | tr '\n' '|'
    done
    return 1
}
data_grown() {
    size=$(df -B1 --output=size /var/lib/mailstead | tail -1)
    echo "data partition $size bytes"
    [ "$size" -gt 2000000000 ]
}
security_scores() {
    bad=0
    for u in engine console console-public console-http dav monitor welcome firstboot; do
        score=$(systemd-analyze security --no-pager mailstead-$u.service | awk '/Overall exposure/ {print $(NF-2)}')
        echo "$u=$score"
        awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || bad=1
    done
    return $bad
}
root_processes() {
    # root may run: PID 1, kernel threads, journald, udevd (and the "(udev-worker)" children
    # it forks per event, systemd >= 252), logind, agetty, this probe, and sshd once the
    # admin has enabled SSH in the console (the host may have done so by now)
    ps -eo user:16=,pid=,ppid=,comm= | awk '$1 == "root" && $2 != 2 && $3 != 2 {print $4}' \
        | sort -u > $T/root
    grep -vxE 'systemd|systemd-journal|systemd-udevd|\(udev-worker\)|systemd-logind|agetty|guest_probe.sh|sh|ps|awk|sort|mdadm|\(sd-pam\)|probe|sshd' \
        $T/root > $T/extra || true
    echo "root: $(tr '\n' ' ' < $T/root)"
    [ ! -s $T/extra ] || { echo "unexpected: $(tr '\n' ' ' < $T/extra)"; return 1; }
}
mailstead_not_root() {
    # (root's own oneshots are left out: `firewall apply` and `ssh apply` run as root by
    # design, image/README.md, and may be caught running when the console saved a change)
    ps -eo user:16=,args= | grep -E 'mailstead|gunicorn' \
        | grep -v -E 'grep|guest_probe|mailstead.toml (firewall|ssh) apply' | tee $T/ms
    ! awk '$1 == "root"' $T/ms | grep -q .
}
firewall_loaded() {
    nft list chain inet mailstead input | grep -q 'policy drop' && nft list set inet mailstead mail_ports
}
firewall_lan() {
    # mailstead-firewall.service loaded console.allowed_networks (its default: the private
    # ranges) into lan4; its path unit waits for the console's next change
    result=$(systemctl show -p Result --value mailstead-firewall.service)
    echo "mailstead-firewall: $result; path $(systemctl is-active mailstead-firewall.path)"
    nft list set inet mailstead lan4 | tr -s ' \n' ' ' | tee $T/lan4; echo
    [ "$result" = success ] && grep -q '192.168.0.0/16' $T/lan4 \
        && [ "$(systemctl is-active mailstead-firewall.path)" = active ]
}
updater_units() {
    # the commit step ran at boot (nothing pending on a first boot), the daily timer and the
    # console's request path unit wait; each root unit scores <= 2.0 at run time too
    bad=0
    for u in mailstead-update-commit.service mailstead-update.timer \
            mailstead-update-request.path; do
        state=$(systemctl is-active $u); echo "$u=$state"
        [ "$state" = active ] || bad=1
    done
    for u in update update-commit update-request firewall; do
        score=$(systemd-analyze security --no-pager mailstead-$u.service | awk '/Overall exposure/ {print $(NF-2)}')
        echo "$u=$score"
        awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || bad=1
    done
    mountpoint -q /efi && ls /efi/loader/entries || bad=1
    return $bad
}
health() { runuser -u mailstead -- $MS health --json > $T/health.json 2>$T/health.err; }
md_state() {   # $1: the state the monitor must show for md0
    health
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); a=[x for x in d["arrays"] or [] if x["name"]=="md0"]; print(a[0]["state"] if a else "no md0", d["overall"]); sys.exit(not a or a[0]["state"]!=sys.argv[2])' $T/health.json "$1"
}
md_create() {
    echo 2000000 > /proc/sys/dev/raid/speed_limit_min
    mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 /dev/sda /dev/sdb &&
    mdadm --wait /dev/md0; cat /proc/mdstat
}
md_fail() { mdadm /dev/md0 --fail /dev/sdb && cat /proc/mdstat; }
alert_recorded() {   # the running monitor has recorded an alert that mentions $1
    for i in $(seq 1 60); do
        health
        if python3 - "$T/health.json" "$1" <<'PY'
import json, sys
alerts = json.load(open(sys.argv[1]))["alerts"]
hits = [a for a in alerts if sys.argv[2].lower() in json.dumps(a).lower()]
print([a.get("title") or a.get("key") for a in hits])
sys.exit(not hits)
PY
        then return 0; fi
        sleep 5
    done
    echo "no alert mentioning $1 after 300 s"; return 1
}
nvme_failing() {
    for i in $(seq 1 30); do
        smartctl -H /dev/nvme0 > $T/nvme 2>&1; rc=$?
        if [ $((rc & 8)) -ne 0 ]; then grep -i "overall\|FAILED" $T/nvme; return 0; fi
        sleep 2
    done
    cat $T/nvme; return 1
}
refused_counted() {
    nft list counter inet mailstead refused | grep -o 'packets [0-9]*' | tee $T/c
    ! grep -qx 'packets 0' $T/c
}

# The public web listeners (webui/public.py). An ACME HTTP-01 token is written the way the
# ACME client does (as mailstead, under data/acme/challenges/) and fetched from inside:
# port 80 in plain HTTP, and 8443 (the public HTTPS listener) with the MTA-STS policy of
# the wizard's domain and a 404 for the console's login page. Then the host fetches it
# through its forward of port 80 (PROBE-STEP public-web-token) and the probe waits for
# that request in the listener's access log. The host's forwards come from slirp's
# 10.0.2.2, a LAN address (lan4): so the host sees the LAN's 443 (the whole console);
# the internet's 443 (the redirect to 8443) is checked in network namespaces instead
# (tests/image/test_public_web_firewall.py). Port 80 is the same for everyone.
ACME_TOKEN=image-test-probe-token-0123456789abcdefghij
CHALLENGES=/var/lib/mailstead/data/acme/challenges
public_web_local() {
    runuser -u mailstead -- mkdir -p $CHALLENGES &&
    runuser -u mailstead -- sh -c "printf '%s' '$ACME_TOKEN.probe-key' > $CHALLENGES/$ACME_TOKEN" ||
        return 1
    python3 - "$ACME_TOKEN" <<'PY'
import http.client, socket, ssl, sys, time
token = sys.argv[1]
# "active" is only "started" for these units: under TCG gunicorn needs a while to listen
deadline = time.monotonic() + 300
for port in (80, 8443):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"nothing listens on {port} after 300 s")
            time.sleep(2)
conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
conn.request("GET", f"/.well-known/acme-challenge/{token}")
reply = conn.getresponse()
body = reply.read()
assert (reply.status, body) == (200, f"{token}.probe-key".encode()), (reply.status, body)
context = ssl._create_unverified_context()      # the wizard's self-signed certificate
conn = http.client.HTTPSConnection("127.0.0.1", 8443, timeout=10, context=context)
conn.request("GET", "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.test"})
reply = conn.getresponse()
body = reply.read()
assert reply.status == 200 and body.startswith(b"version: STSv1"), (reply.status, body[:80])
conn = http.client.HTTPSConnection("127.0.0.1", 8443, timeout=10, context=context)
conn.request("GET", "/login")
reply = conn.getresponse()
assert reply.status == 404, reply.status
print("80: ACME token served; 8443: MTA-STS policy served, /login 404")
PY
}
public_web_host_fetched() {
    found=1
    for i in $(seq 1 90); do
        # (not the probe's own request from 127.0.0.1 above)
        if journalctl -u mailstead-console-http --no-pager -o cat 2>/dev/null \
                | grep "acme-challenge/$ACME_TOKEN" | grep -v '^127\.0\.0\.1 ' > $T/fetched; then
            echo "host's request: $(tail -1 $T/fetched)"; found=0; break
        fi
        sleep 2
    done
    # the token stays: the host may fetch it again (a retry, or the probe run again after
    # an update's reboot), and this disk is thrown away after the test
    [ $found -eq 0 ] || echo "the host did not fetch the token within 180 s"
    return $found
}

setup_done() {
    # the host drives the console's wizard and admin pages meanwhile; the last thing it
    # saves is the greylist section (tests/image/console_driver.py: offline_settings)
    for i in $(seq 1 120); do
        if python3 - /var/lib/mailstead/data/mailstead.db > $T/setup 2>&1 <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
row = db.execute("SELECT value FROM settings WHERE key = 'greylist.enabled'").fetchone()
n = db.execute("SELECT count(*) FROM accounts").fetchone()[0]
print(f"greylist.enabled={row[0] if row else None} accounts={n}")
sys.exit(row is None)
PY
        then cat $T/setup; return 0; fi
        sleep 5
    done
    cat $T/setup; echo "the host's set-up did not finish within 600 s"; return 1
}
engine_restarted() {
    # the engine reads mailstead.db's settings (hostname, greylist, antivirus) and the
    # wizard's certificate at start
    systemctl restart mailstead-engine || return 1
    for i in $(seq 1 60); do
        if python3 -c 'import socket
for port in (25, 465, 587, 993):
    socket.create_connection(("127.0.0.1", port), timeout=5).close()' 2>/dev/null; then
            systemctl is-active mailstead-engine; return 0
        fi
        sleep 2
    done
    systemctl status --no-pager mailstead-engine | tail -5; return 1
}

fast_monitor() {
    # test setting: the monitor polls every 30 s instead of 300 (the minimum the schema
    # allows), through the environment override of a runtime drop-in, gone at reboot
    mkdir -p /run/systemd/system/mailstead-monitor.service.d
    printf '[Service]\nEnvironment=MAILSTEAD_MONITOR__POLL_INTERVAL=30\n' \
        > /run/systemd/system/mailstead-monitor.service.d/probe.conf
    systemctl daemon-reload && systemctl restart mailstead-monitor && sleep 5 &&
    systemctl is-active mailstead-monitor
}

check root-read-only root_read_only
check units-active units_active
check data-partition-grown data_grown
check security-scores security_scores
check root-processes root_processes
check mailstead-not-root mailstead_not_root
check firewall-loaded firewall_loaded
check firewall-refusals-counted refused_counted
check firewall-lan-from-settings firewall_lan
check updater-units updater_units
check setup-done-by-host setup_done
check public-web-local public_web_local
echo "PROBE-STEP public-web-token $ACME_TOKEN"
check public-web-host-fetched public_web_host_fetched
check engine-restarted-with-setup engine_restarted
echo "PROBE-STEP setup-applied"
check monitor-poll-30s fast_monitor
check md-raid1-created md_create
check monitor-md-healthy md_state clean
check md-member-failed md_fail
check monitor-md-degraded md_state degraded
check monitor-md-alert alert_recorded md0
echo "PROBE-STEP nvme-warning"
check nvme-critical-warning-seen nvme_failing
check monitor-nvme-alert alert_recorded nvme
echo "PROBE-END"
