#!/usr/bin/env bash
# Builds the Mailstead appliance image from the definition in image/ (issue 8):
#   out/mailstead-<version>-amd64.img        raw GPT disk image, sparse
#   out/mailstead-<version>-amd64.img.zst    compressed copy
#   out/mailstead-<version>-amd64.img.sha256, .img.zst.sha256
#   out/mailstead-<version>-amd64.manifest   Debian packages and Python wheels with versions
# Called by `./build.sh image`; needs root (chroot, bind mounts) and Debian's tools.
#
# Steps (each cached under out/cache/ where it can be):
#   1. base root tree: mmdebstrap of image/packages.txt from the host's apt mirror
#      (read from the host's apt sources now, never stored in the repository or the image)
#   2. wheels: image/requirements.lock (pinned, with hashes) downloaded on the host, and a
#      wheel of Mailstead built from this checkout
#   3. root tree: overlay, units, users, the venv installed offline in a chroot, sealed
#   4. disk: sfdisk (image/layout.sfdisk), mkfs.ext4 -d straight into each partition,
#      the ESP as a separate vfat file written with mtools -- no loop device, no mount
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT=${MAILSTEAD_IMAGE_OUT:-$ROOT/out}
# MAILSTEAD_IMAGE_CACHE: share the base tree and wheels of another output directory (the
# update test builds its N+1 and N+2 into a directory of its own from out/cache)
CACHE=${MAILSTEAD_IMAGE_CACHE:-$OUT/cache}
WORK=$OUT/work
SUITE=bookworm
ARCH=amd64
IMAGE_SIZE=${MAILSTEAD_IMAGE_SIZE:-3600M}
HOST_DEBS=(mmdebstrap fdisk e2fsprogs dosfstools mtools zstd systemd-boot-efi python3-venv)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'build-image.sh: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
T0=$(now)
lap() { say "$1 done in $(( $(now) - ${2:-$T0} )) s"; }

need_tools() {
    # Install the host tools with apt when root; otherwise name what is missing.
    local missing=() pkg
    for pkg in "${HOST_DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (run: sudo apt-get install --no-install-recommends ${missing[*]})"
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
            || die "cannot install ${missing[*]} with apt-get"
    }
}

check_tools() {
    local tool
    for tool in mmdebstrap sfdisk mkfs.ext4 mkfs.vfat mmd mcopy zstd chroot sha256sum python3; do
        command -v "$tool" >/dev/null || die "the tool '$tool' is missing (see HOST_DEBS in $0)"
    done
    [ -f /usr/lib/systemd/boot/efi/systemd-bootx64.efi ] \
        || die "systemd-bootx64.efi is missing (apt-get install systemd-boot-efi)"
}

host_sources() {
    # One-line apt sources for the target suites, taken from the host's apt configuration.
    python3 "$HERE/host_sources.py" "$SUITE"
}

packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/packages.txt" | tr -d ' ' | paste -sd, -; }

version() { python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml"; }

# -- 1. base root tree -------------------------------------------------------------------
base_tree() {
    # Prints the path of the cached base tree (a directory), building it when the package
    # list, the sources or this step changed.
    local sources key tree t
    sources=$(host_sources) || die "cannot read the host's apt sources"
    [ -n "$sources" ] || die "no apt source for $SUITE found in /etc/apt"
    key=$( { cat "$HERE/packages.txt"; echo "$sources"; echo base-v1; } | sha256sum | cut -c1-16)
    tree=$CACHE/base-$key
    if [ ! -d "$tree" ]; then
        rm -rf "$tree.part"
        t=$(now)
        say "mmdebstrap $SUITE ($(packages | tr ',' ' ' | wc -w) packages)"
        local mirrors=()
        while IFS= read -r line; do mirrors+=("$line"); done <<< "$sources"
        mkdir -p "$CACHE"
        # The configured mirror may be a dated snapshot: no Valid-Until check (the host's
        # apt does the same). Recommends off: only what packages.txt asks for.
        mmdebstrap --quiet --variant=minbase --arch="$ARCH" \
            --include="$(packages)" \
            --aptopt='Acquire::Check-Valid-Until "false"' \
            --aptopt='Acquire::Check-Date "false"' \
            --aptopt='APT::Install-Recommends "false"' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-include=/usr/share/locale/locale.alias' \
            "$SUITE" "$tree.part" "${mirrors[@]}" >&2 \
            || die "mmdebstrap failed (see above)"
        mv "$tree.part" "$tree"
        find "$CACHE" -maxdepth 1 -name 'base-*' ! -name "base-$key" -exec rm -rf {} +   # stale trees
        lap "base root tree" "$t"
    fi
    echo "$tree"
}

# -- 2. wheels -----------------------------------------------------------------------------
check_lock() {
    # Every dependency pyproject.toml names must be pinned in requirements.lock.
    python3 - "$ROOT/pyproject.toml" "$HERE/requirements.lock" <<'PY' \
        || die "image/requirements.lock is stale: run image/lock.sh and commit it"
import re, sys, tomllib
def norm(name): return re.sub(r"[-_.]+", "-", name).lower()
wanted = {norm(re.match(r"[A-Za-z0-9._-]+", d).group(0))
          for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]}
locked = {norm(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9._-]+)==", open(sys.argv[2]).read(), re.M)}
missing = sorted(wanted - locked)
if missing:
    print("not in image/requirements.lock:", " ".join(missing), file=sys.stderr)
sys.exit(1 if missing else 0)
PY
}

build_venv() {
    # The host-side venv that runs `pip wheel`. Debian's venv has pip and setuptools but not
    # `wheel`, without which the pure-Python sdists (authres, dkimpy, pyspf) cannot be built
    # on a fresh machine. A build tool of the host; nothing of it goes into the image.
    local venv=$1
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
    "$venv/bin/python" -c 'import wheel' 2>/dev/null && return 0
    PIP_CONFIG_FILE=/dev/null "$venv/bin/pip" --isolated install --quiet --disable-pip-version-check \
        --cert /etc/ssl/certs/ca-certificates.crt wheel >&2 \
        || die "cannot install 'wheel' into the build venv $venv"
}

wheelhouse() {
    # Prints the wheel directory: the lock's wheels (hash-checked) plus Mailstead's own.
    local key dir t venv=$CACHE/build-venv
    check_lock
    key=$(sha256sum "$HERE/requirements.lock" | cut -c1-16)
    dir=$CACHE/wheels-$key
    t=$(now)
    if [ ! -f "$dir/.complete" ]; then
        say "downloading the wheels of image/requirements.lock"
        rm -rf "$dir"; mkdir -p "$dir"
        build_venv "$venv"
        # --isolated: the host's pip configuration (extra indexes, constraints) must not
        # change what goes into the image; the lock alone decides, and every downloaded file
        # is checked against its hash. The few pure-Python sdists become wheels here.
        PIP_CONFIG_FILE=/dev/null "$venv/bin/pip" --isolated wheel --quiet --disable-pip-version-check \
            --cert /etc/ssl/certs/ca-certificates.crt --require-hashes --no-deps \
            -r "$HERE/requirements.lock" -w "$dir" >&2 \
            || die "pip wheel failed; if the project's dependencies changed, run image/lock.sh"
        # The offline install in the image names the same versions (the hashes were
        # checked above; a wheel built here from an sdist has a hash of its own).
        grep -o '^[a-z0-9._-]*==[^ ]*' "$HERE/requirements.lock" > "$dir/requirements.txt"
        touch "$dir/.complete"
        find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -name "wheels-$key" -exec rm -rf {} +
    fi
    # Mailstead itself, built from the checkout each time (cheap).
    rm -rf "$WORK/self"; mkdir -p "$WORK/self"
    build_venv "$venv"
    # MAILSTEAD_VERSION (a release build of another version, e.g. the update tests' N+1)
    # builds from a copy of the checkout with that version in pyproject.toml.
    local src=$ROOT
    if [ "$VERSION" != "$(version)" ]; then
        src=$WORK/src; rm -rf "$src"; mkdir -p "$src"
        tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./out --exclude=./var \
            --exclude='*/__pycache__' --exclude='*/.mypy_cache' -cf - . | tar -C "$src" -xf -
        sed -i "s/^version = \".*\"/version = \"$VERSION\"/" "$src/pyproject.toml"
    fi
    PIP_CONFIG_FILE=/dev/null "$venv/bin/pip" --isolated wheel --quiet --disable-pip-version-check --no-deps \
        --cert /etc/ssl/certs/ca-certificates.crt -w "$WORK/self" "$src" >&2 \
        || die "cannot build the Mailstead wheel"
    lap "wheels" "$t"
    echo "$dir"
}

# -- 3. root tree ----------------------------------------------------------------------------
MOUNTED=()
unmount_all() {
    local i
    for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
    MOUNTED=()
}
bind() { mkdir -p "$2"; mount --bind "$1" "$2"; MOUNTED+=("$2"); [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"; return 0; }

in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

root_tree() {
    local base=$1 wheels=$2 t
    t=$(now)
    R=$WORK/root
    rm -rf "$R"; mkdir -p "$R"
    cp -a "$base/." "$R/"
    trap unmount_all EXIT
    mount -t proc proc "$R/proc"; MOUNTED+=("$R/proc")
    bind /dev "$R/dev"
    bind "$wheels" "$R/mnt/wheels" ro
    bind "$WORK/self" "$R/mnt/self" ro
    say "installing Mailstead into /opt/mailstead/venv (offline)"
    in_root python3 -m venv /opt/mailstead/venv
    in_root /opt/mailstead/venv/bin/pip install --quiet --no-index --disable-pip-version-check \
        --no-cache-dir --find-links /mnt/wheels -r /mnt/wheels/requirements.txt >&2
    in_root /opt/mailstead/venv/bin/pip install --quiet --no-index --disable-pip-version-check \
        --no-cache-dir --no-deps "/mnt/self/$(basename "$(ls "$WORK"/self/mailstead-*.whl)")" >&2
    # The appliance never installs Python packages at run time (updates replace the whole
    # slot): pip and setuptools leave the venv, and with them a way to fetch code.
    in_root /opt/mailstead/venv/bin/python -m pip uninstall --quiet --yes pip setuptools >&2
    unmount_all
    trap - EXIT
    rmdir "$R/mnt/wheels" "$R/mnt/self"
    say "overlay, units and users"
    cp -a "$HERE/overlay/." "$R/"
    install -d -m 755 "$R/usr/lib/systemd/system"
    install -d -m 700 "$R/efi"          # the ESP's mount point (fstab): the root is read-only
    install -m 644 "$HERE"/systemd/*.service "$HERE"/systemd/*.timer "$HERE"/systemd/*.path \
        "$R/usr/lib/systemd/system/"
    # The image's firmware hooks (firmware-hooks/README.md): root-owned and not writable by
    # group or others, or the hook runner refuses them.
    install -d -m 755 "$R/usr/lib/mailstead"
    cp -a "$ROOT/firmware-hooks" "$R/usr/lib/mailstead/firmware-hooks"
    chown -R 0:0 "$R/usr/lib/mailstead/firmware-hooks"
    chmod -R go-w "$R/usr/lib/mailstead/firmware-hooks"
    cp "$ROOT/README.md" "$R/opt/mailstead/README.md"
    update_trust
    in_root /bin/sh -s < "$HERE/seal-root.sh" >&2
    lap "root tree" "$t"
}

update_trust() {
    # The release repository this image trusts (appliance/update/README.md): its root.json
    # (MAILSTEAD_UPDATE_ROOT, e.g. the publisher's metadata/1.root.json) and its URL
    # (MAILSTEAD_UPDATE_URL). Without them the image has no root of trust and updates stay
    # off until an admin sets both.
    if [ -n "${MAILSTEAD_UPDATE_ROOT:-}" ]; then
        [ -f "$MAILSTEAD_UPDATE_ROOT" ] || die "MAILSTEAD_UPDATE_ROOT: no file $MAILSTEAD_UPDATE_ROOT"
        install -D -m 644 "$MAILSTEAD_UPDATE_ROOT" "$R/usr/share/mailstead/update/root.json"
    fi
    if [ -n "${MAILSTEAD_UPDATE_URL:-}" ]; then
        case "$MAILSTEAD_UPDATE_URL" in
            https://*) ;;
            *) die "MAILSTEAD_UPDATE_URL must be an https:// URL" ;;
        esac
        case "$MAILSTEAD_UPDATE_URL" in *[\"\\\ ]*) die "MAILSTEAD_UPDATE_URL: no quotes, spaces or backslashes" ;; esac
        sed -i "/^\[update\]/a url = \"$MAILSTEAD_UPDATE_URL\"" "$R/etc/mailstead/mailstead.toml"
    fi
    # A private CA for the update server's certificate (a test repository on loopback, or a
    # publisher without a public CA); by default the system's store decides.
    if [ -n "${MAILSTEAD_UPDATE_CA:-}" ]; then
        [ -f "$MAILSTEAD_UPDATE_CA" ] || die "MAILSTEAD_UPDATE_CA: no file $MAILSTEAD_UPDATE_CA"
        install -D -m 644 "$MAILSTEAD_UPDATE_CA" "$R/usr/share/mailstead/update/ca.pem"
        sed -i '/^\[update\]/a ca_file = "/usr/share/mailstead/update/ca.pem"' "$R/etc/mailstead/mailstead.toml"
    fi
}

manifest() {
    # What went into the image, to compare two builds: Debian packages and Python wheels.
    {
        echo "# Debian packages"
        chroot "$R" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' | sort
        echo "# Python (/opt/mailstead/venv)"
        chroot "$R" /opt/mailstead/venv/bin/python -c 'import importlib.metadata as m
for d in m.distributions(): print(f"{d.name}=={d.version}")' | sort
    } > "$1"
}

# -- 4. disk image -----------------------------------------------------------------------------
part_of() {   # "start size" (in 512-byte sectors) of partition number $2 of image $1
    sfdisk -J "$1" | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][int(sys.argv[1])-1]; print(p["start"], p["size"])' "$2"
}

write_esp() {
    local img=$1 start=$2 size=$3 esp=$WORK/esp.vfat kernel initrd slot
    kernel=$(find "$R/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -1)
    initrd=$(find "$R/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -1)
    [ -n "$kernel" ] && [ -n "$initrd" ] || die "no kernel or initrd in the root tree"
    rm -f "$esp"; truncate -s $((size * 512)) "$esp"
    mkfs.vfat -F 32 -n ESP "$esp" >/dev/null
    export MTOOLS_SKIP_CHECK=1
    mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/root-a ::/root-b
    mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/systemd/systemd-bootx64.efi
    mcopy -i "$esp" "$HERE/boot/loader.conf" ::/loader/loader.conf
    # Each slot boots its own kernel: an update writes the new kernel beside its root.
    for slot in a b; do
        mcopy -i "$esp" "$kernel" "::/root-$slot/vmlinuz"
        mcopy -i "$esp" "$initrd" "::/root-$slot/initrd"
        sed "s/@SLOT@/$slot/g; s/@VERSION@/$VERSION/g" "$HERE/boot/entry.conf.in" > "$WORK/root-$slot.conf"
        mcopy -i "$esp" "$WORK/root-$slot.conf" "::/loader/entries/root-$slot.conf"
    done
    dd if="$esp" of="$img" bs=512 seek="$start" conv=notrunc,sparse status=none
}

disk_image() {
    local img=$1 t s1 n1 s2 n2 s3 n3 s4 n4
    t=$(now)
    rm -f "$img"; truncate -s "$IMAGE_SIZE" "$img"
    grep -v '^#' "$HERE/layout.sfdisk" | sfdisk -q "$img" >/dev/null
    read -r s1 n1 < <(part_of "$img" 1)
    read -r s2 n2 < <(part_of "$img" 2)
    read -r s3 n3 < <(part_of "$img" 3)
    read -r s4 n4 < <(part_of "$img" 4)
    write_esp "$img" "$s1" "$n1"
    # The same tree in both slots; SOURCE_DATE_EPOCH-free but timestamps come from the tree.
    local opts="-q -F -t ext4 -O ^orphan_file,^metadata_csum_seed"
    # shellcheck disable=SC2086
    mkfs.ext4 $opts -L root-a -E offset=$((s2 * 512)) -d "$R" "$img" $((n2 / 2))k
    # shellcheck disable=SC2086
    mkfs.ext4 $opts -L root-b -E offset=$((s3 * 512)) -d "$R" "$img" $((n3 / 2))k
    # shellcheck disable=SC2086
    mkfs.ext4 $opts -L data -m 1 -E offset=$((s4 * 512)) "$img" $((n4 / 2))k
    lap "disk image" "$t"
}

main() {
    local arg base_only=0 compress=1
    for arg in "$@"; do
        case "$arg" in
            --tools-only) ;;        # handled below: install the host tools, nothing else
            --base-only) base_only=1 ;;     # warms the cache
            --no-compress) compress=0 ;;    # CI boots the raw image; no .zst needed
            *) die "unknown option $arg (--tools-only, --base-only, --no-compress)" ;;
        esac
    done
    [ "$(id -u)" -eq 0 ] || die "run as root: the build uses chroot and bind mounts"
    need_tools
    check_tools
    case " $* " in *" --tools-only "*) return 0 ;; esac
    VERSION=${MAILSTEAD_VERSION:-$(version)}
    case "$VERSION" in
        *[!0-9A-Za-z.+-]*|"") die "MAILSTEAD_VERSION: not a version: $VERSION" ;;
    esac
    mkdir -p "$OUT" "$CACHE" "$WORK"
    local base wheels name img t
    base=$(base_tree)
    if [ "$base_only" = 1 ]; then echo "$base"; return 0; fi
    wheels=$(wheelhouse)
    root_tree "$base" "$wheels"
    name=mailstead-$VERSION-$ARCH
    img=$OUT/$name.img
    manifest "$OUT/$name.manifest"
    disk_image "$img"
    rm -f "$img.zst" "$img.zst.sha256"
    (cd "$OUT" && sha256sum "$name.img" > "$name.img.sha256")
    if [ "$compress" = 1 ]; then
        t=$(now)
        say "compressing"
        zstd -q -T0 -3 "$img" -o "$img.zst"
        (cd "$OUT" && sha256sum "$name.img.zst" > "$name.img.zst.sha256")
        lap "compression" "$t"
    fi
    say "built $img ($(du -h --apparent-size "$img" | cut -f1) sparse, $(du -h "$img" | cut -f1) used)$([ "$compress" = 1 ] && echo ", $img.zst ($(du -h "$img.zst" | cut -f1))")"
    lap "image build"
}

main "$@"
