#!/bin/sh
# In-guest half of `vm_checks.py --update` (tests/image/update_checks.py). The host writes
# this script and a unit that runs it at every boot into root-a of the test copy (version
# N) and of the N+1 and N+2 images it bundles, so it runs in whichever slot booted. It
# reports on the second serial port like guest_probe.sh (after that probe's PROBE-END):
#   PROBE ok|fail NAME DETAIL        PROBE-STEP update-boot SLOT VERSION
# then asks the host what to do next over the update server's address (10.0.2.100, qemu's
# guestfwd to the host's test HTTPS server): "update" starts mailstead-update.service
# (check, download, install, reboot: what the timer does), "end" prints UPDATE-END.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
MS="/opt/mailstead/venv/bin/mailstead --config /etc/mailstead/mailstead.toml"
CA=/usr/share/mailstead/update/ca.pem
T=/run/update-probe; mkdir -p $T
one_line() { tr '\n' ' ' < "$1" | cut -c1-${2:-600}; }

$MS update status --json > $T/status.json 2>&1
read -r SLOT VERSION <<EOF
$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["booted_slot"], d["running_version"])' $T/status.json 2>/dev/null)
EOF
echo "PROBE-STEP update-boot ${SLOT:-?} ${VERSION:-?}"
echo "PROBE ok update-status-$SLOT-$VERSION $(one_line $T/status.json 3000)"
ls /efi/loader/entries > $T/entries 2>&1
echo "PROBE ok esp-entries-$SLOT-$VERSION $(one_line $T/entries)"
# what the commit step of this boot did (nothing, committed, rolled back)
systemctl show -p ActiveState -p Result mailstead-update-commit.service > $T/commit 2>&1
journalctl -b -u mailstead-update-commit.service --no-pager -o cat 2>&1 | tail -8 >> $T/commit
echo "PROBE ok commit-unit-$SLOT-$VERSION $(one_line $T/commit 900)"

ask() {   # the host's next instruction: wait, update or end
    python3 - "$CA" "$SLOT" "$VERSION" <<'PY' 2>/dev/null || echo wait
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
url = f"https://10.0.2.100/probe/next?slot={sys.argv[2]}&version={sys.argv[3]}"
print(urllib.request.urlopen(url, timeout=20, context=context).read().decode().strip())
PY
}
update_run() {
    # as the timer would: the unit, as root, in its sandbox; it reboots when it installed
    systemctl start --no-block mailstead-update.service || return 1
    for i in $(seq 1 720); do
        sleep 5
        state=$(systemctl show -p ActiveState --value mailstead-update.service)
        # where the time goes (download, write, verify): the unit's newest log line
        [ $((i % 6)) -eq 0 ] && echo "PROBE-STEP update-progress $(journalctl -b -u \
            mailstead-update.service --no-pager -o cat 2>&1 | tail -1 | cut -c1-200)" >&3
        case "$state" in
            activating|active) ;;
            *) journalctl -b -u mailstead-update.service --no-pager -o cat | tail -15
               echo "mailstead-update.service is $state and did not reboot"; return 1 ;;
        esac
    done
    echo "mailstead-update.service still runs after 3600 s"; return 1
}

for i in $(seq 1 1440); do
    case "$(ask)" in
        update)
            echo "PROBE-STEP update-started $SLOT $VERSION"
            if update_run 3>&1 > $T/run 2>&1; then :; else
                echo "PROBE fail update-run-$SLOT-$VERSION $(one_line $T/run 1500)"
            fi ;;
        end) break ;;
        *) sleep 5 ;;
    esac
done
echo "UPDATE-END"
