"""Fuzz modified UTF-7 and folder name <-> directory mapping: round trips and one spelling."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.imap import mutf7
from appliance.storage.mailbox_api import InvalidFolderNameError
from appliance.storage.maildir.folders import dir_name, folder_name, normalise

UNICODE = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
TRICKY = st.text(st.sampled_from("&-~./,+AZaz09 é台😀\x00\x7f"), max_size=20)
MANY = settings(max_examples=1000, deadline=None)
MUTF7_ALPHABET = st.text(st.sampled_from("&-,+/AGEUZaez029 .~é="), max_size=24)


@MANY
@given(st.one_of(UNICODE, TRICKY))
@example("&-&")
@example("~peter/mail/台北/日本語")
def test_mutf7_round_trip(text: str) -> None:
    encoded = mutf7.encode(text)
    assert encoded.isascii()
    assert all(" " <= c <= "~" for c in encoded)
    assert mutf7.decode(encoded) == text
    assert mutf7.decode(encoded, strict=False) == text


@MANY
@given(MUTF7_ALPHABET)
@example("&AGE-")
@example("&-&U,BTFw-")
def test_strict_decode_accepts_only_canonical(text: str) -> None:
    try:
        decoded = mutf7.decode(text)
    except mutf7.MUTF7Error:
        return
    assert mutf7.encode(decoded) == text


@MANY
@given(MUTF7_ALPHABET)
def test_lenient_decode_never_crashes(text: str) -> None:
    try:
        decoded = mutf7.decode(text, strict=False)
    except mutf7.MUTF7Error:
        return
    assert mutf7.decode(mutf7.encode(decoded)) == decoded


@MANY
@given(st.lists(st.one_of(UNICODE, TRICKY), min_size=1, max_size=5).map("/".join))
@example("a.b/~c")
@example("inbox/x")
def test_folder_directory_round_trip(name: str) -> None:
    try:
        normal = normalise(name)
    except InvalidFolderNameError:
        return
    if normal == "INBOX":
        return
    directory = dir_name(normal)
    assert directory.startswith(".")
    assert "/" not in directory
    assert "\x00" not in directory
    assert len(directory.encode()) <= 255
    assert folder_name(directory) == normal


@MANY
@given(st.text(st.sampled_from(".~2eE7&-AGEab/\x00"), max_size=16))
def test_any_directory_name_maps_back_to_itself(directory: str) -> None:
    name = folder_name(directory)
    if name is not None:
        assert dir_name(name) == directory
