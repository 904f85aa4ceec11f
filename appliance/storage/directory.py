"""The SQLite directory: domains, accounts and aliases in mailstead.db, and alias expansion.

Expansion order for a local address (the way Postfix applies virtual aliases first):
a specific alias, else the account itself, else `local+detail` without the detail, else the
domain's catch-all. An account with forwarding (set in the console's self-service pages,
`storage/account_settings.py`) expands to its targets, plus its own mailbox when it keeps a
copy. Loops are cut by remembering every address already expanded; a forwarding whose
targets all lead back (a loop) delivers to the account itself, so nothing is lost.
Resolutions are memoised until the database changes (`PRAGMA data_version`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from appliance.core.addresses import Address, AddressError, normalise_domain, parse_address
from appliance.core.fsio import safe_component
from appliance.storage.interfaces import Mailbox, RecipientStatus, Resolution

MAX_EXPANSION_DEPTH = 10
MAX_EXPANDED_TARGETS = 1000
SUBADDRESS_DELIMITER = "+"
MEMO_SIZE = 4096    # resolutions kept between database changes (then the memo starts afresh)

T = TypeVar("T")


class DirectoryError(ValueError):
    """An admin request that cannot be carried out (duplicate, missing, in use)."""


@dataclass(frozen=True)
class Account:
    """One account row, without its password hash."""

    id: int
    address: str
    enabled: bool
    quota_bytes: int
    maildir: Path


@dataclass(frozen=True)
class Alias:
    """One alias row: `source` is `local@domain`, or `@domain` for the catch-all."""

    source: str
    target: str


@dataclass
class _Expansion:
    mailboxes: dict[int, Mailbox]
    remote: dict[str, None]
    seen: set[str]
    disabled: bool = False
    catch_all: bool = True      # False when asking who may send as an address
    forwarding: bool = True     # False then too: forwarding grants no right to send as B


class SqliteDirectory:
    """Domains, accounts and aliases stored in mailstead.db."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._memo: dict[tuple[str, str], object] = {}
        self._memo_version: tuple[int, int] | None = None

    # -- domains ---------------------------------------------------------------------------

    def add_domain(self, name: str) -> str:
        domain = normalise_domain(name)
        try:
            self._conn.execute("INSERT INTO domains (name, created_at) VALUES (?, ?)",
                               (domain, int(time.time())))
        except sqlite3.IntegrityError as exc:
            raise DirectoryError(f"domain {domain} already exists") from exc
        return domain

    def list_domains(self) -> list[str]:
        return [r["name"] for r in self._conn.execute("SELECT name FROM domains ORDER BY name")]

    def remove_domain(self, name: str) -> None:
        domain_id = self._domain_id(normalise_domain(name))
        users = self._conn.execute("SELECT count(*) FROM accounts WHERE domain_id = ?",
                                   (domain_id,)).fetchone()[0]
        aliases = self._conn.execute("SELECT count(*) FROM aliases WHERE domain_id = ?",
                                     (domain_id,)).fetchone()[0]
        if users or aliases:
            raise DirectoryError(f"domain {name} still has {users} accounts and {aliases} "
                                 "aliases: remove them first")
        self._conn.execute("DELETE FROM domains WHERE id = ?", (domain_id,))

    def is_local_domain(self, domain: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone()
        return row is not None

    def _domain_id(self, domain: str) -> int:
        row = self._conn.execute("SELECT id FROM domains WHERE name = ?", (domain,)).fetchone()
        if row is None:
            raise DirectoryError(f"no such domain: {domain}")
        return int(row["id"])

    # -- accounts --------------------------------------------------------------------------

    def add_account(self, address: str, password_hash: str, quota_bytes: int = 0) -> Account:
        addr = parse_address(address)
        domain_id = self._domain_id(addr.domain)
        maildir = Path("mail") / addr.domain / safe_component(addr.local_key)
        try:
            self._conn.execute(
                "INSERT INTO accounts (domain_id, local_part, local_key, password_hash, "
                "quota_bytes, maildir, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (domain_id, addr.local, addr.local_key, password_hash, quota_bytes,
                 str(maildir), int(time.time())))
        except sqlite3.IntegrityError as exc:
            raise DirectoryError(f"account {addr} already exists") from exc
        return self.get_account(str(addr))

    def get_account(self, address: str) -> Account:
        row = self._account_row(parse_address(address))
        if row is None:
            raise DirectoryError(f"no such account: {address}")
        return _account(row)

    def password_hash(self, address: str) -> str | None:
        """The stored hash for an enabled account, or None (unknown or disabled)."""
        try:
            row = self._account_row(parse_address(address))
        except AddressError:
            return None
        return str(row["password_hash"]) if row is not None and row["enabled"] else None

    def list_accounts(self, domain: str | None = None, *, contains: str = "",
                      limit: int | None = None, offset: int = 0) -> list[Account]:
        """Accounts in address order, optionally of one `domain`, whose address holds
        `contains` (case-insensitive), and only `limit` of them from `offset` (paging)."""
        where, params = _account_filter(domain, contains)
        sql = _ACCOUNT_SELECT + where + " ORDER BY d.name, a.local_key"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += (max(limit, 0), max(offset, 0))
        return [_account(r) for r in self._conn.execute(sql, params)]

    def count_accounts(self, domain: str | None = None, contains: str = "") -> int:
        """How many accounts `list_accounts(domain, contains=contains)` would list."""
        where, params = _account_filter(domain, contains)
        # `where` is made of fixed fragments; the values are parameters.
        row = self._conn.execute("SELECT count(*) FROM accounts a JOIN domains d "  # noqa: S608
                                 "ON d.id = a.domain_id" + where, params).fetchone()
        return int(row[0])

    def domain_counts(self) -> dict[str, int]:
        """Every domain (in name order) with its number of accounts, in one query."""
        rows = self._conn.execute(
            "SELECT d.name, count(a.id) FROM domains d LEFT JOIN accounts a "
            "ON a.domain_id = d.id GROUP BY d.id ORDER BY d.name")
        return {str(r[0]): int(r[1]) for r in rows}

    def set_password_hash(self, address: str, password_hash: str) -> None:
        self._update_account(address, "password_hash = ?", password_hash)

    def set_enabled(self, address: str, enabled: bool) -> None:
        self._update_account(address, "enabled = ?", int(enabled))

    def set_quota(self, address: str, quota_bytes: int) -> None:
        self._update_account(address, "quota_bytes = ?", quota_bytes)

    def remove_account(self, address: str) -> Account:
        account = self.get_account(address)
        self._conn.execute("DELETE FROM accounts WHERE id = ?", (account.id,))
        return account

    def _update_account(self, address: str, assignment: str, value: object) -> None:
        account = self.get_account(address)
        self._conn.execute(f"UPDATE accounts SET {assignment} WHERE id = ?",  # noqa: S608
                           (value, account.id))

    def _account_row(self, addr: Address) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(
            _ACCOUNT_SELECT + " WHERE d.name = ? AND a.local_key = ?",
            (addr.domain, addr.local_key)).fetchone()
        return row

    # -- aliases ---------------------------------------------------------------------------

    def add_alias(self, source: str, target: str) -> Alias:
        """Add `source` -> `target`; `source` may be `@domain` for the catch-all."""
        local, domain = _split_source(source)
        target_addr = parse_address(target)
        domain_id = self._domain_id(domain)
        try:
            self._conn.execute(
                "INSERT INTO aliases (domain_id, local_part, local_key, target, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (domain_id, local, local.casefold(), str(target_addr), int(time.time())))
        except sqlite3.IntegrityError as exc:
            raise DirectoryError(f"alias {source} -> {target_addr} already exists") from exc
        return Alias(f"{local}@{domain}", str(target_addr))

    def list_aliases(self, domain: str | None = None) -> list[Alias]:
        sql = ("SELECT a.local_part, d.name, a.target FROM aliases a "
               "JOIN domains d ON d.id = a.domain_id")
        params: tuple[str, ...] = ()
        if domain is not None:
            sql += " WHERE d.name = ?"
            params = (normalise_domain(domain),)
        rows = self._conn.execute(sql + " ORDER BY d.name, a.local_key, a.target", params)
        return [Alias(f"{r[0]}@{r[1]}", r[2]) for r in rows]

    def remove_alias(self, source: str, target: str | None = None) -> int:
        """Remove one alias target, or every target of `source`; return how many."""
        local, domain = _split_source(source)
        domain_id = self._domain_id(domain)
        sql = "DELETE FROM aliases WHERE domain_id = ? AND local_key = ?"
        params: tuple[object, ...] = (domain_id, local.casefold())
        if target is not None:
            sql += " AND target = ?"
            params += (str(parse_address(target)),)
        removed = self._conn.execute(sql, params).rowcount
        if not removed:
            raise DirectoryError(f"no such alias: {source}" + (f" -> {target}" if target else ""))
        return int(removed)

    def _alias_targets(self, domain: str, local_key: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT a.target FROM aliases a JOIN domains d ON d.id = a.domain_id "
            "WHERE d.name = ? AND a.local_key = ? ORDER BY a.id", (domain, local_key))
        return [r[0] for r in rows]

    # -- resolution ------------------------------------------------------------------------

    def resolve(self, address: Address) -> Resolution:
        return self._memoised("resolve", address, self._resolve)

    def _resolve(self, address: Address) -> Resolution:
        if not self.is_local_domain(address.domain):
            return Resolution(RecipientStatus.NOT_LOCAL)
        state = _Expansion({}, {}, set())
        self._expand(address, state, 0)
        if state.mailboxes or state.remote:
            return Resolution(RecipientStatus.DELIVER, tuple(state.mailboxes.values()),
                              tuple(state.remote))
        status = RecipientStatus.DISABLED if state.disabled else RecipientStatus.UNKNOWN
        return Resolution(status)

    def sender_owners(self, address: Address) -> frozenset[str]:
        """The accounts (as `Address.key`) that may use `address` as a sender.

        That is the account itself (also as `local+detail`) and every account an alias of
        it leads to. A catch-all grants nothing: receiving a domain's stray mail is no
        licence to send as any address in it.
        """
        return self._memoised("sender_owners", address, self._sender_owners)

    def _sender_owners(self, address: Address) -> frozenset[str]:
        if not self.is_local_domain(address.domain):
            return frozenset()
        state = _Expansion({}, {}, set(), catch_all=False, forwarding=False)
        self._expand(address, state, 0)
        return frozenset(parse_address(m.address).key for m in state.mailboxes.values())

    def _memoised(self, kind: str, address: Address, compute: Callable[[Address], T]) -> T:
        """`compute(address)`, remembered until the database changes.

        A resolution takes four SQLite read transactions; asking whether anything changed
        takes one. `PRAGMA data_version` changes when another connection (the CLI, the
        console, another process) commits, `total_changes` when this one writes, so an
        account disabled a moment ago is refused at the very next RCPT.
        """
        version = (self._conn.execute("PRAGMA data_version").fetchone()[0],
                   self._conn.total_changes)
        if version != self._memo_version or len(self._memo) >= MEMO_SIZE:
            self._memo, self._memo_version = {}, version
        # This dict, not self._memo: another thread may replace that while we compute, and
        # its version may be newer than what we read.
        memo, key = self._memo, (kind, address.key)
        if key not in memo:
            memo[key] = compute(address)
        return cast(T, memo[key])

    def _expand(self, address: Address, state: _Expansion, depth: int) -> None:
        if (address.key in state.seen or depth > MAX_EXPANSION_DEPTH
                or len(state.seen) > MAX_EXPANDED_TARGETS):
            return
        state.seen.add(address.key)
        if not self.is_local_domain(address.domain):
            state.remote.setdefault(str(address))
            return
        for candidate in _lookup_keys(address.local_key):
            if self._expand_local(address.domain, candidate, state, depth):
                return
        if state.catch_all:
            for target in self._alias_targets(address.domain, ""):
                self._expand_target(target, state, depth)

    def _expand_local(self, domain: str, local_key: str, state: _Expansion, depth: int) -> bool:
        """Expand one local part through aliases or its account; False if neither exists."""
        targets = self._alias_targets(domain, local_key)
        for target in targets:
            self._expand_target(target, state, depth)
        if targets:
            return True
        row = self._conn.execute(
            _ACCOUNT_SELECT + " WHERE d.name = ? AND a.local_key = ?",
            (domain, local_key)).fetchone()
        if row is None:
            return False
        if not row["enabled"]:
            state.disabled = True
            return True
        account = _account(row)
        if state.forwarding and self._forward(account.id, state, depth):
            return True
        state.mailboxes.setdefault(account.id, Mailbox(account.id, account.address,
                                                       account.maildir, account.quota_bytes))
        return True

    def _forward(self, account_id: int, state: _Expansion, depth: int) -> bool:
        """Expand the account's forwarding targets; True when that replaces its mailbox
        (no copy kept, and the targets led somewhere)."""
        keep = self._conn.execute("SELECT keep_copy FROM forwarding WHERE account_id = ?",
                                  (account_id,)).fetchone()
        if keep is None:
            return False
        before = len(state.mailboxes) + len(state.remote)
        for (target,) in self._conn.execute(
                "SELECT target FROM forwarding_targets WHERE account_id = ? ORDER BY rowid",
                (account_id,)).fetchall():
            self._expand_target(str(target), state, depth)
        return not keep[0] and len(state.mailboxes) + len(state.remote) > before

    def _expand_target(self, target: str, state: _Expansion, depth: int) -> None:
        try:
            self._expand(parse_address(target), state, depth + 1)
        except AddressError:
            return


_ACCOUNT_SELECT = ("SELECT a.id, a.local_part, d.name AS domain, a.enabled, a.quota_bytes, "
                   "a.password_hash, "
                   "a.maildir FROM accounts a JOIN domains d ON d.id = a.domain_id")


def _account_filter(domain: str | None, contains: str) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause (and its parameters) for `list_accounts` and `count_accounts`.

    `contains` is matched against `local_key@domain`: the casefolded local part and the
    A-label domain, so the match ignores case as `Address.key` does.
    """
    terms: list[str] = []
    params: tuple[object, ...] = ()
    if domain is not None:
        terms.append("d.name = ?")
        params += (normalise_domain(domain),)
    if contains:
        terms.append("instr(a.local_key || '@' || d.name, ?) > 0")
        params += (contains.casefold(),)
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


def _account(row: sqlite3.Row) -> Account:
    return Account(int(row["id"]), f"{row['local_part']}@{row['domain']}", bool(row["enabled"]),
                   int(row["quota_bytes"]), Path(row["maildir"]))


def _lookup_keys(local_key: str) -> list[str]:
    """The local part, then (RFC 5233 subaddressing) the part before the delimiter."""
    base, sep, _detail = local_key.partition(SUBADDRESS_DELIMITER)
    return [local_key, base] if sep and base else [local_key]


def _split_source(source: str) -> tuple[str, str]:
    """`local@domain` or `@domain` (catch-all) -> (local, A-label domain)."""
    if source.startswith("@"):
        return "", normalise_domain(source[1:])
    addr = parse_address(source)
    return addr.local, addr.domain
