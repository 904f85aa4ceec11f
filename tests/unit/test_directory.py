"""SqliteDirectory: domains, accounts, aliases and how a recipient resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.core.addresses import AddressError, parse_address
from appliance.storage.account_settings import AccountSettings, Forwarding
from appliance.storage.db import open_database
from appliance.storage.directory import Alias, DirectoryError, SqliteDirectory
from appliance.storage.interfaces import RecipientStatus, Resolution

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


@pytest.fixture
def directory(tmp_path: Path) -> SqliteDirectory:
    d = SqliteDirectory(open_database(tmp_path))
    d.add_domain("example.test")
    return d


def resolve(directory: SqliteDirectory, address: str) -> Resolution:
    return directory.resolve(parse_address(address))


def delivered_to(resolution: Resolution) -> list[str]:
    assert resolution.status is RecipientStatus.DELIVER
    return sorted(m.address for m in resolution.mailboxes)


# -- domains -------------------------------------------------------------------------------

def test_domains_add_list_remove(directory: SqliteDirectory) -> None:
    assert directory.add_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert directory.list_domains() == ["example.test", "xn--bcher-kva.example"]
    assert directory.is_local_domain("xn--bcher-kva.example")
    directory.remove_domain("bücher.example")
    assert directory.list_domains() == ["example.test"]


def test_duplicate_domain_refused_case_insensitively(directory: SqliteDirectory) -> None:
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_domain("EXAMPLE.test")


def test_invalid_or_missing_domain(directory: SqliteDirectory) -> None:
    with pytest.raises(AddressError):
        directory.add_domain("not a domain")
    with pytest.raises(DirectoryError, match="no such domain"):
        directory.remove_domain("other.test")


def test_domain_removal_refused_while_accounts_exist(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    with pytest.raises(DirectoryError, match="1 accounts and 0 aliases"):
        directory.remove_domain("example.test")
    directory.remove_account("alice@example.test")
    directory.remove_domain("example.test")
    assert directory.list_domains() == []


def test_domain_removal_refused_while_aliases_exist(directory: SqliteDirectory) -> None:
    directory.add_alias("@example.test", "someone@elsewhere.test")
    with pytest.raises(DirectoryError, match="0 accounts and 1 aliases"):
        directory.remove_domain("example.test")
    assert directory.list_domains() == ["example.test"]


# -- accounts ------------------------------------------------------------------------------

def test_account_keeps_local_part_as_given(directory: SqliteDirectory) -> None:
    account = directory.add_account("Alice.Smith@EXAMPLE.test", HASH, quota_bytes=1000)
    assert account.address == "Alice.Smith@example.test"
    assert account.enabled
    assert account.quota_bytes == 1000
    assert account.maildir == Path("mail/example.test/alice.smith")
    assert directory.get_account("alice.smith@example.test") == account
    assert [a.address for a in directory.list_accounts()] == ["Alice.Smith@example.test"]


def test_duplicate_account_refused_case_insensitively(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_account("ALICE@example.test", HASH)
    assert len(directory.list_accounts()) == 1


def test_account_needs_a_known_domain(directory: SqliteDirectory) -> None:
    with pytest.raises(DirectoryError, match="no such domain"):
        directory.add_account("alice@other.test", HASH)
    with pytest.raises(AddressError):
        directory.add_account("not an address", HASH)


def test_accounts_listed_by_domain(directory: SqliteDirectory) -> None:
    directory.add_domain("other.test")
    directory.add_account("bob@example.test", HASH)
    directory.add_account("Alice@example.test", HASH)
    directory.add_account("carol@other.test", HASH)
    assert [a.address for a in directory.list_accounts("example.test")] == [
        "Alice@example.test", "bob@example.test"]
    assert [a.address for a in directory.list_accounts("OTHER.test")] == ["carol@other.test"]


def test_accounts_paged_in_sql_at_the_page_edges(directory: SqliteDirectory) -> None:
    addresses = [f"user{n:03d}@example.test" for n in range(25)]
    for address in reversed(addresses):
        directory.add_account(address, HASH)

    def page(limit: int, offset: int) -> list[str]:
        return [a.address for a in directory.list_accounts(limit=limit, offset=offset)]

    assert page(10, 0) == addresses[:10]
    assert page(10, 10) == addresses[10:20]
    assert page(10, 20) == addresses[20:]          # the last, short page
    assert page(10, 25) == []                       # just past the end
    assert page(25, 0) == addresses                 # exactly one full page
    assert page(0, 0) == []
    assert directory.count_accounts() == 25
    assert [a.address for a in directory.list_accounts()] == addresses   # no limit: all


def test_accounts_filtered_in_sql(directory: SqliteDirectory) -> None:
    directory.add_domain("other.test")
    for address in ("Alice.Smith@example.test", "bob@example.test", "alice@other.test",
                    "ÉLODIE@example.test", "100%_off@example.test"):
        directory.add_account(address, HASH)

    def listed(contains: str, domain: str | None = None) -> list[str]:
        found = [a.address for a in directory.list_accounts(domain, contains=contains)]
        assert directory.count_accounts(domain, contains) == len(found)
        return found

    assert listed("ALICE") == ["Alice.Smith@example.test", "alice@other.test"]
    assert listed("alice", "other.test") == ["alice@other.test"]
    assert listed("élodie") == ["ÉLODIE@example.test"]       # casefolded, beyond ASCII
    assert listed("smith@example") == ["Alice.Smith@example.test"]   # across the @
    assert listed("%_") == ["100%_off@example.test"]          # no LIKE wildcards
    assert listed("_") == ["100%_off@example.test"]
    assert listed("nobody") == []
    assert [a.address for a in directory.list_accounts(contains="a", limit=1, offset=1)] \
        == listed("a")[1:2]


def test_domain_counts_in_one_query(directory: SqliteDirectory) -> None:
    directory.add_domain("empty.test")
    directory.add_domain("other.test")
    for address in ("a@example.test", "b@example.test", "c@other.test"):
        directory.add_account(address, HASH)
    assert directory.domain_counts() == {"empty.test": 0, "example.test": 2, "other.test": 1}
    assert directory.count_accounts() == 3
    assert directory.count_accounts("example.test") == 2
    assert directory.count_accounts("empty.test") == 0


def test_password_hash_enable_disable(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    assert directory.password_hash("Alice@example.test") == HASH
    directory.set_password_hash("alice@example.test", "new-hash")
    assert directory.password_hash("alice@example.test") == "new-hash"
    directory.set_enabled("alice@example.test", False)
    assert directory.password_hash("alice@example.test") is None
    assert not directory.get_account("alice@example.test").enabled
    directory.set_enabled("alice@example.test", True)
    assert directory.password_hash("alice@example.test") == "new-hash"
    assert directory.password_hash("nobody@example.test") is None


def test_set_quota_and_missing_accounts(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.set_quota("alice@example.test", 5)
    assert directory.get_account("alice@example.test").quota_bytes == 5
    for action in (lambda: directory.get_account("nobody@example.test"),
                   lambda: directory.remove_account("nobody@example.test"),
                   lambda: directory.set_enabled("nobody@example.test", False)):
        with pytest.raises(DirectoryError, match="no such account"):
            action()


def test_remove_account(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    removed = directory.remove_account("ALICE@example.test")
    assert removed.address == "alice@example.test"
    assert directory.list_accounts() == []
    assert resolve(directory, "alice@example.test").status is RecipientStatus.UNKNOWN


# -- aliases -------------------------------------------------------------------------------

def test_alias_one_to_many(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    assert directory.add_alias("Team@example.test", "alice@example.test") == Alias(
        "Team@example.test", "alice@example.test")
    directory.add_alias("team@example.test", "bob@EXAMPLE.test")
    assert directory.list_aliases() == [Alias("Team@example.test", "alice@example.test"),
                                        Alias("team@example.test", "bob@example.test")]
    assert delivered_to(resolve(directory, "TEAM@example.test")) == [
        "alice@example.test", "bob@example.test"]


def test_duplicate_alias_refused(directory: SqliteDirectory) -> None:
    directory.add_alias("team@example.test", "alice@example.test")
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_alias("TEAM@example.test", "alice@example.test")


def test_alias_needs_a_local_domain_and_valid_target(directory: SqliteDirectory) -> None:
    with pytest.raises(DirectoryError, match="no such domain"):
        directory.add_alias("team@other.test", "alice@example.test")
    with pytest.raises(AddressError):
        directory.add_alias("team@example.test", "not an address")


def test_remove_alias_one_target_or_all(directory: SqliteDirectory) -> None:
    for target in ("a@example.test", "b@example.test", "c@example.test"):
        directory.add_alias("team@example.test", target)
    assert directory.remove_alias("Team@example.test", "b@example.test") == 1
    assert [a.target for a in directory.list_aliases()] == ["a@example.test", "c@example.test"]
    assert directory.remove_alias("team@example.test") == 2
    assert directory.list_aliases() == []
    with pytest.raises(DirectoryError, match="no such alias"):
        directory.remove_alias("team@example.test")


def test_aliases_listed_by_domain(directory: SqliteDirectory) -> None:
    directory.add_domain("other.test")
    directory.add_alias("a@example.test", "x@example.test")
    directory.add_alias("@other.test", "y@example.test")
    assert directory.list_aliases("other.test") == [Alias("@other.test", "y@example.test")]


def test_external_alias_target_is_remote(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_alias("fwd@example.test", "Friend@Elsewhere.ORG")
    directory.add_alias("fwd@example.test", "alice@example.test")
    resolution = resolve(directory, "fwd@example.test")
    assert resolution.status is RecipientStatus.DELIVER
    assert resolution.remote == ("Friend@elsewhere.org",)
    assert [m.address for m in resolution.mailboxes] == ["alice@example.test"]


# -- forwarding (set by the account's owner in the console) --------------------------------

def forward(directory: SqliteDirectory, address: str, *targets: str, keep: bool) -> None:
    AccountSettings(directory._conn).set_forwarding(address, Forwarding(targets, keep))


def test_forwarding_with_a_copy(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    forward(directory, "alice@example.test", "bob@example.test", "Alice@Elsewhere.ORG",
            keep=True)
    resolution = resolve(directory, "alice+news@example.test")
    assert delivered_to(resolution) == ["alice@example.test", "bob@example.test"]
    assert resolution.remote == ("Alice@elsewhere.org",)


def test_forwarding_without_a_copy_and_through_an_alias(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    directory.add_alias("team@example.test", "alice@example.test")
    forward(directory, "alice@example.test", "bob@example.test", keep=False)
    assert delivered_to(resolve(directory, "alice@example.test")) == ["bob@example.test"]
    assert delivered_to(resolve(directory, "team@example.test")) == ["bob@example.test"]
    forward(directory, "alice@example.test", keep=False)          # no targets: off again
    assert delivered_to(resolve(directory, "alice@example.test")) == ["alice@example.test"]


def test_forwarding_loop_delivers_to_the_account(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    forward(directory, "alice@example.test", "bob@example.test", keep=False)
    forward(directory, "bob@example.test", "alice@example.test", keep=False)
    assert delivered_to(resolve(directory, "alice@example.test")) == ["bob@example.test"]
    assert delivered_to(resolve(directory, "bob@example.test")) == ["alice@example.test"]


def test_forwarding_of_a_disabled_account_and_sender_rights(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    forward(directory, "alice@example.test", "bob@example.test", keep=False)
    # Forwarding gives bob alice's mail, not the right to send as alice.
    assert directory.sender_owners(parse_address("alice@example.test")) == {"alice@example.test"}
    directory.set_enabled("alice@example.test", False)
    assert resolve(directory, "alice@example.test") == Resolution(RecipientStatus.DISABLED)


# -- resolution ----------------------------------------------------------------------------

def test_resolve_account(directory: SqliteDirectory) -> None:
    account = directory.add_account("Alice@example.test", HASH)
    resolution = resolve(directory, "ALICE@example.test")
    assert resolution.status is RecipientStatus.DELIVER
    assert [(m.account_id, m.maildir) for m in resolution.mailboxes] == [
        (account.id, account.maildir)]
    assert resolution.remote == ()


def test_resolve_unknown_disabled_not_local(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.set_enabled("alice@example.test", False)
    assert resolve(directory, "nobody@example.test") == Resolution(RecipientStatus.UNKNOWN)
    assert resolve(directory, "alice@example.test") == Resolution(RecipientStatus.DISABLED)
    assert resolve(directory, "alice@other.test") == Resolution(RecipientStatus.NOT_LOCAL)


def test_memoised_resolutions_follow_changes_from_other_connections(
        tmp_path: Path, directory: SqliteDirectory) -> None:
    """The CLI, the console and other engine processes write through their own connections:
    what they commit shows at the very next look-up."""
    other = SqliteDirectory(open_database(tmp_path))
    assert resolve(directory, "alice@example.test") == Resolution(RecipientStatus.UNKNOWN)
    assert resolve(directory, "x@new.test") == Resolution(RecipientStatus.NOT_LOCAL)
    assert owners(directory, "alice@example.test") == set()
    other.add_account("alice@example.test", HASH)
    other.add_domain("new.test")
    assert delivered_to(resolve(directory, "alice@example.test")) == ["alice@example.test"]
    assert owners(directory, "alice@example.test") == {"alice@example.test"}
    assert resolve(directory, "x@new.test") == Resolution(RecipientStatus.UNKNOWN)
    other.set_enabled("alice@example.test", False)
    assert resolve(directory, "alice@example.test") == Resolution(RecipientStatus.DISABLED)
    assert owners(directory, "alice@example.test") == set()
    other.add_alias("alice@example.test", "friend@elsewhere.test")
    assert resolve(directory, "alice@example.test").remote == ("friend@elsewhere.test",)


def test_memoised_resolutions_follow_changes_from_this_connection(
        directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    assert delivered_to(resolve(directory, "alice@example.test")) == ["alice@example.test"]
    directory.set_enabled("alice@example.test", False)
    assert resolve(directory, "alice@example.test") == Resolution(RecipientStatus.DISABLED)
    directory.remove_account("alice@example.test")
    assert resolve(directory, "alice@example.test") == Resolution(RecipientStatus.UNKNOWN)


def test_alias_loops_terminate(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_alias("a@example.test", "b@example.test")
    directory.add_alias("b@example.test", "a@example.test")
    directory.add_alias("b@example.test", "alice@example.test")
    directory.add_alias("self@example.test", "SELF@example.test")
    assert delivered_to(resolve(directory, "a@example.test")) == ["alice@example.test"]
    assert resolve(directory, "self@example.test").status is RecipientStatus.UNKNOWN


def test_catch_all_loop_terminates(directory: SqliteDirectory) -> None:
    directory.add_alias("@example.test", "nobody@example.test")
    assert resolve(directory, "x@example.test").status is RecipientStatus.UNKNOWN


def test_long_alias_chain_is_cut(directory: SqliteDirectory) -> None:
    directory.add_account("end@example.test", HASH)
    for i in range(30):
        directory.add_alias(f"hop{i}@example.test", f"hop{i + 1}@example.test")
    directory.add_alias("hop30@example.test", "end@example.test")
    directory.add_alias("hop2@example.test", "end@example.test")
    assert delivered_to(resolve(directory, "hop0@example.test")) == ["end@example.test"]
    assert resolve(directory, "hop0@example.test").remote == ()
    assert delivered_to(resolve(directory, "hop25@example.test")) == ["end@example.test"]


def test_subaddress_falls_back_to_account(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    assert delivered_to(resolve(directory, "Alice+lists@example.test")) == [
        "alice@example.test"]
    assert delivered_to(resolve(directory, "alice+a+b@example.test")) == ["alice@example.test"]
    assert resolve(directory, "+tag@example.test").status is RecipientStatus.UNKNOWN
    assert resolve(directory, "bob+tag@example.test").status is RecipientStatus.UNKNOWN


def test_specific_subaddress_alias_wins(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    directory.add_alias("alice+bob@example.test", "bob@example.test")
    assert delivered_to(resolve(directory, "alice+bob@example.test")) == ["bob@example.test"]
    assert delivered_to(resolve(directory, "alice+other@example.test")) == [
        "alice@example.test"]


def test_subaddress_of_an_alias(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_alias("sales@example.test", "alice@example.test")
    assert delivered_to(resolve(directory, "sales+q3@example.test")) == ["alice@example.test"]


def test_catch_all_only_when_nothing_else_matches(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    directory.add_account("carol@example.test", HASH)
    directory.add_alias("@example.test", "carol@example.test")
    directory.add_alias("sales@example.test", "bob@example.test")
    assert delivered_to(resolve(directory, "anything@example.test")) == ["carol@example.test"]
    assert delivered_to(resolve(directory, "alice@example.test")) == ["alice@example.test"]
    assert delivered_to(resolve(directory, "alice+x@example.test")) == ["alice@example.test"]
    assert delivered_to(resolve(directory, "sales@example.test")) == ["bob@example.test"]
    directory.set_enabled("alice@example.test", False)
    # a disabled account still owns its name: the catch-all does not take its mail
    assert resolve(directory, "alice@example.test").status is RecipientStatus.DISABLED


def test_catch_all_listed_and_removed(directory: SqliteDirectory) -> None:
    directory.add_alias("@EXAMPLE.test", "postmaster@example.test")
    assert directory.list_aliases() == [Alias("@example.test", "postmaster@example.test")]
    assert directory.remove_alias("@example.test") == 1


def test_alias_to_disabled_and_enabled_accounts(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("bob@example.test", HASH)
    directory.set_enabled("bob@example.test", False)
    directory.add_alias("team@example.test", "bob@example.test")
    assert resolve(directory, "team@example.test").status is RecipientStatus.DISABLED
    directory.add_alias("team@example.test", "alice@example.test")
    assert delivered_to(resolve(directory, "team@example.test")) == ["alice@example.test"]


def test_two_aliases_to_one_account_give_one_mailbox(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_alias("a@example.test", "alice@example.test")
    directory.add_alias("a@example.test", "b@example.test")
    directory.add_alias("b@example.test", "ALICE@example.test")
    assert delivered_to(resolve(directory, "a@example.test")) == ["alice@example.test"]


def test_chains_deeper_than_the_limit_are_cut(directory: SqliteDirectory) -> None:
    directory.add_account("end@example.test", HASH)
    for i in range(20):
        directory.add_alias(f"deep{i}@example.test", f"deep{i + 1}@example.test")
    directory.add_alias("deep20@example.test", "end@example.test")
    assert resolve(directory, "deep0@example.test").status is RecipientStatus.UNKNOWN
    assert delivered_to(resolve(directory, "deep15@example.test")) == ["end@example.test"]


# -- who may send as an address (submission) -----------------------------------------------

def owners(directory: SqliteDirectory, address: str) -> set[str]:
    return set(directory.sender_owners(parse_address(address)))


def test_sender_owners_are_the_account_and_the_accounts_its_aliases_reach(
        directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.add_account("Bob@example.test", HASH)
    directory.add_alias("sales@example.test", "alice@example.test")
    directory.add_alias("sales@example.test", "bob@example.test")
    directory.add_alias("info@example.test", "sales@example.test")       # alias of an alias
    directory.add_alias("fwd@example.test", "someone@elsewhere.test")    # remote only
    directory.add_alias("@example.test", "alice@example.test")           # catch-all
    assert owners(directory, "alice@example.test") == {"alice@example.test"}
    assert owners(directory, "ALICE+lists@Example.TEST") == {"alice@example.test"}
    assert owners(directory, "bob@example.test") == {"bob@example.test"}
    assert owners(directory, "sales@example.test") == {"alice@example.test", "bob@example.test"}
    assert owners(directory, "info@example.test") == {"alice@example.test", "bob@example.test"}
    assert owners(directory, "fwd@example.test") == set()
    # The catch-all delivers stray mail to alice, but gives her no right to send as it.
    assert delivered_to(resolve(directory, "stray@example.test")) == ["alice@example.test"]
    assert owners(directory, "stray@example.test") == set()
    assert owners(directory, "alice@elsewhere.test") == set()


def test_a_disabled_account_owns_nothing(directory: SqliteDirectory) -> None:
    directory.add_account("alice@example.test", HASH)
    directory.set_enabled("alice@example.test", False)
    assert owners(directory, "alice@example.test") == set()
