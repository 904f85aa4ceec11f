"""Hypothesis command streams through the IMAP core and the real Maildir store: whatever a
client sends, nothing raises, every command gets exactly one tagged reply (OK, NO or BAD),
the session goes on, and the index still agrees with the Maildir afterwards."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.stores import MaildirStores
from harness.imap_core import ADDRESS, CONTINUE_LITERAL, PASSWORD, CoreWire

MAILBOXES = ["INBOX", "Archive", "Trash", '"New Folder"', "Foo/Bar", "&AOQ-", "nowhere", '""']
SETS = ["1", "1:*", "*", "2:4", "1,3", "$", "0", "4294967296", "1:", "x"]
FLAGS = ["\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft", "$Junk", "\\Recent",
         "\\Bogus", "(", ")"]
ITEMS = ["FLAGS", "UID", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]",
         "BODY[HEADER.FIELDS (SUBJECT)]", "BODY[1]<0.10>", "BINARY[1]", "BINARY.SIZE[1]",
         "INTERNALDATE", "MODSEQ", "BODY[TEXT]", "RFC822", "ALL", "FAST", "FULL", "BODY[9.9]"]
KEYS = ["ALL", "SEEN", "UNSEEN", "DELETED", 'SUBJECT "hello"', 'HEADER From "bob"',
        "LARGER 10", "SMALLER 1000000", "OR SEEN FLAGGED", "NOT DELETED", "UID 1:*",
        "SINCE 1-Jan-2020", 'BODY "hello"', "MODSEQ 1", "NEW", "(SEEN UNSEEN)"]


def command(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 16))
    box = draw(st.sampled_from(MAILBOXES))
    seq = draw(st.sampled_from(SETS))
    flags = " ".join(draw(st.lists(st.sampled_from(FLAGS), max_size=3)))
    if choice == 0:
        return f"SELECT {box}"
    if choice == 1:
        return f"EXAMINE {box}"
    if choice == 2:
        items = " ".join(draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3)))
        return f"{draw(st.sampled_from(['', 'UID ']))}FETCH {seq} ({items})"
    if choice == 3:
        op = draw(st.sampled_from(["+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT"]))
        return f"{draw(st.sampled_from(['', 'UID ']))}STORE {seq} {op} ({flags})"
    if choice == 4:
        keys = " ".join(draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)))
        ret = draw(st.sampled_from(["", "RETURN (MIN MAX COUNT) ", "RETURN (SAVE) "]))
        return f"{draw(st.sampled_from(['', 'UID ']))}SEARCH {ret}{keys}"
    if choice == 5:
        verb = draw(st.sampled_from(["COPY", "MOVE", "UID COPY", "UID MOVE"]))
        return f"{verb} {seq} {box}"
    if choice == 6:
        return draw(st.sampled_from(["EXPUNGE", "CLOSE", "UNSELECT", "NOOP", "CHECK",
                                     "UID EXPUNGE 1:*", "NAMESPACE", "CAPABILITY"]))
    if choice == 7:
        return f"{draw(st.sampled_from(['CREATE', 'DELETE', 'SUBSCRIBE', 'UNSUBSCRIBE']))} {box}"
    if choice == 8:
        return f"RENAME {box} {draw(st.sampled_from(MAILBOXES))}"
    if choice == 9:
        return f"STATUS {box} (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ DELETED)"
    if choice == 10:
        return f'LIST "" {draw(st.sampled_from(["*", "%", "INBOX", "Foo/%", "x*y"]))}'
    if choice == 11:
        return f"ENABLE {draw(st.sampled_from(['CONDSTORE', 'QRESYNC', 'UTF8=ACCEPT', 'X']))}"
    if choice == 12:
        body = draw(st.binary(max_size=60)).replace(b"\r", b"").replace(b"\n", b"")
        text = "Subject: fuzz\r\n\r\n" + body.decode("latin-1")
        return f"APPEND {box} ({flags}) {{{len(text.encode('latin-1'))}+}}\r\n{text}"
    if choice == 13:
        return f"GETQUOTAROOT {box}"
    if choice == 14:
        return draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                            max_size=40))
    if choice == 15:
        return f"SELECT {box} (QRESYNC (1 1 1:*))"
    return f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {draw(st.integers(0, 5))} VANISHED)"


commands = st.composite(command)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands(), min_size=1, max_size=25))
def test_any_command_stream_gets_one_tagged_reply_each(stream: list[str]) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        directory = SqliteDirectory(open_database(tmp))
        directory.add_domain("example.test")
        account = directory.add_account(ADDRESS, "x")
        store = MaildirStore(tmp)
        for n in range(4):
            store.deliver(f"From: bob@example.test\nSubject: hello {n}\n\nhello {n}\n".encode(),
                          [Mailbox(account.id, ADDRESS, account.maildir)])
        stores = MaildirStores(tmp, directory)
        wire = CoreWire(stores)
        wire.send(f'a0 LOGIN {ADDRESS} "{PASSWORD}"\r\n'.encode())
        for index, text in enumerate(stream, start=1):
            tag = f"t{index}"
            wire.send(f"{tag} {text}\r\n".encode("latin-1"))
            output = bytes(wire.output).decode("latin-1")
            wire.output.clear()
            tagged = re.findall(rf"^{tag} (OK|NO|BAD)\b", output, re.MULTILINE)
            # One tagged reply, or (random text ending in "{n}") only the literal prompt.
            assert len(tagged) == 1 or output == CONTINUE_LITERAL.decode(), (text, output)
        # The Maildir and the index agree: every folder syncs and its files match its UIDs.
        mail = stores.open(ADDRESS)
        for folder in mail.folders():
            snapshot = mail.sync(folder.name)
            assert len({m.uid for m in snapshot.messages}) == len(snapshot.messages)
            assert all(m.uid < snapshot.uidnext for m in snapshot.messages)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
