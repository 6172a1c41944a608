"""The report: each target of the issue checked per endpoint and size, and the Markdown
that docs/benchmark.md shows (pasted from bench/results/latest.md)."""

import io
from typing import Any

from bench.endpoints import DEEP_PAGE, REVENUE


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, per endpoint and size: met or not, with its figure."""
    checks: list[dict[str, Any]] = []

    def check(target: str, endpoint: str, size: str | None, value: Any, goal: str,
              met: bool) -> None:
        checks.append({"target": target, "endpoint": endpoint, "size": size,
                       "value": value, "goal": goal, "met": bool(met)})

    sizes = sorted(result["sizes"], key=int)
    for name, s in result["statements"]["endpoints"].items():
        if s.get("kind") == "framework":
            continue
        limit = 2 if name == "login" else 1
        check("SQL statements per request", name, None, s["per_request"],
              f"<= {limit}" if limit > 1 else "1", s["per_request"] <= limit and s["min"] >= 1)
    for size in sizes:
        for name, r in result["sizes"][size]["endpoints"].items():
            kind, ratio, share = r["kind"], r["ratio_to_floor"], r["python_share"]
            if kind == "read" and ratio is not None:
                check("reads: x SELECT 1 floor", name, size, round(ratio, 3),
                      ">= 0.12 (aim 0.2)", ratio >= 0.12)
            if kind == "write" and ratio is not None:
                check("writes: x one-row INSERT floor", name, size, round(ratio, 3), ">= 0.5",
                      ratio >= 0.5)
            if share is not None:
                check("Lambda / direct SQL (Python's share)", name, size, round(share, 3),
                      ">= 0.6", share >= 0.6)
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        for name, r in result["sizes"][high]["endpoints"].items():
            if name == DEEP_PAGE or r["kind"] in ("login", "framework"):
                continue
            base = result["sizes"][low]["endpoints"].get(name)
            if base:
                ratio = r["p50_ms"] / base["p50_ms"]
                check(f"flat: p50 at {int(high):,} / p50 at {int(low):,}", name, None,
                      round(ratio, 3), "<= 1.25", ratio <= 1.25)
    for size in sizes:
        explain = result["sizes"][size].get("explain_revenue")
        if explain:
            check("revenue plan is an index scan", REVENUE, size,
                  explain["index_scan"], "index scans only, the rollup's among them",
                  explain["index_scan"] and explain.get("rollup_index", False)
                  and explain.get("same_as_endpoint", False))
    cold = result.get("cold_start")
    if cold:
        check("cold start: import app / import chalice, psycopg2", "app", None,
              round(cold["ratio"], 3), "<= 1.3", cold["ratio"] <= 1.3)
    return checks


def _targets_markdown(checks: list[dict[str, Any]]) -> str:
    """One line per target: how many endpoint/size cases meet it, and the misses."""
    out = ["| target | goal | met | missed (value at size) |", "|---|---|---:|---|"]
    families: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        families.setdefault(c["target"], []).append(c)
    for target, cases in families.items():
        missed = [c for c in cases if not c["met"]]
        text = "; ".join(
            f"{c['endpoint']} {c['value']}" + (f" at {int(c['size']):,}" if c["size"] else "")
            for c in missed) or "-"
        out.append(f"| {target} | {cases[0]['goal']} | {len(cases) - len(missed)} of "
                   f"{len(cases)} | {text} |")
    return "\n".join(out) + "\n"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    sizes = sorted(result["sizes"], key=int)
    big = sizes[-1]
    out = io.StringIO()
    w = out.write
    w(f"Run {result['started']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
      f"{m['os']}; Python {m['python']}, PostgreSQL {m['postgres']} "
      f"(shared_buffers {m['shared_buffers']}), {m['database']}; chalice {m['chalice']}, "
      f"psycopg2 {m['psycopg2']}. Load average {result['load_before']} before, "
      f"{result['load_after']} after (other jobs shared the machine: figures are noisy, "
      "ratios are taken against floors interleaved with each endpoint).\n\n")
    w(f"Reproduce: `{result['command']}`\n\n")
    w(f"At {int(big):,} deliveries, through `app.app(event, context)`, one thread:\n\n")
    w("| endpoint | SQL statements / request | requests/s | p50 ms | p99 ms | floor | "
      "x floor | direct SQL req/s | Lambda / direct |\n")
    w("|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
    statements = result["statements"]["endpoints"]
    for name, r in result["sizes"][big]["endpoints"].items():
        s = statements.get(name, {}).get("per_request", "-")
        w(f"| {name} | {s} | {num(r['rps'], 0)} | {num(r['p50_ms'], 3)} | "
          f"{num(r['p99_ms'], 3)} | {r['floor']} {num(r['floor_rps'], 0)}/s | "
          f"{num(r['ratio_to_floor'], 3)} | {num(r['direct_sql_rps'], 0)} | "
          f"{num(r['python_share'], 2)} |\n")
    if len(sizes) > 1:
        w("\np50 latency (ms) by data size, and x floor "
          "(requests/s over the interleaved floor):\n\n")
        w("| endpoint | " + " | ".join(f"{int(s):,}" for s in sizes)
          + f" | p50 {int(sizes[-1]):,} / {int(sizes[0]):,} | "
          + " | ".join(f"x floor {int(s):,}" for s in sizes) + " |\n")
        w("|---|" + "---:|" * (2 * len(sizes) + 1) + "\n")
        for name in result["sizes"][sizes[0]]["endpoints"]:
            rows = [result["sizes"][s]["endpoints"].get(name) for s in sizes]
            p50s = [num(r["p50_ms"], 3) if r else "-" for r in rows]
            flat = (rows[-1]["p50_ms"] / rows[0]["p50_ms"]) if rows[0] and rows[-1] else None
            ratios = [num(r["ratio_to_floor"], 3) if r else "-" for r in rows]
            w(f"| {name} | " + " | ".join(p50s) + f" | {num(flat, 2)} | "
              + " | ".join(ratios) + " |\n")
    rows = result["sizes"][big]["endpoints"]
    if any(r.get("cpu_lambda", {}).get("postgres_us") for r in rows.values()):
        w(f"\nWhere the time goes at {int(big):,} (CPU microseconds per request, from the "
          "process clocks; client and server share the 2 cores):\n\n")
        w("| endpoint | wall (1/rate) | Python, via Lambda | Postgres, via Lambda | "
          "Python, direct SQL | Postgres, direct SQL |\n|---|---:|---:|---:|---:|---:|\n")
        for name, r in rows.items():
            if r["kind"] == "login" or not r["rps"]:
                continue
            cl, cd = r.get("cpu_lambda", {}), r.get("cpu_direct", {})
            w(f"| {name} | {1e6 / r['rps']:,.0f} | {num(cl.get('python_us'), 0)} | "
              f"{num(cl.get('postgres_us'), 0)} | {num(cd.get('python_us'), 0)} | "
              f"{num(cd.get('postgres_us'), 0)} |\n")
    explain = result["sizes"][big].get("explain_revenue")
    if explain:
        says = explain["endpoint_says"]
        w(f"\nRevenue of courier 1 over the last 365 days at {int(big):,} deliveries "
          f"({says['deliveries']} deliveries, {says['revenue']}): "
          "`SELECT * FROM revenue_window(...)`, the SQL function (scheme.sql) that "
          "courier_revenue calls, inlined into the plan:\n\n```\n"
          f"{explain['plan']}\n```\n")
    cold = result.get("cold_start")
    if cold:
        src = cold["from_source"]
        w(f"\nCold start (median of {cold['runs']} fresh interpreters, bytecode cached): "
          f"`import app` {cold['app_ms']:.1f} ms, `import chalice, psycopg2` "
          f"{cold['chalice_psycopg2_ms']:.1f} ms = {cold['ratio']:.2f}x. Compiled from "
          f"source (no bytecode): {src['app_ms']:.1f} ms vs {src['chalice_psycopg2_ms']:.1f} ms"
          f" = {src['ratio']:.2f}x.\n")
    pkg = result.get("package")
    if pkg:
        if pkg["ok"]:
            w(f"\n`chalice package --stage prod`: deployment.zip {pkg['bytes'] / 1e6:.2f} MB "
              f"({pkg['files']} files, {pkg['uncompressed_bytes'] / 1e6:.1f} MB unpacked).\n")
        else:
            w(f"\n`chalice package --stage prod` failed: {pkg['why'].splitlines()[-1]}\n")
    checks = result.get("targets", [])
    if checks:
        w("\nTargets (each endpoint at each size):\n\n" + _targets_markdown(checks))
    return out.getvalue()
