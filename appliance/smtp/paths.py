"""The common MAIL FROM / RCPT TO path, parsed without the e-mail header parser.

RFC 5321 4.1.2:
    Path      = "<" [ A-d-l ":" ] Mailbox ">"
    Mailbox   = Local-part "@" ( Domain / address-literal )
    Dot-string = Atom *("."  Atom)
    Domain    = sub-domain *("." sub-domain)

aiosmtpd hands every path to the stdlib's RFC 5322 header parser (and defines a class on
each call): about a sixth of the engine's CPU per message. Nearly every path is the plain
`<dot-string@domain>`; `simple_path` parses exactly that and gives the same result the
stdlib parser gives, and None for anything else, which then takes the full parser.
"""

from __future__ import annotations

import re

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9-]+"
_SIMPLE = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>")
_BLANK = " \t"


def simple_path(arg: str) -> tuple[str, str] | None:
    """(address, parameters) for `<local@domain> [parameters]`, or None if not that simple.

    Like aiosmtpd's `_getaddr`: the blanks between the path and the parameters are dropped.
    """
    match = _SIMPLE.match(arg)
    if match is None:
        return None
    rest = arg[match.end():]
    if rest and rest[0] not in _BLANK:
        return None
    rest = rest.lstrip(_BLANK)
    if rest.startswith("("):        # an RFC 5322 comment: the full parser decides
        return None
    return match[1], rest
