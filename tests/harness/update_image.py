"""Small real disk images and update bundles for the updater's tests: a GPT written by
sfdisk on a file, an ESP made with mkfs.vfat and filled with mtools, root-a made with
`mkfs.ext4 -d` straight into its partition (the recipe of image/build-image.sh, in MiB)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from appliance.update import bundle, gpt
from harness.debian import ensure_package

REPO = Path(__file__).resolve().parents[2]
ENTRY_TEMPLATE = REPO / "image" / "boot" / "entry.conf.in"
LAYOUT = """label: gpt
size=8M, type=uefi, name=esp
size=6M, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=root-a
size=6M, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=root-b
type=0fc63daf-8483-4772-8e79-3d69d8477de4, name=data
"""
# the tools and the Debian packages that bring them (installed when missing: never skipped)
TOOLS = {"sfdisk": "fdisk", "mkfs.vfat": "dosfstools", "mmd": "mtools", "mcopy": "mtools",
         "mkfs.ext4": "e2fsprogs"}
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MTOOLS_SKIP_CHECK": "1"}


def ensure_tools() -> None:
    """Install the Debian packages of TOOLS that are missing (or fail: tests never skip)."""
    for tool, package in TOOLS.items():
        if shutil.which(tool, path=ENV["PATH"]) is None:
            ensure_package(tool, package)


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True, env=ENV,
                   timeout=60)


def make_image(folder: Path, version: str) -> Path:
    """`folder/mailstead-<version>-amd64.img` with a marker file in root-a's tree and
    /root-a/vmlinuz and /root-a/initrd (text that names the version) on the ESP."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"mailstead-{version}-amd64.img"
    with image.open("wb") as out:
        out.truncate(40 * 1024 * 1024)
    run("sfdisk", "-q", str(image), stdin=LAYOUT)
    parts = {p.name: p for p in gpt.read_partitions(image)}
    tree = folder / f"tree-{version}"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "mailstead-release").write_text(f"{version}\n")
    (tree / "random.bin").write_bytes(os.urandom(256 * 1024))
    root = parts["root-a"]
    run("mkfs.ext4", "-q", "-F", "-L", "root-a", "-E", f"offset={root.offset}", "-d",
        str(tree), str(image), f"{root.size // 1024}k")
    esp = folder / f"esp-{version}.vfat"
    with esp.open("wb") as out:
        out.truncate(parts["esp"].size)
    run("mkfs.vfat", "-n", "ESP", str(esp))
    run("mmd", "-i", str(esp), "::/root-a", "::/loader", "::/loader/entries")
    for name in ("vmlinuz", "initrd"):
        source = folder / f"{name}-{version}"
        source.write_text(f"{name} of {version}\n" + "x" * 5000)
        run("mcopy", "-i", str(esp), str(source), f"::/root-a/{name}")
    with image.open("r+b") as out:
        out.seek(parts["esp"].offset)
        out.write(esp.read_bytes())
    return image


def make_bundle(folder: Path, version: str, min_version: str = "0",
                data_schema: int | None = None) -> Path:
    image = make_image(folder / "build", version)
    schema = bundle.current_data_schema() if data_schema is None else data_schema
    return bundle.build_bundle(image, folder, version, min_version, schema, ENTRY_TEMPLATE)


def root_bytes(image: Path) -> bytes:
    part = {p.name: p for p in gpt.read_partitions(image)}["root-a"]
    with image.open("rb") as src:
        src.seek(part.offset)
        return src.read(part.size)
