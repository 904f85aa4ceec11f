"""Mail the DNS page's alerts (a record whose check changed state) to the admin.

`dns_store.save` records a `dns_alerts` row for every change; this module sends the rows not
mailed yet as one message to the admin (`monitor.admin_address`, else postmaster@ of the
primary domain: the hardware monitor's rule) through Mailstead's own Deliverer, the way the
monitor's alerts go (`appliance/hardware/notify.py`: null sender, `Auto-Submitted:
auto-generated`, no outside service), and marks them mailed. `mailstead dns check --daily`
calls it after the daily re-check (the image runs that from a timer).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from appliance.core import log
from appliance.hardware import notify
from appliance.pipeline.local_deliverer import local_deliverer
from appliance.settings import Settings
from appliance.storage.db import immediate_transaction
from appliance.storage.directory import SqliteDirectory
from webui.dns_store import Alert

MAX_PER_MAIL = 200      # a zone rewritten at once: list this many, count the rest


def unmailed(conn: sqlite3.Connection) -> list[Alert]:
    rows = conn.execute(
        "SELECT id, created_at, domain, record_key, name, rtype, old_state, new_state, note "
        "FROM dns_alerts WHERE mailed_at IS NULL ORDER BY id").fetchall()
    return [Alert(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                  str(r[6]), str(r[7]), str(r[8])) for r in rows]


def compose(alerts: Sequence[Alert], sender: str, to: str, hostname: str,
            now: datetime | None = None) -> bytes:
    """One message for all of `alerts` (CRLF line ends)."""
    worse = [a for a in alerts if a.new_state != "ok"]
    lines = [f"The daily DNS check of {hostname} found changes:", ""]
    for alert in alerts[:MAX_PER_MAIL]:
        scope = alert.domain or "this server"
        note = f" ({alert.note})" if alert.note else ""
        lines.append(f"{scope}: {alert.rtype} {alert.name}: {alert.old_state} -> "
                     f"{alert.new_state}{note}")
    if len(alerts) > MAX_PER_MAIL:
        lines.append(f"... and {len(alerts) - MAX_PER_MAIL} more")
    lines += ["", "The console's DNS page shows what each record should be."]
    return notify.system_mail(f"Mailstead DNS check <{sender}>", to,
                              f"[Mailstead {'WARNING' if worse else 'OK'}] DNS: "
                              f"{len(alerts)} record check(s) changed",
                              "\n".join(lines) + "\n", hostname, now)


def mail_alerts(settings: Settings, conn: sqlite3.Connection) -> str | None:
    """Send the unmailed alerts (if any) and mark them; the queue id, or None when nothing
    was sent (no alerts, or no admin address: logged, the rows stay for the next run)."""
    alerts = unmailed(conn)
    if not alerts:
        return None
    admin = notify.admin_mailbox(settings, SqliteDirectory(conn))
    if admin is None:
        log.event("dns.no_admin_address", address=settings.get_str("monitor.admin_address"),
                  alerts=len(alerts))
        return None
    address, to = admin.address, admin.to
    message = compose(alerts, admin.sender, address, settings.get_str("server.hostname"))
    with ThreadPoolExecutor(max_workers=1) as executor:
        deliverer = local_deliverer(settings.data_dir, executor,
                                     settings.get_int("limits.max_messages_per_account"))
        queue_id = asyncio.run(notify.send(deliverer, to, message))
    with immediate_transaction(conn):
        conn.executemany("UPDATE dns_alerts SET mailed_at = ? WHERE id = ?",
                         [(int(time.time()), a.id) for a in alerts])
    log.event("dns.alerts_mailed", to=address, queue_id=queue_id, alerts=len(alerts))
    return queue_id
