"""`mailstead spam train` and `mailstead spam stats`, run as subprocesses like an admin does,
on the synthetic corpus (a directory of .eml files) and a Maildir copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import datadir
from appliance.settings import load_settings
from appliance.spam.classifier import Model
from appliance.spam.store import GLOBAL, TokenStore, db_path
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

CORPUS = Path(__file__).parent.parent / "data" / "spam"
CONFIG = '[server]\nhostname = "mx.example.test"\n[paths]\ndata_dir = "."\n'


def run(config: Path, *args: str, status: int = 0) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    proc = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    return (proc.stdout if status != 2 else proc.stderr).splitlines()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailstead.toml"
    path.write_text(CONFIG, encoding="utf-8")
    datadir.prepare(load_settings(path, {}))
    return path


def test_train_the_global_model_then_stats(config: Path) -> None:
    assert run(config, "spam", "stats") == ["nothing learned yet"]
    out = run(config, "spam", "train", "--spam", str(CORPUS / "spam"),
              "--ham", str(CORPUS / "ham"))
    assert out == ["spam: 30 learned, 0 relearned from the other class, 0 already known",
                   "ham: 30 learned, 0 relearned from the other class, 0 already known",
                   "global model: 30 spam, 30 ham"]
    again = run(config, "spam", "train", "--spam", str(CORPUS / "spam"))
    assert again[0] == "spam: 0 learned, 0 relearned from the other class, 30 already known"
    stats = run(config, "spam", "stats")
    assert stats[1].split()[:3] == ["(global)", "30", "30"]
    tokens = TokenStore(db_path(config.parent))
    assert tokens.model(GLOBAL) == Model(30, 30)
    tokens.close()


def test_train_from_a_maildir_into_an_account(config: Path, tmp_path: Path) -> None:
    directory = SqliteDirectory(open_database(config.parent))
    directory.add_domain("example.test")
    directory.add_account("alice@example.test", "x")
    maildir = tmp_path / "corpus-maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, path in enumerate(sorted((CORPUS / "ham").glob("*.eml"))[:7]):
        shutil.copy(path, maildir / ("cur" if i % 2 else "new") / f"{i}.host:2,S")
    err = run(config, "spam", "train", "--ham", str(maildir), "--account",
              "nobody@example.test", status=2)
    assert "nobody@example.test" in err[0]
    out = run(config, "spam", "train", "--ham", str(maildir), "--account",
              "Alice@Example.test")
    assert out == ["ham: 7 learned, 0 relearned from the other class, 0 already known",
                   "alice@example.test model: 0 spam, 7 ham"]
    tokens = TokenStore(db_path(config.parent))
    assert tokens.model(GLOBAL) == Model(0, 0)
    tokens.close()


def test_refuses_what_is_not_a_corpus(config: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    err = run(config, "spam", "train", "--spam", str(tmp_path / "empty"), status=2)
    assert "neither a Maildir nor a directory of .eml files" in err[0]
    err = run(config, "spam", "train", status=2)
    assert "--spam DIR and/or --ham DIR" in err[0]
