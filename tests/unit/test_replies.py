"""The reply catalogue and the translation of aiosmtpd's built-in replies (RFC 3463, RFC 2034)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aiosmtpd.smtp
import pytest

from appliance.smtp import replies
from appliance.storage.maildir.store import TEMP_FAILURE

# RFC 3463 2: status-code = class "." subject "." detail; class is 2, 4 or 5 and matches
# the first digit of the RFC 5321 reply code.
ENHANCED = re.compile(r"(?P<code>[245]\d\d) (?P<cls>[245])\.\d{1,3}\.\d{1,3}(?: \S.*)?")


def catalogue() -> dict[str, str]:
    names = [n for n in vars(replies) if n.isupper() and isinstance(getattr(replies, n), str)]
    return {n: getattr(replies, n) for n in names if n != "GREETING_IDENT"}


def assert_enhanced(reply: str) -> None:
    match = ENHANCED.fullmatch(reply)
    assert match is not None, f"no enhanced status code: {reply!r}"
    assert match["code"][0] == match["cls"], f"class mismatch: {reply!r}"


def test_catalogue_is_not_empty() -> None:
    assert len(catalogue()) >= 30


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_catalogue_reply_has_a_matching_enhanced_code(name: str) -> None:
    reply = catalogue()[name].format(queue_id="Q1", hostname="mx.example.test", octets=1)
    assert_enhanced(reply)
    assert "\r" not in reply
    assert "\n" not in reply


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_catalogue_replies_pass_translate_unchanged(name: str) -> None:
    reply = catalogue()[name]
    assert replies.translate(reply) == reply


def test_store_failure_reply_is_temporary_and_enhanced() -> None:
    assert_enhanced(TEMP_FAILURE)
    assert TEMP_FAILURE.startswith("4")


# -- aiosmtpd's own replies ----------------------------------------------------------------

# RFC 2034 3: the greeting and the HELO/EHLO replies carry no enhanced code; RFC 3463 has no
# class 3, so intermediate replies (334, 354) carry none either.
EXEMPT_FUNCTIONS = {"smtp_HELO", "smtp_EHLO"}
GREETING = "220 {} {}"


def _render(node: ast.expr) -> str | None:
    """The text a string expression produces, with every substitution shown as `X`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "X" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _render(node.left)
        return None if left is None else left + (_render(node.right) or "X")
    return None


def aiosmtpd_literals() -> list[tuple[str, str]]:
    """(function, reply) for every reply-shaped string in aiosmtpd's smtp.py."""
    tree = ast.parse(Path(aiosmtpd.smtp.__file__).read_text(encoding="utf-8"))
    found: set[tuple[str, str]] = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        for node in ast.walk(function):
            text = _render(node) if isinstance(node, ast.expr) else None
            if text is None:
                continue
            if text.startswith("{} "):        # smtp_HELP: '{} Supported commands: {}'
                found.update((function.name, text.format(code, "X")) for code in (250, 501))
            elif re.match(r"\d{3}[ -]", text):
                found.add((function.name, text.replace("{}", "X")))
    return sorted(found)


def replies_needing_codes() -> list[str]:
    return sorted({text for function, text in aiosmtpd_literals()
                   if function not in EXEMPT_FUNCTIONS and not text.startswith("3")
                   and text != GREETING.replace("{}", "X")})


def test_aiosmtpd_literals_are_found() -> None:
    found = replies_needing_codes()
    assert len(found) >= 40
    assert "503 Error: need MAIL command" in found
    assert "501 Syntax: RCPT TO: <address>" in found


@pytest.mark.parametrize("literal", replies_needing_codes())
def test_translate_gives_every_aiosmtpd_reply_an_enhanced_code(literal: str) -> None:
    translated = replies.translate(literal)
    assert_enhanced(translated.rstrip())
    internal = literal.startswith(("500 Error: (", "500 Error: Cannot describe"))
    assert translated[:3] == (replies.TEMPORARY_FAILURE[:3] if internal else literal[:3])


@pytest.mark.parametrize(("literal", "expected"), [
    ("250 OK", replies.OK),
    ("503 Error: send HELO first", replies.BAD_SEQUENCE_HELO),
    ('500 Error: command "FOO" not recognized', replies.SYNTAX_ERROR),
    ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
    ("552 Error: Too much mail data", replies.MESSAGE_TOO_BIG),
    ("555 RCPT TO parameters not recognized or not implemented",
     replies.PARAMETERS_NOT_RECOGNISED),
    ("250 Syntax: HELO hostname", "250 2.0.0 Syntax: HELO hostname"),
])
def test_translate_examples(literal: str, expected: str) -> None:
    assert replies.translate(literal) == expected


def test_translate_hides_internal_exception_text() -> None:
    translated = replies.translate("500 Error: (KeyError) 'secret internals'")
    assert "secret" not in translated
    assert translated == replies.TEMPORARY_FAILURE


def test_translate_leaves_other_replies_alone() -> None:
    for reply in ("250-8BITMIME", "250 HELP", "354 End data with <CR><LF>.<CR><LF>",
                  "235 2.7.0 Authentication successful", "550 5.1.1 custom"):
        assert replies.translate(reply) == reply
