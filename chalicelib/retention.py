"""The sweep: what is kept for a time and then removed, in bounded batches, by
the scheduled function on AWS (before it sends webhooks) and by `make run`'s
sender loop (once a minute). Each batch is one statement that costs what it
removes: events past EVENT_RETENTION_DAYS (their webhook rows and attempts
with them), idempotency keys past 24 hours, the contacts and instructions
of deliveries final for CONTACT_RETENTION_DAYS, and couriers' positions a day
after they were sent."""

import logging
import time

from chalicelib import config, conn

BATCH = 1000
_log = logging.getLogger("delivery_api.retention")


def _drain(fn: str, args: tuple, deadline: float) -> int:
    """Calls a purge function until a batch comes back short (nothing more is
    due) or the deadline passes; returns how many rows went."""
    total = 0
    while time.monotonic() < deadline:
        (removed,), = conn.rows(fn, *args, BATCH)
        total += removed
        if removed < BATCH:
            break
    return total


def sweep(seconds: float = 10.0) -> dict[str, int]:
    """One sweep of at most about `seconds`: the rows removed, by kind."""
    deadline = time.monotonic() + seconds
    removed = {"contacts": _drain("erase_contacts", (config.contact_retention_days(),),
                                  deadline),
               "events": _drain("purge_events", (config.event_retention_days(),), deadline),
               "idempotency_keys": _drain("purge_idempotency_keys", (), deadline),
               "positions": _drain("purge_positions", (), deadline)}
    if any(removed.values()):
        _log.info("retention sweep", extra={"fields": removed})
    return removed
