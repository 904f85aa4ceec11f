"""The rights function on data: owners, the shared area of a domain, everyone else."""

from __future__ import annotations

import pytest

from appliance.groupware.rights import Rights, domain_of, permissions, shared_area
from appliance.groupware.storage import open_storage

ALICE = "alice@example.test"
BOB = "bob@example.test"
EVE = "eve@evil.test"


@pytest.mark.parametrize(("user", "path", "expected"), [
    (ALICE, "", "R"),                                        # discovery root
    (ALICE, ALICE, "RW"),                                    # own principal
    (ALICE, f"{ALICE}/calendar", "rw"),                      # own calendar
    (ALICE, f"{ALICE}/calendar/event.ics", ""),              # deeper than a collection
    (ALICE, BOB, ""),                                        # another principal
    (ALICE, f"{BOB}/calendar", ""),
    (ALICE, "shared.example.test", "R"),                     # own domain's shared area
    (ALICE, "shared.example.test/calendar", "rwd"),          # read/write, no delete
    (EVE, "shared.example.test", ""),                        # another domain
    (EVE, "shared.example.test/calendar", ""),
    (EVE, "shared.evil.test/calendar", "rwd"),
    ("", "", ""),                                            # anonymous: nothing
    ("", ALICE, ""),
    ("alice", "alice", ""),                                  # not an address
    (ALICE, "ALICE@example.test", ""),                       # another spelling: not hers
    (ALICE, "alice@EXAMPLE.test/calendar", ""),
    (ALICE, "shared.EXAMPLE.test/calendar", ""),
    (ALICE, f"{ALICE}/../{BOB}", ""),                        # unsanitised paths
    (ALICE, f"{ALICE}//calendar", ""),
    ("a@sub.example.test", "shared.example.test/calendar", ""),   # a subdomain is another
    ("a@example.test", "shared.sub.example.test/calendar", ""),
])
def test_permissions(user: str, path: str, expected: str) -> None:
    assert sorted(permissions(user, path)) == sorted(expected)


def test_domain_of() -> None:
    assert domain_of(ALICE) == "example.test"
    assert domain_of("shared.example.test") is None
    assert domain_of("@example.test") is None
    assert domain_of("a@b@c") is None
    assert shared_area("example.test") == "shared.example.test"


def test_plugin_sanitises_the_path_itself(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    rights = Rights(open_storage(tmp_path).configuration)
    assert rights.authorization(ALICE, set(), f"/{BOB}/../{ALICE}/calendar/") == "rw"
    assert rights.authorization(ALICE, set(), f"/{ALICE}/../{BOB}/calendar/") == ""
    assert rights.authorization(ALICE, set(), "//shared.example.test//calendar/") == "rwd"
    assert rights.authorization(ALICE, set(), "/") == "R"
