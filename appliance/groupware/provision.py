"""Default collections: an account's calendar, task list and address book, and its domain's
shared calendar and address book, created through Radicale's storage API (which writes the
`.Radicale.props` files and takes its storage lock) when they are missing.

Created once: a collection the user deletes later is not brought back while the principal
folder exists (`mailstead dav provision` creates missing defaults again on request).
"""

from __future__ import annotations

from collections.abc import Mapping

from radicale.storage import BaseStorage

from appliance.groupware.rights import domain_of, shared_area

# name -> Radicale props (RFC 4791 5.2.3 supported-calendar-component-set; RFC 6352 5.2)
ACCOUNT_DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "calendar": {"tag": "VCALENDAR", "D:displayname": "Calendar",
                 "C:supported-calendar-component-set": "VEVENT"},
    "tasks": {"tag": "VCALENDAR", "D:displayname": "Tasks",
              "C:supported-calendar-component-set": "VTODO"},
    "contacts": {"tag": "VADDRESSBOOK", "D:displayname": "Contacts"},
}


def shared_defaults(domain: str) -> Mapping[str, Mapping[str, str]]:
    return {
        "calendar": {"tag": "VCALENDAR", "D:displayname": f"Shared calendar ({domain})",
                     "C:supported-calendar-component-set": "VEVENT,VTODO"},
        "contacts": {"tag": "VADDRESSBOOK", "D:displayname": f"Shared contacts ({domain})"},
    }


def _exists(storage: BaseStorage, path: str) -> bool:
    return next(iter(storage.discover(path, depth="0")), None) is not None


def _ensure(storage: BaseStorage, owner: str,
            defaults: Mapping[str, Mapping[str, str]], *, force: bool) -> list[str]:
    """Create `/<owner>/` and its defaults if the principal is missing (or with `force`,
    each missing default); returns the paths created."""
    principal = f"/{owner}/"
    created: list[str] = []
    with storage.acquire_lock("w", owner):
        if _exists(storage, principal) and not force:
            return created
        if not _exists(storage, principal):
            storage.create_collection(principal)
            created.append(principal)
        for name, props in defaults.items():
            path = f"{principal}{name}/"
            if not _exists(storage, path):
                storage.create_collection(path, props=dict(props))
                created.append(path)
    return created


def provision_account(storage: BaseStorage, account: str, *, force: bool = False
                      ) -> list[str]:
    """The account's defaults and its domain's shared area; `account` is a normalised
    address. Returns the collection paths created (empty when all were there).

    Raises:
        ValueError: `account` is not an address.
    """
    domain = domain_of(account)
    if domain is None:
        raise ValueError(f"not an account address: {account!r}")
    created = _ensure(storage, account, ACCOUNT_DEFAULTS, force=force)
    created += _ensure(storage, shared_area(domain), shared_defaults(domain), force=force)
    return created
