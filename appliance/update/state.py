"""The updater's state on the data partition, in `update.state_dir` (on the appliance
root's `/var/lib/mailstead/.system/update/`, beside and not inside the `mailstead` user's
data directory: the updater runs as root and must not work in a directory that user can
change; in dev mode `<data_dir>/update/`). `state.json` holds the pending install, the
outcome history, and versions that failed (not installed again by the timer); it holds no
secret and is readable by the console. Written atomically (temp, fsync, rename, fsync dir)
through core.fsio. The TUF metadata cache (`tuf/`) and `downloads/` live there too.

Also kept for the console, which can read neither the ESP (/efi is root's, 0700) nor the
update server's answers: `last_check` (when the update server was last asked, and what it
said) and `esp` (the loader entries of each slot as root last saw them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from appliance.core import fsio
from appliance.settings import Settings
from appliance.update.slots import Pending

UPDATE_DIR = "update"
STATE_FILE = "state.json"
MAX_HISTORY = 50


@dataclass
class Outcome:
    """One line of history: what became of an install."""

    version: str
    outcome: str           # installed, aborted, failed, committed, rolled back
    reason: str = ""
    from_version: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class LastCheck:
    """The last question to the update server: `result` is "up to date", "offered X" or
    "refused: <reason>" (trust.REASONS); `detail` the refusal's message."""

    channel: str
    result: str
    detail: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class EspView:
    """The loader entry file names of each slot on the ESP (`root-b+2-1.conf`), as root saw
    them at `at`: the console decides from them whether the previous slot can boot."""

    entries: dict[str, list[str]] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass
class UpdateState:
    pending: Pending | None = None
    failure: str = ""      # why the trial boot failed (kept until the rollback is recorded)
    history: list[Outcome] = field(default_factory=list)
    failed_versions: list[str] = field(default_factory=list)
    last_check: LastCheck | None = None
    esp: EspView | None = None

    def record(self, outcome: Outcome) -> None:
        self.history = [*self.history, outcome][-MAX_HISTORY:]

    @property
    def last(self) -> Outcome | None:
        return self.history[-1] if self.history else None


def state_dir(settings: Settings) -> Path:
    """`update.state_dir`, or `<data_dir>/update` when it is empty."""
    if settings.get_str("update.state_dir"):
        return settings.data_path("update.state_dir")
    return settings.data_dir / UPDATE_DIR


def update_dir(folder: Path) -> Path:
    """`folder`, created (0755: the console reads the state) when missing."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    return folder


def load(folder: Path) -> UpdateState:
    """The state, or an empty one when there is none yet.

    Raises:
        ValueError: state.json exists but is not ours (hand-edited, corrupt).
    """
    path = folder / STATE_FILE
    if not path.is_file():
        return UpdateState()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pending = data.get("pending")
        return UpdateState(
            pending=Pending(**pending) if pending else None,
            failure=str(data.get("failure", "")),
            history=[Outcome(**item) for item in data.get("history", [])],
            failed_versions=[str(v) for v in data.get("failed_versions", [])],
            last_check=_known(LastCheck, data.get("last_check")),
            esp=_esp(data.get("esp")))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a valid update state: {exc}") from None


def _known(kind: type[LastCheck], item: Any) -> LastCheck | None:
    """A LastCheck from its JSON object (None when absent: files from before the field);
    keys it does not know are left out (a newer version's state after a rollback)."""
    if item is None:
        return None
    names = {f.name for f in fields(kind)}
    return kind(**{key: value for key, value in dict(item).items() if key in names})


def _esp(item: Any) -> EspView | None:
    if item is None:
        return None
    entries = {str(slot): [str(name) for name in names]
               for slot, names in dict(item.get("entries", {})).items()}
    return EspView(entries, float(item.get("at", 0.0)))


def save(folder: Path, current: UpdateState) -> None:
    """Write state.json (0644) and keep its folder 0755: the console, another user, reads
    it (trust.py closes the folder to 0700 when it makes the TUF cache in it)."""
    data: dict[str, Any] = asdict(current)
    fsio.atomic_write(update_dir(folder) / STATE_FILE,
                      json.dumps(data, indent=2, sort_keys=True).encode() + b"\n", 0o644)
    if folder.stat().st_mode & 0o777 != 0o755:
        folder.chmod(0o755)
