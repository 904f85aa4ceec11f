"""The two commands a logged-in client repeats most, answered straight from the line received:
NOOP, and FETCH / UID FETCH of one whole message (BODY.PEEK[] and the like: what mbsync
sends for every message it downloads, `UID FETCH n (BODY.PEEK[])`).

The general path frames the line (`receiver`), parses it (`commands`), plans it
(`session`), and drives the answer through the inline machinery (`server_plans`,
`server_inline`) and the handlers' generators: about 160 Python calls for a NOOP and 310 for
one message, each command paying for generality it does not use. Here one regular
expression recognises the line and the answer is made in one go from the same parts
(`fetch_response.whole_message_pieces`, the store's `read`), under the conditions of
the direct path (`server_inline`): the store's lock free and taken without waiting, no IMAP
work of the account in a worker thread, the folder unchanged since the change token of the
last threaded command. Then the closing sync every command ends with
(`handlers.dispatch_command`) has nothing to report -- the view was refreshed at or after
that state -- except expunges this view still holds back (`SelectedMailbox.gone`): a FETCH
with some is left to the general path, a NOOP reports them. Whatever else -- another shape,
a literal, a sequence number past the end, a message the store no longer has, a big one, a
changed folder, a busy lock -- is declined before anything is written, and the line goes
the general way, which answers it exactly as before.
`tests/integration/test_imap_fast_lane.py` runs command streams both ways and compares the
bytes.
"""

from __future__ import annotations

import re
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
    from appliance.imap.session import ImapSession

# tag SP "NOOP" / tag SP ["UID" SP] "FETCH" SP number SP items, CRLF (RFC 9051 9: commands
# are case-insensitive). A narrower tag than the grammar allows, no literal, no "*", no
# range: anything else is for the general path.
LINE = re.compile(rb"([A-Za-z0-9.]{1,32}) (?:(?i:NOOP)|(?:((?i:UID)) )?(?i:FETCH) "
                  rb"([1-9][0-9]{0,9}) ([^\r\n{}]{1,200}))\r\n")

MAX_MESSAGE = 256 * 1024    # larger messages go the general way (written in budgeted chunks)
BURST = 256 * 1024          # answers gathered before they are handed to the transport
NOOP_DONE = "NOOP " + r.DONE
FETCH_DONE = "FETCH " + r.DONE
_NO_MODIFIERS = FetchModifiers()
_NO_RECENT: frozenset[int] = frozenset()


def serve(runner: PlanRunner, data: bytes, deadline: float) -> int:
    """Answer the complete lines at the start of `data` this lane takes, in turn, until one
    it declines, `deadline` (the loop's clock) passes or the socket asks for a pause; how
    many octets were answered.

    A client that pipelines (mbsync keeps several `UID FETCH`es in flight; they arrive
    together) gets them answered in bursts: one hold of the account's store lock and one
    change check for the burst, the answers handed to the transport together (one writev).
    Within the hold nothing of ours can change the folder (every store call takes the
    lock; the lane writes nothing); a change by another process during the burst is
    reported by the next command after it, as one landing just after a command's closing
    sync would be (RFC 9051 7)."""
    conn = runner.conn
    loop = conn.loop
    taken = 0
    while (line := LINE.match(data, taken)) is not None:
        if conn.write_paused or not conn.config.thread_jobs.idle(conn.account):
            break
        lock = inline.StoreLock(runner.session.account)
        if not lock.take():
            break
        out: list[bytes] = []
        size = answered = 0
        try:
            if not inline.unchanged(runner.session, runner.change_token):
                break
            while line is not None:
                parts = _answer(runner, line)
                if parts is None:
                    break
                out += parts
                size += sum(map(len, parts))
                answered += 1
                taken = line.end()
                if size >= BURST or loop.time() >= deadline:
                    break
                line = LINE.match(data, taken)
        finally:
            lock.give()
            if out:
                jobs = conn.config.thread_jobs
                jobs.direct += answered
                jobs.fast += answered
                conn.write_now(out)
                conn.note_status(None, out[-1])
        if line is None or parts is None or loop.time() >= deadline:
            break
    return taken


def _answer(runner: PlanRunner, line: re.Match[bytes]) -> list[bytes] | None:
    """The answer to the command `LINE` matched, as chunks (the message text one of them,
    not copied; the tagged reply last); None when it is not for this lane (nothing is then
    changed: the general path takes the line). Call holding the store lock, the folder
    unchanged since the change token (`serve`)."""
    session = runner.session
    tag = line[1].decode("ascii")
    view = session.selected
    if line[3] is None:                 # NOOP: what this view still owes, and OK
        tagged = r.tagged_ok(tag, NOOP_DONE)
        return _owed(session, [], tagged) if view is not None and view.gone else [tagged]
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
    tagged = r.tagged_ok(tag, FETCH_DONE)
    if seq is None:
        return [tagged]
    meta = view.messages[seq - 1]
    account = session.account
    if meta.size > MAX_MESSAGE or account is None:
        return None
    try:
        content = account.read(view.name, meta.uid)
    except MailboxError:
        return None                     # the folder went away: the general path answers NO
    except KeyError:
        return None                     # gone meanwhile: the general path says EXPUNGEISSUED
    recent = view.recent if not session.rev2 else _NO_RECENT
    parts = whole_message_pieces(seq, meta, attributes, names, content,
                                 recent=meta.uid in recent, include_uid=uid,
                                 include_modseq=False)
    parts.append(tagged)
    return parts


def _owed(session: ImapSession, parts: list[bytes], tagged: bytes) -> list[bytes]:
    """`parts`, the updates this session's view still owes its client (expunges held back
    during a FETCH, RFC 9051 7.5.1: `handlers.pending_updates`), the tagged reply. With the
    folder unchanged since the view's last refresh, that is all a command's closing sync
    (`handlers.dispatch_command`) would add."""
    try:  # noqa: SIM105 -- contextlib.suppress costs three calls on every command
        parts += pending_updates(session, allow_expunge=True)
    except MailboxError:
        pass
    parts.append(tagged)
    return parts
