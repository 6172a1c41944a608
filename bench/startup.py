"""What a cold Lambda container pays before its first request: the time to import the
app in a fresh interpreter, and the size of the deployment zip it starts from."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _import_times(runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    code = ("import time, sys; t = time.perf_counter(); import {m}; "
            "sys.stdout.write(repr(time.perf_counter() - t))")
    samples: dict[str, list[float]] = {"chalice, psycopg2": [], "app": []}
    for _ in range(runs):
        for modules in ("chalice, psycopg2", "app"):  # alternate: noise hits both alike
            out = subprocess.run([sys.executable, "-c", code.format(m=modules)], cwd=ROOT,
                                 env=env, capture_output=True, text=True, check=True)
            samples[modules].append(float(out.stdout))
    return samples


def cold_start(runs: int) -> dict[str, Any]:
    """Median time to import in a fresh interpreter, bytecode cached (the target) and
    compiled from source (what a zip without __pycache__ costs on every cold start)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    result: dict[str, Any] = {"runs": runs}
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as cache:
        cached = {**env, "PYTHONPYCACHEPREFIX": cache}
        subprocess.run([sys.executable, "-c", "import chalice, psycopg2; import app"],
                       cwd=ROOT, env=cached, check=True, capture_output=True)
        samples = _import_times(runs, cached)
        # Where the app's import time goes beyond chalice and psycopg2.
        out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import chalice, psycopg2; import app"],
                             cwd=ROOT, env=cached, capture_output=True, text=True, check=True)
        result["app_extra_imports_ms"] = _importtime_after(out.stderr, "psycopg2")
    base = statistics.median(samples["chalice, psycopg2"])
    app_s = statistics.median(samples["app"])
    result.update({
        "chalice_psycopg2_ms": base * 1e3,
        "app_ms": app_s * 1e3,
        "ratio": app_s / base,
        "samples_ms": {k: [round(v * 1e3, 2) for v in vals] for k, vals in samples.items()},
    })
    with tempfile.TemporaryDirectory(prefix="bench-nopyc-") as empty:
        source = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        samples = _import_times(max(3, runs // 2), source)
    base = statistics.median(samples["chalice, psycopg2"])
    app_s = statistics.median(samples["app"])
    result["from_source"] = {"chalice_psycopg2_ms": base * 1e3, "app_ms": app_s * 1e3,
                             "ratio": app_s / base}
    return result


def _importtime_after(stderr: str, marker: str) -> list[list[Any]]:
    """Top-level imports that `import app` added after chalice and psycopg2 (self+children, ms)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        try:
            cumulative = int(parts[1])
        except ValueError:
            continue
        name = parts[2]
        if not name.startswith(" ") and parts[2] == name.strip():
            rows.append([name, cumulative / 1e3])
    # rows are in completion order; keep those after the baseline's top-level imports
    names = [r[0] for r in rows]
    start = names.index(marker) + 1 if marker in names else 0
    extra = [r for r in rows[start:] if r[0] != "app"]
    extra.sort(key=lambda r: -r[1])
    return [[name, round(ms, 2)] for name, ms in extra[:10]]


def package_size() -> dict[str, Any]:
    chalice = Path(sys.executable).with_name("chalice")
    with tempfile.TemporaryDirectory(prefix="bench-package-") as out:
        started = time.perf_counter()
        try:
            # The region only names the template's target; no AWS service is contacted.
            env = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ}
            proc = subprocess.run([str(chalice), "package", "--stage", "prod", out], cwd=ROOT,
                                  env=env, check=False, capture_output=True, text=True,
                                  timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"ok": False, "why": f"{type(exc).__name__}: {exc}"}
        zip_path = Path(out) / "deployment.zip"
        if proc.returncode != 0 or not zip_path.exists():
            why = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            return {"ok": False, "why": "\n".join(why) or f"exit status {proc.returncode}"}
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
        tops: dict[str, int] = {}
        for info in infos:
            top = info.filename.split("/", 1)[0]
            tops[top] = tops.get(top, 0) + info.compress_size
        biggest = sorted(tops.items(), key=lambda kv: -kv[1])[:6]
        return {
            "ok": True,
            "bytes": zip_path.stat().st_size,
            "files": len(infos),
            "uncompressed_bytes": sum(i.file_size for i in infos),
            "largest_parts": [[name, size] for name, size in biggest],
            "seconds": round(time.perf_counter() - started, 1),
        }
