"""Starting the local server (tools/local_server.py, what `make run` serves) as a
process on a free port of 127.0.0.1 and waiting until it answers: the one way
the tests and the benchmarks do it.

    process, base = start_local_server(env)      # base: http://127.0.0.1:PORT
    ...
    stop_process(process)
"""

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_ok(port: int, timeout: float = 1.0) -> bool:
    """Whether GET / on 127.0.0.1:port answers 200 OK now."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        client.request("GET", "/")
        reply = client.getresponse()
        return reply.status == 200 and reply.read() == b"OK"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        client.close()


def wait_until_serving(port: int, process: subprocess.Popen, seconds: float) -> bool:
    """True once GET / answers OK; False if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        if answers_ok(port):
            return True
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def start_local_server(env: dict[str, str], module: str = "tools.local_server",
                       output: IO | int | None = subprocess.DEVNULL,
                       seconds: float = 60.0) -> tuple[subprocess.Popen, str]:
    """The local server on a free port with `env` (DATABASE_URL and the rest),
    once it answers: (process, base URL). RuntimeError, the process stopped,
    when it does not answer within `seconds`."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port),
         "--stage", "dev"],
        cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    if not wait_until_serving(port, process, seconds):
        stop_process(process)
        raise RuntimeError(f"the local server did not answer within {seconds:g} s "
                           f"(exit status {process.returncode})")
    return process, f"http://127.0.0.1:{port}"


def stop_process(process: subprocess.Popen, seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `seconds`; waits for the end either way."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
