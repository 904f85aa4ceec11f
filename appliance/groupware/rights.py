"""Who may read and write which DAV collection: a pure function on (user, path), and the
thin Radicale rights plugin around it.

The collection tree (Radicale's multifilesystem under `<data_dir>/dav/collections`):

    /                            discovery root: readable, lists only your own principal
    /<address>/                  an account's principal: its owner only (read/write)
    /<address>/<collection>/     the account's calendars, task lists, address books
    /shared.<domain>/            the shared area of one mail domain (IDNA, lower case)
    /shared.<domain>/<coll>/     read/write for every account of that domain, but a member
                                 may not delete a whole shared collection (only the admin,
                                 on disk or through `mailstead dav`)

The shared area's name has no "@", and every account's principal is its address, which has
one: an account can never own `shared.<domain>`, nor the area name another principal.
"""

from __future__ import annotations

from typing import Any

from radicale import config as radicale_config
from radicale import pathutils
from radicale.rights import BaseRights

SHARED_PREFIX = "shared."

# Radicale's permission letters (radicale/rights/__init__.py): R/W = the principal-level
# collection, r/w = calendars and address books, d = may not delete that collection.
NONE = ""
READ_ROOT = "R"
OWNER_PRINCIPAL = "RW"
OWNER_COLLECTION = "rw"
SHARED_AREA = "R"
SHARED_COLLECTION = "rwd"


def shared_area(domain: str) -> str:
    """The name of a domain's shared area (the domain as Radicale's usernames have it)."""
    return SHARED_PREFIX + domain


def domain_of(user: str) -> str | None:
    """The domain of a normalised address, or None if `user` is not one."""
    local, at, domain = user.rpartition("@")
    if not at or not local or not domain or "@" in local or "/" in user:
        return None
    return domain


def permissions(user: str, sane_path: str) -> str:
    """Radicale permission letters of `user` (a normalised address, "" for anonymous) on
    the collection at `sane_path` (Radicale's stripped, sanitised path: no leading or
    trailing slash, no `.` or `..`, "" for the root).

    Names are compared exactly: the username is normalised once at login (lower case, IDNA
    domain), so a differently spelled path is another (unowned) collection.
    """
    domain = domain_of(user)
    if domain is None:
        return NONE                       # anonymous or not an address: nothing at all
    if not sane_path:
        return READ_ROOT
    parts = sane_path.split("/")
    if any(part in ("", ".", "..") for part in parts) or len(parts) > 2:
        return NONE                       # not sanitised, or deeper than a collection
    owner = parts[0]
    if owner == user:
        return OWNER_PRINCIPAL if len(parts) == 1 else OWNER_COLLECTION
    if owner == shared_area(domain):
        return SHARED_AREA if len(parts) == 1 else SHARED_COLLECTION
    return NONE


class Rights(BaseRights):
    """Radicale's rights plugin: `permissions` on Radicale's own path sanitising."""

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration)

    def authorization(self, user: str, user_groups: set[Any], path: str) -> str:
        # Sanitise again: the path is "sanitized" by contract, but this is the one place
        # where a mistake hands out another account's calendar.
        return permissions(user, pathutils.strip_path(pathutils.sanitize_path(path)))
