"""`mailstead queue list|show|retry|delete|flush`: the outbound queue from the command line.

With the engine running, the commands go over its control socket (so `retry` and `flush`
wake the runner at once and `list` shows which messages are being delivered); without it,
they work on the spool database directly. `--json` prints the raw answer for scripts.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from appliance.cli import context
from appliance.cli.context import CliError
from appliance.control import client
from appliance.control.messages import ControlError
from appliance.control.queue_ops import QueueOps
from appliance.control.server import SOCKET_NAME
from appliance.outbound.service import open_spool
from appliance.settings import Settings


def register(commands: Any) -> None:
    queue = commands.add_parser("queue", help="inspect and manage the outbound queue")
    queue.add_argument("--json", action="store_true", help="print the answer as JSON")
    sub = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="list queued messages")
    sub.add_parser("show", help="show one message and its recipients").add_argument("queue_id")
    sub.add_parser("retry", help="try one message again now").add_argument("queue_id")
    sub.add_parser("delete", help="delete one message without a bounce"
                   ).add_argument("queue_id")
    sub.add_parser("flush", help="try every queued message again now")
    queue.set_defaults(handler=queue_command)


def queue_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    op = f"queue.{args.action}"
    params = {"queue_id": args.queue_id} if hasattr(args, "queue_id") else {}
    try:
        result = run_op(current, op, params)
    except ControlError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render(op, result))
    return 0


def run_op(current: Settings, op: str, params: dict[str, str]) -> Any:
    """Ask the running engine; if none answers, work on the spool directly."""
    try:
        return client.call(current.data_dir / SOCKET_NAME, op, **params)
    except client.ControlUnavailableError:
        pass
    if not (current.data_dir / "queue").is_dir():
        raise CliError(f"no queue in {current.data_dir}: has the engine ever run there?")
    spool = open_spool(current)
    try:
        return QueueOps(spool).call(op, params)
    finally:
        spool.close()


def render(op: str, result: Any) -> str:
    if op == "queue.list":
        return _render_list(result)
    if op == "queue.show":
        return _render_show(result)
    if op == "queue.flush":
        return f"{result['recipients']} recipient(s) due now"
    if op == "queue.retry":
        return f"{result['queue_id']}: {result['recipients']} recipient(s) due now"
    return f"{result['queue_id']}: deleted"


def _render_list(messages: list[dict[str, Any]]) -> str:
    if not messages:
        return "queue is empty"
    lines = [f"{'QUEUE ID':<14} {'SIZE':>9}  {'QUEUED':<20} {'NEXT TRY':<20} RCPT  SENDER"]
    for m in messages:
        state = "active" if m["active"] else _when(m["next_try"])
        lines.append(f"{m['queue_id']:<14} {m['size']:>9}  {_when(m['queued_at']):<20} "
                     f"{state:<20} {m['pending']}/{m['recipients']:<3} <{m['sender']}>")
        for deferred in m.get("deferred", []):
            lines.append(f"    ({deferred['last_reply']})\n      <{deferred['address']}>")
    lines.append(f"-- {len(messages)} message(s)")
    return "\n".join(lines)


def _render_show(m: dict[str, Any]) -> str:
    lines = [f"queue id:   {m['queue_id']}", f"sender:     <{m['sender']}>",
             f"size:       {m['size']}", f"queued at:  {_when(m['queued_at'])}",
             f"envid:      {m['envid'] or '-'}", f"ret:        {m['ret'] or '-'}",
             f"active:     {'yes' if m['active'] else 'no'}", "recipients:"]
    for r in m["recipient_list"]:
        lines.append(f"  <{r['address']}> {r['state']}, {r['attempts']} attempt(s), "
                     f"next try {_when(r['next_try'])}")
        if r["last_reply"]:
            lines.append(f"    last reply: {r['last_reply']}"
                         + (f" (from {r['remote_host']})" if r["remote_host"] else ""))
    return "\n".join(lines)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
