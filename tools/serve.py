"""`make run`: the database, the schema and demo data, and the local server
(tools/local_server.py: what `chalice local` runs, with guards against hostile clients).

Uses DATABASE_URL when set; otherwise starts the embedded PostgreSQL with its
data in .pgdata/ (kept between runs; DELIVERY_PGDATA names another folder).
Ctrl-C or SIGTERM stops the API and the embedded database this command started.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from tools import devdb


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    signal.signal(signal.SIGTERM, _stop)
    server = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        pgdata = Path(os.environ.get("DELIVERY_PGDATA", devdb.LOCAL_PGDATA))
        server = devdb.start_embedded(pgdata.resolve(), keep=True)
        url = server.get_uri()
    devdb.apply_sql(url, devdb.SCHEME)
    devdb.apply_sql(url, devdb.DEMO)
    env = {**os.environ, "DATABASE_URL": url}
    print(f"serving http://127.0.0.1:{port}/ (demo users: sender/pass, courier/pass)", flush=True)
    child = subprocess.Popen(
        [sys.executable, "-m", "tools.local_server", "--host", "127.0.0.1", "--port", port,
         "--stage", "dev"],
        cwd=devdb.ROOT, env=env)
    try:
        return child.wait()
    except (KeyboardInterrupt, SystemExit):
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        return 0
    finally:
        if server is not None:
            server.cleanup()  # stops the embedded server (its data stays)


if __name__ == "__main__":
    sys.exit(main())
