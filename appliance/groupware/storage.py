"""Where the DAV collections live on disk, and removing an account's collections.

`<data_dir>/dav/collections/` (0700) is Radicale's multifilesystem folder; the collections
themselves are under its `collection-root/`, one folder per principal (see `rights.py`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from radicale import config as radicale_config
from radicale import pathutils
from radicale import storage as radicale_storage

from appliance.auth.guard import normalise_username
from appliance.groupware.rights import shared_area


def collections_folder(data_dir: Path) -> Path:
    return data_dir / "dav" / "collections"


def ensure_folder(data_dir: Path) -> Path:
    """Create the collections folder (and `dav/`) private to the service user."""
    folder = collections_folder(data_dir)
    for path in (folder.parent, folder):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    return folder


def open_storage(data_dir: Path) -> radicale_storage.BaseStorage:
    """Radicale's storage on our collections folder (provisioning, removal, the CLI)."""
    configuration = radicale_config.load()
    configuration.update({"storage": {"type": "multifilesystem",
                                      "filesystem_folder": str(ensure_folder(data_dir))}},
                         "mailstead storage")
    return radicale_storage.load(configuration)


def account_folder(data_dir: Path, address: str) -> Path:
    """The principal folder of an account (`address` in any spelling the guard accepts).

    Raises:
        ValueError: `address` is not an address or not a safe path component.
    """
    parsed = normalise_username(address)
    if parsed is None or not pathutils.is_safe_path_component(parsed.key):
        raise ValueError(f"not an account address: {address!r}")
    return collections_folder(data_dir) / "collection-root" / parsed.key


def remove_account(data_dir: Path, address: str) -> bool:
    """Delete an account's calendars, task lists and address books (when the account is
    deleted). The domain's shared area stays. Returns whether there was anything.

    Holds Radicale's storage lock (the same flock file) so that no request of the running
    server sees half a tree.
    """
    folder = account_folder(data_dir, address)
    if not folder.exists():
        return False
    with open_storage(data_dir).acquire_lock("w"):
        shutil.rmtree(folder)
    return True


def remove_shared_area(data_dir: Path, domain: str) -> bool:
    """Delete a domain's shared calendars and address books (when the domain is deleted).
    Returns whether there was anything.

    Raises:
        ValueError: `domain` is not a domain name.
    """
    parsed = normalise_username(f"postmaster@{domain}")
    if parsed is None:
        raise ValueError(f"not a domain: {domain!r}")
    folder = collections_folder(data_dir) / "collection-root" / shared_area(parsed.domain)
    if not folder.exists():
        return False
    with open_storage(data_dir).acquire_lock("w"):
        shutil.rmtree(folder)
    return True
