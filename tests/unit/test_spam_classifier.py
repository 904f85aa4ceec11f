"""The classifier (spam/classifier.py), tokenizer, learning with unlearning
(spam/training.py), the model choice and the score decision (checks/spam.py), on the
synthetic corpus in tests/data/spam and a real SQLite store in a tmp dir."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.checks.context import MessageContext
from appliance.checks.result import Verdict
from appliance.checks.spam import (
    Classification,
    SpamCheck,
    SpamPolicy,
    classify,
    decide,
    model_account,
    parse_score,
)
from appliance.settings import SettingsError, load_settings
from appliance.smtp import replies
from appliance.spam.classifier import (
    Counts,
    Model,
    bayes_rule,
    chi2q,
    spam_probability,
    token_probability,
)
from appliance.spam.store import GLOBAL, TokenStore
from appliance.spam.tokenizer import TokenLimits, tokenize
from appliance.spam.training import Learned, Learner, corpus_files, read_message

CORPUS = Path(__file__).parent.parent / "data" / "spam"
ALICE, BOB = "alice@example.test", "bob@example.test"
LOW = SpamPolicy(min_spam=5, min_ham=5)


def corpus(kind: str) -> list[bytes]:
    return [p.read_bytes() for p in corpus_files(CORPUS / kind)]


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenStore]:
    store = TokenStore(tmp_path / "spam" / "bayes.db")
    yield store
    store.close()


@pytest.fixture
def trained(tokens: TokenStore) -> TokenStore:
    """The global model taught 25 spam and 25 ham of the corpus (the last 5 of each held out)."""
    learner = Learner(tokens)
    for message in corpus("spam")[:25]:
        assert learner.learn(GLOBAL, message, True) is Learned.LEARNED
    for message in corpus("ham")[:25]:
        assert learner.learn(GLOBAL, message, False) is Learned.LEARNED
    return tokens


def probability(tokens: TokenStore, account: str, message: bytes) -> float:
    model, counts = tokens.lookup(account, tokenize(message))
    return spam_probability(counts, model)


# -- the math ---------------------------------------------------------------------------------

def test_chi2q_matches_the_closed_form_for_two_degrees_of_freedom() -> None:
    for x2 in (0.0, 0.5, 3.0, 40.0):
        assert chi2q(x2, 2) == pytest.approx(math.exp(-x2 / 2))
    assert chi2q(0.0, 300) == 1.0


def test_token_probability_is_pulled_to_one_half_when_rare() -> None:
    model = Model(10, 10)
    assert token_probability(Counts(0, 0), model) == 0.5
    once, often = token_probability(Counts(1, 0), model), token_probability(Counts(9, 0), model)
    assert 0.5 < once < often < 1.0
    assert token_probability(Counts(0, 9), model) < 0.1


def test_no_clues_means_unsure() -> None:
    assert spam_probability({}, Model(10, 10)) == 0.5
    assert spam_probability({"x": Counts(1, 1)}, Model(10, 10)) == 0.5


def test_bayes_bands() -> None:
    assert bayes_rule(0.9995) == ("BAYES_999", 7.0)
    assert bayes_rule(0.995)[0] == "BAYES_99"
    assert bayes_rule(0.5) == ("BAYES_50", 0.0)
    assert bayes_rule(0.0) == ("BAYES_00", -2.0)


# -- the tokenizer ----------------------------------------------------------------------------

def test_tokens_come_from_subject_headers_text_and_url_domains() -> None:
    found = tokenize(b"From: Promo <x@deals.example.net>\r\nSubject: Cheap watches\r\n"
                     b"Content-Type: text/html\r\n\r\n<p>Buy <b>replica</b> now "
                     b"<a href='http://www.shop.example.org/x'>here</a></p>")
    assert {"subject:cheap", "subject:watches", "from:dom:deals.example.net",
            "replica", "url:www.shop.example.org", "url:shop.example.org",
            "content-type:text/html"} <= found
    assert "<b>replica</b>" not in found


def test_base64_and_quoted_printable_parts_are_decoded() -> None:
    found = tokenize(b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                     b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\nbG90dGVyeSB3aW5uZXI=\r\n"
                     b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: "
                     b"quoted-printable\r\n\r\nfre=\r\nedom\r\n"
                     b"--b\r\nContent-Type: application/pdf; name=a.pdf\r\n"
                     b"Content-Disposition: attachment; filename=a.pdf\r\n\r\nJVBER\r\n--b--\r\n")
    assert {"lottery", "winner", "freedom", "attach:application/pdf", "attach:ext:pdf"} <= found


def test_tokens_and_text_are_bounded() -> None:
    words = b" ".join(b"word%d" % i for i in range(50_000))
    found = tokenize(b"Subject: many\r\n\r\n" + words, TokenLimits(max_tokens=300))
    assert len(found) == 300
    small = tokenize(b"Subject: s\r\n\r\n" + words, TokenLimits(max_text=1024))
    assert "word49999" not in small
    assert len(small) < 250


# -- learning ---------------------------------------------------------------------------------

def test_learning_separates_held_out_spam_and_ham(trained: TokenStore) -> None:
    for message in corpus("spam")[25:]:
        assert probability(trained, GLOBAL, message) > 0.99
    for message in corpus("ham")[25:]:
        assert probability(trained, GLOBAL, message) < 0.01


def test_learning_changes_the_score(tokens: TokenStore) -> None:
    learner = Learner(tokens)
    probe = corpus("spam")[0]
    assert probability(tokens, ALICE, probe) == 0.5
    for message in corpus("spam")[1:6]:
        learner.learn(ALICE, message, True)
    for message in corpus("ham")[:5]:
        learner.learn(ALICE, message, False)
    assert probability(tokens, ALICE, probe) > 0.9
    assert tokens.model(ALICE) == Model(5, 5)
    assert tokens.model(GLOBAL) == Model(0, 0)        # the account's lessons stay its own


def test_relearning_as_the_other_class_unlearns_first(tokens: TokenStore) -> None:
    learner = Learner(tokens)
    message = corpus("spam")[3]
    assert learner.learn(ALICE, message, True) is Learned.LEARNED
    assert learner.learn(ALICE, message, True) is Learned.ALREADY
    spam_counts = tokens.lookup(ALICE, tokenize(message))[1]
    assert all(c == Counts(1, 0) for c in spam_counts.values())
    assert learner.learn(ALICE, message, False) is Learned.RELEARNED
    model, counts = tokens.lookup(ALICE, tokenize(message))
    assert model == Model(0, 1)
    assert counts
    assert all(c == Counts(0, 1) for c in counts.values())
    assert learner.forget(ALICE, message)
    assert tokens.lookup(ALICE, tokenize(message)) == (Model(0, 0), {})
    assert not learner.forget(ALICE, message)


def test_line_ends_do_not_make_a_new_message(tokens: TokenStore) -> None:
    learner = Learner(tokens)
    message = corpus("ham")[0]
    learner.learn(BOB, message, False)
    assert learner.learn(BOB, message.replace(b"\r\n", b"\n"), False) is Learned.ALREADY


# -- which model scores -----------------------------------------------------------------------

def test_a_big_message_is_one_message_whether_read_whole_or_from_a_file(
        tokens: TokenStore, tmp_path: Path) -> None:
    """The Junk trainer hands over a whole message (CRLF), `spam train` the start of its
    file (LF): both must find the same lesson, or a message would count twice."""
    limits = TokenLimits(max_parse=4096)
    learner = Learner(tokens, limits)
    whole = b"Subject: big\r\n\r\n" + b"cheap pills everywhere\r\n" * 2000
    path = tmp_path / "big.eml"
    path.write_bytes(whole.replace(b"\r\n", b"\n"))
    assert learner.learn("a@example.test", whole, True) is Learned.LEARNED
    assert learner.learn("a@example.test", read_message(path, limits.max_parse),
                         True) is Learned.ALREADY
    assert tokens.model("a@example.test").nspam == 1


def test_model_account_only_for_one_mailbox() -> None:
    assert model_account([ALICE]) == ALICE
    assert model_account([ALICE, ALICE]) == ALICE
    assert model_account([ALICE, BOB]) is None
    assert model_account([]) is None


def opinion(tokens: TokenStore, found: frozenset[str], mailboxes: list[str]) -> Classification:
    result = classify(tokens, LOW, found, mailboxes)
    assert result is not None
    return result


def test_account_model_is_used_once_ready_else_global(trained: TokenStore) -> None:
    learner = Learner(trained)
    probe = corpus("spam")[27]
    found = tokenize(probe)
    assert opinion(trained, found, [ALICE]).model == "global"
    # Alice has sorted these messages the other way round (her taste differs): once her
    # model is ready it decides her mail, but not mail to her and Bob together.
    for message in corpus("spam")[:5]:
        learner.learn(ALICE, message, False)
    for message in corpus("ham")[:4]:
        learner.learn(ALICE, message, True)
    assert opinion(trained, found, [ALICE]).model == "global"       # 4 < min_spam
    learner.learn(ALICE, corpus("ham")[4], True)
    mine = opinion(trained, found, [ALICE])
    assert mine.model == "account"
    assert mine.probability < 0.01
    both = opinion(trained, found, [ALICE, BOB])
    assert both.model == "global"
    assert both.probability > 0.99


def test_nothing_ready_means_no_classifier_opinion(tokens: TokenStore) -> None:
    assert classify(tokens, LOW, tokenize(corpus("spam")[0]), [ALICE]) is None


# -- the score and the decision ---------------------------------------------------------------

def test_decide_sums_parts_and_writes_spamassassin_headers() -> None:
    bayes = classify_stub(0.995)
    result = decide([("RBL_X", 2.0)], bayes, SpamPolicy())
    assert result.verdict is Verdict.JUNK
    assert result.headers[0] == "X-Spam-Score: 7.5"
    assert result.headers[1] == ("X-Spam-Status: Yes, score=7.5 required=5.0 "
                                 "tests=BAYES_99,RBL_X")
    assert result.headers[2].startswith("X-Spam-Report: BAYES_99=5.5 RBL_X=2 (global model")
    assert "RBL_X=2" in result.reason


def test_decide_accepts_low_scores_and_rejects_high_ones() -> None:
    low = decide([("DNSWL", -1.0)], None, SpamPolicy())
    assert low.verdict is Verdict.ACCEPT
    assert low.headers[1] == "X-Spam-Status: No, score=-1.0 required=5.0 tests=DNSWL"
    none = decide([], None, SpamPolicy())
    assert none.headers[:2] == ("X-Spam-Score: 0.0",
                                "X-Spam-Status: No, score=0.0 required=5.0 tests=none")
    high = decide([("RBL_A", 9.0), ("DMARC_FAIL", 6.0)], None, SpamPolicy())
    assert high.verdict is Verdict.REJECT
    assert high.reply == replies.SPAM_REJECTED
    assert high.reply.startswith("550 5.7.1 ")
    assert "RBL_A" not in high.reply                  # the client learns only "policy"


def test_rule_names_cannot_break_the_header() -> None:
    result = decide([("EVIL\r\nX-Injected: 1;", 1.0)], None, SpamPolicy())
    assert all("\r" not in h and "\n" not in h for h in result.headers)
    assert "EVIL__X-Injected__1_" in result.headers[1]


def test_parse_score_and_the_threshold_settings() -> None:
    assert parse_score("5") == 5.0
    for bad in ("nan", "inf", "1e9", "five"):
        with pytest.raises(ValueError, match=r"score|float"):
            parse_score(bad)
    env = {"MAILSTEAD_SPAM__JUNK_THRESHOLD": "6.5"}
    assert load_settings(None, env)["spam.junk_threshold"] == "6.5"
    with pytest.raises(SettingsError, match=r"spam\.reject_threshold"):
        load_settings(None, {"MAILSTEAD_SPAM__REJECT_THRESHOLD": "lots"})


def test_check_scores_with_the_trained_database(trained: TokenStore, tmp_path: Path) -> None:
    check = SpamCheck(tmp_path / "spam" / "bayes.db", LOW, TokenLimits())
    context = MessageContext("Q1", "192.0.2.1", mailboxes=(ALICE,))
    context.score_parts.append(("RBL_TEST", 1.5))
    spam = asyncio.run(check.check(corpus("spam")[29], context))
    assert spam.verdict is Verdict.JUNK
    assert "tests=BAYES_999,RBL_TEST" in spam.headers[1]
    ham = asyncio.run(check.check(corpus("ham")[29], MessageContext("Q2", "192.0.2.1")))
    assert ham.verdict is Verdict.ACCEPT
    assert "BAYES_00" in ham.headers[1]
    check.close()


def test_check_fails_open_when_the_database_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "spam").write_text("not a directory")
    check = SpamCheck(tmp_path / "spam" / "bayes.db", LOW, TokenLimits())
    context = MessageContext("Q3", "192.0.2.1")
    context.score_parts.append(("RBL_TEST", 6.0))
    result = asyncio.run(check.check(b"Subject: hi\r\n\r\nhello\r\n", context))
    assert result.verdict is Verdict.JUNK            # the other checks' points still count
    assert result.reason.startswith("classifier unavailable")


def classify_stub(p: float) -> Classification:
    return Classification("global", p, *bayes_rule(p))


def test_our_own_headers_are_not_tokens() -> None:
    found = tokenize(b"X-Spam-Status: Yes, score=9\r\nX-Spam-Score: 9\r\n"
                     b"Authentication-Results: mx.example.test; none\r\nX-Other: 1\r\n\r\nhi")
    assert "header:x-other" in found
    assert not [t for t in found if "spam" in t or "authentication" in t]
