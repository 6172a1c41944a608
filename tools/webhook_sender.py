"""The webhook sender for local runs: what the scheduled function does on AWS
(the retention sweep once a minute, and the sender, which looks for due rows
every second), in a loop that `make run` starts beside the API and stops with it.

    python -m tools.webhook_sender [--seconds N]   (default: until SIGTERM)
"""

import argparse
import signal
import sys
import threading
import time

from chalicelib import config, retention, webhooks

SWEEP_EVERY = 60.0  # seconds between retention sweeps, as the schedule on AWS

_stopping = False


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


def _sweep_every_minute() -> None:
    """The retention sweep on its own thread (and database connection), so
    that it never holds up the sender."""
    while not _stopping:
        try:
            retention.sweep(seconds=5)
        except Exception as exc:  # the database away: the next minute tries again
            print(f"webhook sender: retention sweep failed: {type(exc).__name__}", flush=True)
        deadline = time.monotonic() + SWEEP_EVERY
        while not _stopping and time.monotonic() < deadline:
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    parser.add_argument("--idle-sleep", type=float, default=1.0)
    args = parser.parse_args(argv)
    config.check()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("webhook sender: running", flush=True)
    sweeper = threading.Thread(target=_sweep_every_minute, daemon=True)
    sweeper.start()
    sent = webhooks.run(args.seconds, idle_sleep=args.idle_sleep, stop=lambda: _stopping)
    print(f"webhook sender: stopped after {sent} attempts", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
