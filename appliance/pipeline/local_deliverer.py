"""The Deliverer every process that stores mail builds: the Maildirs, the outbound spool in
`data_dir/queue`, and a wake-up datagram to the queue runner when something is queued.

Kept apart from `outbound/service.py` (which adds the free-space floor and the DSN
`delivered` reports) so that processes that only hand mail in — the hardware monitor's
alerts, the daily DNS check — do not import the outbound transport, DKIM and DNS (about
20 MB of memory).
"""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path

from appliance.outbound.spool import QUEUE_DIR, Spool
from appliance.outbound.wake import send_wake, wake_socket_path
from appliance.pipeline.deliver import Deliverer, SpaceCheck
from appliance.storage.maildir.store import MaildirStore


def local_deliverer(data_dir: Path, executor: Executor, messages_limit: int = 0,
                    check_space: SpaceCheck | None = None) -> Deliverer:
    wake = wake_socket_path(data_dir / QUEUE_DIR)
    return Deliverer(MaildirStore(data_dir), Spool(data_dir / QUEUE_DIR), executor,
                     messages_limit=messages_limit, on_queued=lambda: send_wake(wake),
                     check_space=check_space)
