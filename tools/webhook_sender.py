"""The webhook sender for local runs: what the scheduled function does on AWS,
in a loop that looks for due deliveries every second (`make run` starts it
beside the API and stops it with it).

    python -m tools.webhook_sender [--seconds N]   (default: until SIGTERM)
"""

import argparse
import signal
import sys

from chalicelib import config, webhooks

_stopping = False


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    parser.add_argument("--idle-sleep", type=float, default=1.0)
    args = parser.parse_args(argv)
    config.check()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("webhook sender: running", flush=True)
    sent = webhooks.run(args.seconds, idle_sleep=args.idle_sleep, stop=lambda: _stopping)
    print(f"webhook sender: stopped after {sent} attempts", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
