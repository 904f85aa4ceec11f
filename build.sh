#!/usr/bin/env bash
# Mailstead build script: the one entry point for newcomers, developers and CI.
#
#   ./build.sh run     start the appliance in dev mode on loopback (data in ./var/)
#   ./build.sh test    install what the tests need and run the whole suite
#   ./build.sh image   build the appliance disk image into out/ (root; image/README.md)
#   ./build.sh image-test  boot out/'s image in qemu and check it from the host
#                      (--update: then the signed A/B update and rollback, issue 9)
#   ./build.sh help    this text
#
# Works on a fresh Debian 12 with only python3: it installs python3-venv (and the Debian
# packages the tests use) with apt-get when it runs as root, and everything else with pip
# into ./.venv. Every step is idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=$ROOT/.venv
PY=$VENV/bin/python
DEV_DATA=$ROOT/var
TEST_DEBS=(swaks libnet-ssleay-perl knot curl isync smartmontools mdadm chromium chromium-driver pebble nftables systemd iproute2 fdisk dosfstools mtools e2fsprogs shellcheck)   # swaks (+ its STARTTLS), Knot DNS for test zones, Pebble (a test ACME CA), IMAP clients (curl, mbsync), the hardware monitor's tools (smartctl, mdadm), headless chromium + chromedriver (console browser test), nft, systemd-analyze, ip and sfdisk (the image definition tests), mkfs.vfat, mtools and mkfs.ext4 (the updater's small real disk images), shellcheck (the shipped firmware hooks)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

apt_install() {
    # Install Debian packages that are missing; needs root (or says what to run).
    local missing=()
    command -v dpkg-query >/dev/null || die "not a Debian system: install $* yourself"
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
    fi
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    }
}

python_bin() {
    # The interpreter for the venv: python3 >= 3.11.
    command -v python3 >/dev/null || die "python3 is required (apt-get install python3)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11 or newer is required, found $(python3 --version)"
    echo python3
}

ensure_venv() {
    # Create ./.venv and install the project (with extras "$1", may be empty) when needed.
    local extras=$1 python stamp want
    python=$(python_bin)
    if [ ! -x "$PY" ]; then
        if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$python" -m venv "$VENV" || die "cannot create $VENV"
        fi
    fi
    stamp=$VENV/.mailstead-installed
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) ${extras:-none}"
    if [ -f "$stamp" ] && { [ "$(cat "$stamp")" = "$want" ] \
            || { [ -z "$extras" ] && grep -q "^${want%% *} " "$stamp"; }; }; then
        return 0
    fi
    say "installing Mailstead${extras:+ with [$extras]} into .venv"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
    echo "$want" > "$stamp"
}

cmd_run() {
    ensure_venv ""
    local config=$DEV_DATA/mailstead.toml code pids public status=0
    "$VENV/bin/mailstead" dev-init "$DEV_DATA"
    code=$("$VENV/bin/mailstead" --config "$config" console setup-code 2>/dev/null) \
        || code="(none: an admin exists, log in instead)"
    # The public listeners' dev ports come from dev-init; a ./var/ made before them would
    # fall back to the appliance's 80 and 8443.
    public="https://127.0.0.1:4430/ and http://127.0.0.1:8000/ (self-signed)"
    grep -q '^public_web_port' "$config" \
        || public="not started: ./var/ predates it (delete ./var/ to start afresh)"
    cat <<EOF

Mailstead dev engine (data in ./var/, settings in ./var/mailstead.toml)
  SMTP MX     127.0.0.1:2525  (STARTTLS with a self-signed certificate)
  submission  127.0.0.1:5870 (STARTTLS) and 127.0.0.1:4650 (TLS), AUTH PLAIN/LOGIN
  IMAP        127.0.0.1:1430 (STARTTLS) and 127.0.0.1:9930 (TLS), LOGIN or AUTHENTICATE
  POP3        127.0.0.1:1100 (STLS) and 127.0.0.1:9950 (TLS)
  CalDAV/CardDAV http://127.0.0.1:5232/  (dev mode: plain HTTP, loopback only; log in as an
              account, e.g. postmaster@example.test; /<address>/calendar/, /<address>/contacts/)
  queue       ./.venv/bin/mailstead queue list
  accounts    ./.venv/bin/mailstead account list   (domain example.test)

Web console   http://127.0.0.1:8080/   (dev mode: plain HTTP, loopback only)
  setup code  $code
Public paths  $public
  what the internet sees: ACME challenges, autoconfig, Autodiscover, MTA-STS; 404 else

Send a test message from another terminal:
  swaks --server 127.0.0.1:2525 --to postmaster@example.test
  python3 -c 'import smtplib; smtplib.SMTP("127.0.0.1", 2525).sendmail("me@example.org", ["postmaster@example.test"], "Subject: hi\r\n\r\nhello\r\n")'
It lands in ./var/mail/example.test/postmaster/new/. Stop the engine and console with Ctrl-C.

EOF
    # The console, DAV and the public listeners run beside the engine and stop with it.
    "$VENV/bin/mailstead" --config "$config" console serve &
    pids=$!
    "$VENV/bin/mailstead" --config "$config" dav serve &
    pids="$pids $!"
    if [ "${public#not started}" = "$public" ]; then
        "$VENV/bin/mailstead" --config "$config" console serve --public &
        pids="$pids $!"
        "$VENV/bin/mailstead" --config "$config" console serve --public-http &
        pids="$pids $!"
    fi
    # shellcheck disable=SC2064  # the pids are fixed now; the trap runs after this function
    trap "kill -TERM $pids 2>/dev/null; wait $pids 2>/dev/null" EXIT
    "$VENV/bin/mailstead" --config "$config" run || status=$?
    return "$status"
}

cmd_test() {
    apt_install "${TEST_DEBS[@]}"
    ensure_venv "test"
    cd "$ROOT"
    local status=0
    say "ruff"
    "$VENV/bin/ruff" check . || status=1
    say "mypy"
    "$VENV/bin/mypy" || status=1
    say "pytest"
    "$VENV/bin/pytest" "$@" || status=$?
    return "$status"
}

IMAGE_TEST_DEBS=(qemu-system-x86 qemu-utils ovmf e2fsprogs fdisk mtools openssh-client)   # TCG boot under UEFI; debugfs, sfdisk for the probe; mtools: --update reads the ESP and bundles N+1, N+2; ssh and ssh-keygen for the SSH checks

cmd_image() {
    # The whole build is image/build-image.sh (it installs its own tools with apt).
    [ "$(id -u)" -eq 0 ] || die "./build.sh image needs root (chroot and bind mounts)"
    bash "$ROOT/image/build-image.sh" "$@"
}

cmd_image_test() {
    # Boots the image that `./build.sh image` made (building it first if there is none).
    local version img
    version=$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")
    img=$ROOT/out/mailstead-$version-amd64.img
    [ -f "$img" ] || cmd_image
    apt_install "${IMAGE_TEST_DEBS[@]}"
    python3 "$ROOT/tests/image/vm_checks.py" "$img" "$@"
}

case "${1:-help}" in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    image) shift; cmd_image "$@" ;;
    image-test) shift; cmd_image_test "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
