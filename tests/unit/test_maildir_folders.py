"""Folder names <-> Maildir++ directories, modified UTF-7, and name checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.imap import mutf7
from appliance.storage.mailbox_api import INBOX, InvalidFolderNameError
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.folders import (
    MAX_DEPTH,
    dir_name,
    folder_name,
    list_folder_dirs,
    normalise,
)

# (IMAP name, directory as Dovecot's Maildir++ layout writes it)
PAIRS = [
    ("Sent", ".Sent"),
    ("Archive/2026", ".Archive.2026"),
    ("Entwürfe", ".Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", ".~7epeter.mail.&U,BTFw-.&ZeVnLIqe-"),
    ("a.b", ".a~2eb"),
    ("Tom & Jerry", ".Tom &- Jerry"),
    ("INBOX/Sub", ".INBOX.Sub"),
    ("😀", ".&2D3eAA-"),
]


@pytest.mark.parametrize(("name", "directory"), PAIRS)
def test_names_and_directories(name: str, directory: str) -> None:
    assert dir_name(name) == directory
    assert folder_name(directory) == name


def test_rfc3501_example() -> None:
    assert mutf7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7.decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"
    assert mutf7.encode("&") == "&-"
    assert mutf7.decode("&-") == "&"


@pytest.mark.parametrize("bad", [
    "&AGE-",                # "a" encoded: must stand for itself
    "&U,BTFw-&ZeVnLIqe-",   # two encoded runs in a row
    "&U,BTFx-",             # non-zero padding bits
    "&ZeVnLIqeAA-",         # surplus BASE64 characters
    "&Jjo",                 # no terminating "-"
    "&2D0-",                # a lone surrogate
    "&2D3e-",               # surplus characters
    "é",                    # 8-bit character not encoded
    "&AAA=-",               # padding character
])
def test_strict_decode_refuses_non_canonical(bad: str) -> None:
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode(bad)


def test_lenient_decode_accepts_non_canonical() -> None:
    assert mutf7.decode("&AGE-", strict=False) == "a"
    assert mutf7.decode("&U,BTFw-&ZeVnLIqe-", strict=False) == "台北日本語"


def test_encode_refuses_lone_surrogates() -> None:
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.encode("x\udc80")


@pytest.mark.parametrize("name", ["", "A//B", "A/", ".", "..", "A/../B", "x\x00", "x\ty",
                                  "x\x9b", "x\ud800", "é" * 200,
                                  "/".join(["d"] * (MAX_DEPTH + 1))])
def test_normalise_refuses(name: str) -> None:
    with pytest.raises(InvalidFolderNameError):
        normalise(name)


def test_normalise_spells_inbox() -> None:
    assert normalise("inbox") == INBOX
    assert normalise("Inbox/Sub") == "INBOX/Sub"
    assert normalise("Inboxes") == "Inboxes"
    assert normalise("/".join(["d"] * MAX_DEPTH)) == "/".join(["d"] * MAX_DEPTH)


@pytest.mark.parametrize("directory", ["..", ".", "cur", ".A..B", ".a.b~", ".&AGE-", ".INBOX",
                                       ".inbox.x", ".A~2Eb", ".bad\x01"])
def test_odd_directories_are_not_folders(directory: str) -> None:
    assert folder_name(directory) is None


def test_folders_made_by_another_tool_are_listed(tmp_path: Path) -> None:
    root = tmp_path / "alice"
    account = MaildirAccount("alice@example.test", root)
    for directory in (".Entw&APw-rfe", ".Lists.Debian", ".&AGE-"):
        for sub in ("cur", "new", "tmp"):
            (root / directory / sub).mkdir(parents=True)
    (root / ".NotADir").write_bytes(b"")
    found = list_folder_dirs(root)
    assert {"Entwürfe", "Lists/Debian"} <= set(found)
    assert "a" not in found
    assert "NotADir" not in found
    (root / ".Lists.Debian" / "new" / "1.x.host").write_bytes(b"Subject: x\n\n")
    assert [m.uid for m in account.sync("Lists/Debian").messages] == [1]
    assert "Lists/Debian" in [f.name for f in account.folders()]
    account.close()


def test_created_folder_is_a_maildirplusplus_folder(tmp_path: Path) -> None:
    root = tmp_path / "alice"
    account = MaildirAccount("alice@example.test", root)
    account.create_folder("Reisen/台北")
    for directory in (".Reisen", ".Reisen.&U,BTFw-"):
        assert (root / directory / "maildirfolder").exists()
        assert all((root / directory / sub).is_dir() for sub in ("cur", "new", "tmp"))
    account.close()
