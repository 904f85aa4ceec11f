"""Message bytes to the set of tokens the classifier counts (pure; after SpamBayes'
tokenizer): words of the decoded text parts and the subject, selected header facts, and the
domains of URLs. Every limit on the untrusted input is a named field of `TokenLimits`."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.settings import Settings


@dataclass(frozen=True)
class TokenLimits:
    """Bounds on the work and the output for one message.

    Attributes:
        max_parse: octets of the message handed to the MIME parser (the rest is ignored).
        max_text: characters of decoded text (all text parts together) that are tokenized.
        max_tokens: distinct tokens per message.
        max_headers: header fields looked at.
    """

    max_parse: int = 1024 * 1024
    max_text: int = 64 * 1024
    max_tokens: int = 2000
    max_headers: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenLimits:
        """`spam.max_text` and `spam.max_tokens`; the other limits keep their defaults."""
        return cls(max_text=settings.get_int("spam.max_text"),
                   max_tokens=settings.get_int("spam.max_tokens"))


DEFAULT_LIMITS = TokenLimits()
MIN_WORD, MAX_WORD = 3, 12          # SpamBayes: shorter words carry nothing, longer ones
                                    # are mostly noise (base64 runs, hashes): count their size
URL = re.compile(r"(?:https?|ftp)://([^\s/<>\"'?#:@]+)", re.IGNORECASE)
EMAIL = re.compile(r"@([\w-]+(?:\.[\w-]+)+)")       # the domains of addresses in text
TAG = re.compile(r"<[^>]{0,2000}>")
WORD_EDGES = "\"'()[]{}<>.,;:!?*#`|"
ADDRESS_HEADERS = ("from", "reply-to", "sender", "return-path")
VALUE_HEADERS = ("x-mailer", "user-agent", "content-transfer-encoding")
# Fields our MX adds after scoring: messages learned from a mailbox carry them, messages
# being scored do not yet, so they would only teach "was delivered here".
OWN_HEADERS = ("x-spam-", "authentication-results")


def tokenize(message: bytes, limits: TokenLimits = DEFAULT_LIMITS) -> frozenset[str]:
    """The distinct tokens of `message` (at most `limits.max_tokens`); never raises for
    anything the message contains."""
    bag = _Bag(limits.max_tokens)
    data = message[:limits.max_parse]
    try:
        parsed = BytesParser(policy=policy.default).parsebytes(data)
    except Exception:      # the parser is meant not to raise; a bug there must not stop mail
        bag.add_words(data[:limits.max_text].decode("latin-1").split(), "")
        return bag.done()
    _header_tokens(parsed, bag, limits)
    bag.add_text(_body_text(parsed, limits.max_text, bag))
    return bag.done()


class _Bag:
    """A token set that stops growing at its bound."""

    def __init__(self, bound: int) -> None:
        self.tokens: set[str] = set()
        self.bound = bound

    def add(self, token: str) -> None:
        if len(self.tokens) < self.bound:
            self.tokens.add(token[:64])

    def add_words(self, words: Iterable[str], prefix: str) -> None:
        for token in word_tokens(dict.fromkeys(words)):       # each distinct word once
            if len(self.tokens) >= self.bound:
                return
            self.add(prefix + token)

    def add_text(self, text: str) -> None:
        for domain in URL.findall(text):
            for token in domain_tokens("url:", domain):
                self.add(token)
        if "@" in text:
            for domain in EMAIL.findall(text):
                self.add("email:" + domain.lower())
        self.add_words(URL.sub(" ", text).split(), "")

    def done(self) -> frozenset[str]:
        return frozenset(self.tokens)


def word_tokens(words: Iterable[str]) -> Iterator[str]:
    """Lower-cased words stripped of punctuation; long ones become their first letter and
    length band ("skip:x 20"), as SpamBayes does."""
    for raw in words:
        word = raw.strip(WORD_EDGES).lower()
        if len(word) < MIN_WORD:
            continue
        if len(word) > MAX_WORD:
            yield f"skip:{word[0]} {len(word) // 10 * 10}"
        else:
            yield word


def domain_tokens(prefix: str, host: str) -> Iterator[str]:
    """`url:www.example.org`, `url:example.org` (the host and its parents, not the TLD)."""
    labels = host.lower().strip(".").split(".")[-6:]
    for start in range(max(len(labels) - 1, 1)):
        yield prefix + ".".join(labels[start:])


def _header(message: Message, name: str) -> str:
    """A header's decoded value, "" when absent or when decoding it fails."""
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception:      # a malformed header: the defect itself says nothing here
        return ""


def _header_tokens(message: EmailMessage, bag: _Bag, limits: TokenLimits) -> None:
    """Subject words, sender domains, mailer names, content type, and which fields exist."""
    bag.add_words(_header(message, "subject").split(), "subject:")
    for name in ADDRESS_HEADERS:
        value = _header(message, name)
        if not value:
            bag.add(f"{name}:none")
        for display, address in _addresses(value):
            _, _, domain = address.rpartition("@")
            bag.add(f"{name}:dom:{domain.lower()}" if domain else f"{name}:bad")
            bag.add_words(display.split(), f"{name}:name:")
    for name in VALUE_HEADERS:
        value = " ".join(_header(message, name).lower().split())[:40]
        if value:
            bag.add(f"{name}:{value}")
    bag.add("content-type:" + message.get_content_type())
    for key in list(message.keys())[:limits.max_headers]:
        if not key.lower().startswith(OWN_HEADERS):
            bag.add("header:" + key.lower()[:40])


def _addresses(value: str) -> list[tuple[str, str]]:
    try:
        return getaddresses([value])[:10]
    except Exception:      # getaddresses on hostile input: nothing to learn from it
        return []


def _body_text(message: EmailMessage, budget: int, bag: _Bag) -> str:
    """The decoded text/plain and text/html parts (tags removed), at most `budget` chars;
    attachments' types and file name extensions go to `bag` ("attach:application/pdf")."""
    pieces: list[str] = []
    used = 0
    try:
        for part in message.walk():
            if used >= budget:
                break
            text = _part_text(part, bag)
            pieces.append(text[:budget - used])
            used += len(pieces[-1])
    except Exception:      # RecursionError on absurd nesting, and the like: keep what we have
        return " ".join(pieces)
    return " ".join(pieces)


def _part_text(part: Message, bag: _Bag) -> str:
    if part.is_multipart():
        return ""
    kind = part.get_content_type()
    filename = _filename(part)
    if filename or not kind.startswith("text/"):
        bag.add(f"attach:{kind}")
        if "." in filename:
            bag.add("attach:ext:" + filename.rpartition(".")[2].lower()[:10])
        return ""
    text = _decoded(part)
    if kind == "text/html":
        hrefs = " ".join(URL.findall(text))   # keep link targets before tags go
        text = html.unescape(TAG.sub(" ", text)) + " " + " ".join(
            f"http://{h}" for h in hrefs.split())
    return text


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:      # malformed RFC 2231 parameters
        return ""


def _decoded(part: Message) -> str:
    """The part's text: its declared charset when Python knows it, else Latin-1."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:      # broken transfer encodings
        return ""
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload.decode(charset, "replace")
    except (LookupError, ValueError):
        return payload.decode("latin-1")
