"""`make run`: the database, the schema and demo data, the local server
(tools/local_server.py: what `chalice local` runs, with guards against hostile
clients) and beside it the webhook sender (tools/webhook_sender.py).

Webhooks: the signing key is made once and kept beside the data folder (or taken
from WEBHOOK_SIGNING_KEY); plain http:// and local receivers are allowed
(WEBHOOK_ALLOW_HTTP=true unless set otherwise).

Uses DATABASE_URL when set; otherwise starts the embedded PostgreSQL with its
data outside the project (kept between runs; `python -m tools.devdb path` says
where, DELIVERY_PGDATA names another folder), so that `chalice local` beside it
finds it and its reloader does not see the database's writes.
Ctrl-C or SIGTERM stops the API and the embedded database this command started.
"""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from chalicelib import config
from tools import devdb


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    signal.signal(signal.SIGTERM, _stop)
    server = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        server = devdb.start_embedded(config.local_pgdata(), keep=True)
        url = server.get_uri()
    devdb.apply_sql(url, devdb.SCHEME)
    devdb.apply_sql(url, devdb.DEMO)
    env = {"WEBHOOK_ALLOW_HTTP": "true", **os.environ, "DATABASE_URL": url}
    if not env.get("WEBHOOK_SIGNING_KEY"):
        env["WEBHOOK_SIGNING_KEY"] = _local_key(server.pgdata if server else config.local_pgdata())
    print(f"serving http://127.0.0.1:{port}/ (demo users: sender/pass, courier/pass)", flush=True)
    children = [subprocess.Popen([sys.executable, "-m", module, *args], cwd=devdb.ROOT, env=env)
                for module, args in (
                    ("tools.local_server", ["--host", "127.0.0.1", "--port", port,
                                            "--stage", "dev"]),
                    ("tools.webhook_sender", []))]
    try:
        return children[0].wait()
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if server is not None:
            server.cleanup()  # stops the embedded server (its data stays)


def _local_key(folder: Path) -> str:
    """The webhook signing key of local runs on this data folder (kept beside
    it, made on first use)."""
    path = config.local_webhook_key_file(Path(folder))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


if __name__ == "__main__":
    sys.exit(main())
