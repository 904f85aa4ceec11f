"""Fuzz what a user types into the self-service pages and the login: app passwords, TOTP
codes, vacation text and forwarding targets. Only the documented errors escape, and what is
accepted is in the form the engine relies on."""

from __future__ import annotations

import datetime
from random import Random

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.storage.account_settings import (
    MAX_BODY_LENGTH,
    MAX_FORWARD_TARGETS,
    MAX_SUBJECT_LENGTH,
    AccountSettingsError,
    Vacation,
    check_forward_targets,
    check_vacation,
)
from appliance.storage.account_totp import DIGITS, normalise_code
from appliance.storage.app_passwords import (
    MAX_LABEL_LENGTH,
    SECRET_LENGTH,
    AppPasswordError,
    check_label,
    generate,
    normalise,
    selector,
)

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
ACCOUNT = "alice@example.test"


@given(ANY_TEXT)
@example("ABCD-efgh ijkl\tMNOP")
@example("ǅabcdefghijklmno")           # lower() of some letters is not ASCII
@example("İabcdefghijklmno")           # lower() makes two code points of one
def test_app_password_normalise(text: str) -> None:
    letters = normalise(text)
    if letters is None:
        return
    assert len(letters) == SECRET_LENGTH
    assert letters.isascii()
    assert letters.isalpha()
    assert letters == letters.lower()
    assert normalise(letters) == letters
    assert len(selector(letters)) == 4


@given(st.randoms(use_true_random=False))
def test_generated_passwords_normalise_to_their_letters(rng: Random) -> None:
    secret = generate()
    if rng.random() < 0.5:
        secret = secret.replace("-", rng.choice(["", " ", "\t"]))
    letters = "".join(c for c in secret if c.isalpha())
    assert normalise(secret) == letters
    assert normalise(secret.upper()) == letters


@given(ANY_TEXT)
def test_label(text: str) -> None:
    try:
        label = check_label(text)
    except AppPasswordError:
        return
    assert 0 < len(label) <= MAX_LABEL_LENGTH
    assert label == label.strip()
    assert all(ord(c) >= 32 and ord(c) != 127 for c in label)


@given(ANY_TEXT)
@example("١٢٣٤٥٦")
@example("123 456")
def test_totp_code(text: str) -> None:
    code = normalise_code(text)
    if code is not None:
        assert len(code) == DIGITS
        assert all(c in "0123456789" for c in code)


@given(st.booleans(), ANY_TEXT, st.text(st.characters(codec=None, exclude_categories=()),
                                        max_size=MAX_BODY_LENGTH + 10),
       st.none() | st.dates(), st.none() | st.dates())
def test_vacation(enabled: bool, subject: str, body: str, start: datetime.date | None,
                  end: datetime.date | None) -> None:
    try:
        vacation = check_vacation(Vacation(enabled, subject, body, start, end))
    except AccountSettingsError:
        return
    assert 0 < len(vacation.subject) <= MAX_SUBJECT_LENGTH
    assert len(vacation.subject.splitlines()) == 1       # one header line, whatever breaks it
    assert len(vacation.body) <= MAX_BODY_LENGTH
    assert "\r" not in vacation.body
    assert not vacation.enabled or vacation.body.strip()
    assert check_vacation(vacation) == vacation


ADDRESSISH = st.one_of(ANY_TEXT, st.from_regex(r"[a-zA-Z0-9.+\-]{1,20}@[a-z0-9\-.]{1,30}",
                                               fullmatch=True))


@given(st.lists(ADDRESSISH, max_size=MAX_FORWARD_TARGETS + 3))
@example(["Alice@example.test"])
@example(["bob@example.org\r\nRCPT TO:<x@example.org>"])
def test_forward_targets(targets: list[str]) -> None:
    try:
        checked = check_forward_targets(ACCOUNT, targets)
    except AccountSettingsError:
        return
    assert len(checked) <= MAX_FORWARD_TARGETS
    assert len({t.casefold() for t in checked}) == len(checked)
    assert all("\r" not in t and "\n" not in t and "@" in t for t in checked)
    assert check_forward_targets(ACCOUNT, checked) == checked
