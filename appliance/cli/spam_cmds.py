"""`mailstead spam train --spam DIR --ham DIR [--account ADDRESS]` and `mailstead spam
stats`: teach the classifier a corpus (the global model unless an account is named) and
show what each model has learned. Both work on `data_dir/spam/bayes.db` directly; the
engine may run meanwhile (the database is shared through SQLite WAL)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from appliance.cli import context
from appliance.cli.context import CliError
from appliance.settings import Settings
from appliance.spam.store import GLOBAL, TokenStore, db_path
from appliance.spam.tokenizer import TokenLimits
from appliance.spam.training import Learned, Learner, corpus_files, read_message


def register(commands: Any) -> None:
    spam = commands.add_parser("spam", help="the learning spam classifier")
    sub = spam.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = sub.add_parser("train", help="learn a corpus of spam and/or ham messages")
    train.add_argument("--spam", type=Path, metavar="DIR", action="append", default=[],
                       help="a Maildir or a directory of .eml files of spam (repeatable)")
    train.add_argument("--ham", type=Path, metavar="DIR", action="append", default=[],
                       help="a Maildir or a directory of .eml files of non-spam (repeatable)")
    train.add_argument("--account", metavar="ADDRESS", default=None,
                       help="teach this account's model instead of the global one")
    sub.add_parser("stats", help="messages and tokens each model has learned")
    spam.set_defaults(handler=spam_command)


def spam_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    if not current.data_dir.is_dir():
        raise CliError(f"data directory {current.data_dir} does not exist")
    tokens = TokenStore(db_path(current.data_dir))
    try:
        if args.action == "stats":
            return _stats(tokens)
        return _train(current, tokens, args)
    finally:
        tokens.close()


def _train(current: Settings, tokens: TokenStore, args: argparse.Namespace) -> int:
    if not args.spam and not args.ham:
        raise CliError("name at least one corpus: --spam DIR and/or --ham DIR")
    account = GLOBAL
    if args.account is not None:
        directory, conn = context.open_directory(current)
        try:
            account = directory.get_account(args.account).address
        finally:
            conn.close()
    limits = TokenLimits.from_settings(current)
    learner = Learner(tokens, limits)
    for is_spam, folders in ((True, args.spam), (False, args.ham)):
        outcomes: Counter[Learned] = Counter()
        for folder in folders:
            for path in corpus_files(folder):
                message = read_message(path, limits.max_parse)
                outcomes[learner.learn(account, message, is_spam)] += 1
        if folders:
            print(f"{'spam' if is_spam else 'ham'}: {outcomes[Learned.LEARNED]} learned, "
                  f"{outcomes[Learned.RELEARNED]} relearned from the other class, "
                  f"{outcomes[Learned.ALREADY]} already known")
    model = tokens.model(account)
    print(f"{account or 'global'} model: {model.nspam} spam, {model.nham} ham")
    return 0


def _stats(tokens: TokenStore) -> int:
    rows = tokens.stats()
    if not rows:
        print("nothing learned yet")
        return 0
    print(f"{'model':<40} {'spam':>8} {'ham':>8} {'tokens':>10}")
    for row in rows:
        print(f"{row.account or '(global)':<40} {row.nspam:>8} {row.nham:>8} {row.tokens:>10}")
    return 0
