"""The two commands a logged-in client repeats most, answered straight from the line received:
NOOP, and FETCH / UID FETCH of one whole message (BODY.PEEK[] and the like: what mbsync
sends for every message it downloads, `UID FETCH n (BODY.PEEK[])`).

The general path frames the line (`receiver`), parses it (`commands`), plans it
(`session`), and drives the answer through the inline machinery (`server_plans`,
`server_inline`) and the handlers' generators: about 160 Python calls for a NOOP and 310 for
one message, each command paying for generality it does not use. Here one regular
expression recognises the line and the answer is made in one go from the same parts
(`fetch_response.whole_message_pieces`, `handlers.pending_updates`, the store's
`read_many`), under the same conditions as the direct path (`server_inline`): the store's
lock free and taken without waiting, no IMAP work of the account in a worker thread, the
folder unchanged since the last threaded command, nothing held back for this session
(expunges not yet told). Whatever else -- another shape, a literal, a sequence number past
the end, a message the store no longer has, a big one, a changed folder, a busy lock --
is declined before anything is written, and the line goes the general way, which answers
it exactly as before. `tests/unit/test_imap_fast_lane.py` runs command streams both ways
and compares the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.imap import responses as r
from appliance.imap import server_inline as inline
from appliance.imap.commands.messages import fetch_items_of
from appliance.imap.fetch_items import FetchKind, FetchModifiers
from appliance.imap.fetch_response import whole_message_names, whole_message_pieces
from appliance.imap.grammar import UINT32_MAX
from appliance.imap.handlers import pending_updates
from appliance.imap.state import State
from appliance.storage.mailbox_api import MailboxError

if TYPE_CHECKING:
    from appliance.imap.server_plans import PlanRunner

# tag SP "NOOP" / tag SP ["UID" SP] "FETCH" SP number SP items, CRLF (RFC 9051 9: commands
# are case-insensitive). A narrower tag than the grammar allows, no literal, no "*", no
# range: anything else is for the general path.
LINE = re.compile(rb"([A-Za-z0-9.]{1,32}) (?:(?i:NOOP)|(?:((?i:UID)) )?(?i:FETCH) "
                  rb"([1-9][0-9]{0,9}) ([^\r\n{}]{1,200}))\r\n")

MAX_MESSAGE = 256 * 1024    # larger messages go the general way (written in budgeted chunks)
NOOP_DONE = "NOOP " + r.DONE
FETCH_DONE = "FETCH " + r.DONE
_NO_MODIFIERS = FetchModifiers()
_NO_RECENT: frozenset[int] = frozenset()


def answer(runner: PlanRunner, line: re.Match[bytes]) -> bytes | None:
    """The whole answer to the command `LINE` matched, made now; None when it is not for
    this lane (nothing is then changed or written: the general path takes the line)."""
    session, conn = runner.session, runner.conn
    if conn.write_paused or not conn.config.thread_jobs.idle(conn.account):
        return None
    tag = line[1].decode("ascii")
    if line[3] is None:                 # NOOP: the updates and OK
        return _held(runner, lambda: _closing(runner, [], True, r.tagged_ok(tag, NOOP_DONE)))
    view = session.selected
    if view is None or session.state is not State.SELECTED or view.gone:
        return None
    number, uid = int(line[3]), line[2] is not None
    items = fetch_items_of(line[4], uid)
    if number > UINT32_MAX or items is None or items[1] != _NO_MODIFIERS:
        return None
    attributes = items[0]
    names = whole_message_names(attributes)
    if (names is None or any(a.kind is FetchKind.MODSEQ for a in attributes)
            or (not view.readonly and any(a.sets_seen for a in attributes))):
        return None                     # CONDSTORE turned on, or a \Seen to store
    if uid:
        seq = view.seq_of(number)
    elif number <= view.exists:
        seq = number
    else:
        return None                     # BAD: past the end (RFC 9051 9, seq-number)
    if seq is not None and view.messages[seq - 1].size > MAX_MESSAGE:
        return None

    def fetch() -> bytes | None:
        parts: list[bytes] = []
        if seq is not None:
            meta = view.messages[seq - 1]
            account = session.account
            assert account is not None
            content = next(iter(account.read_many(view.name, [meta.uid])))[1]
            if content is None:
                return None             # gone meanwhile: the general path says EXPUNGEISSUED
            recent = view.recent if not session.rev2 else _NO_RECENT
            parts += whole_message_pieces(seq, meta, attributes, names, content,
                                          recent=meta.uid in recent, include_uid=uid,
                                          include_modseq=False)
        return _closing(runner, parts, uid, r.tagged_ok(tag, FETCH_DONE))

    return _held(runner, fetch)


def _held(runner: PlanRunner, make: Callable[[], bytes | None]) -> bytes | None:
    """`make`'s answer under the account's store lock, taken only if free, and only when the
    folder is as the last threaded command left it (`server_inline.unchanged`, whose check
    the closing sync then reuses: `AccountMail.try_lock`)."""
    session = runner.session
    lock = inline.StoreLock(session.account)
    if not lock.take():
        return None
    try:
        if not inline.unchanged(session, runner.change_token):
            return None
        try:
            return make()
        except MailboxError:
            return None                 # the folder went away: the general path answers NO
    finally:
        lock.give()


def _closing(runner: PlanRunner, parts: list[bytes], allow_expunge: bool,
             tagged: bytes) -> bytes:
    """`parts`, the updates every command ends with (`handlers.dispatch_command`), the
    tagged reply."""
    session = runner.session
    if session.selected is not None and session.account is not None:
        try:  # noqa: SIM105 -- contextlib.suppress costs three calls on every command
            parts += pending_updates(session, allow_expunge=allow_expunge)
        except MailboxError:
            pass
    parts.append(tagged)
    return b"".join(parts)
