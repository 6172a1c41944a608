"""The report: each target of the issue checked per endpoint and size, and the Markdown
that docs/benchmark.md shows (pasted from bench/results/latest.md)."""

import io
import re
from pathlib import Path
from typing import Any

from bench.endpoints import DEEP_CURSOR, DEEP_PAGE, DEEP_PAGE_MODE, FIRST_CURSOR, REVENUE

# The deep cursor page may cost this much more CPU than the first one.
DEEP_CURSOR_GOAL = 1.25
# A read's ratio to its floor may fall this far below the published run's.
PUBLISHED_SLACK = 0.10


def cpu_total(r: dict[str, Any]) -> float | None:
    """CPU microseconds per request through the Lambda entry point, client and server."""
    cpu = r.get("cpu_lambda") or {}
    if cpu.get("python_us") is None:
        return None
    return cpu["python_us"] + (cpu.get("postgres_us") or 0)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def published_run(path: Path) -> dict[str, Any] | None:
    """The figures of the run published in docs/benchmark.md (its biggest size): each
    endpoint's ratio to its floor and CPU per request, read from the run's tables
    (the ones markdown() writes), before a new run replaces them."""
    try:
        text = path.read_text()
    except OSError:
        return None
    run = text.split("## The run", 1)[-1]
    when = re.search(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?Z?(?: UTC)?", run)
    size = re.search(r"^At ([\d,]+) deliveries", run, re.M)
    if not size:
        return None
    endpoints: dict[str, dict[str, float | None]] = {}
    lines = run.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("| endpoint |"):
            continue
        header = _cells(line)
        rows = []
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            rows.append(_cells(row))
        for wanted, key in (("x floor", "ratio_to_floor"), ("Python, via Lambda", "python_us"),
                            ("Postgres, via Lambda", "postgres_us"), ("requests/s", "rps")):
            if wanted in header:
                col = header.index(wanted)
                for cells in rows:
                    if len(cells) > col:
                        endpoints.setdefault(cells[0], {}).setdefault(key, _number(cells[col]))
    return {"source": str(path), "run": when.group(0) if when else "the published run",
            "size": size.group(1).replace(",", ""), "endpoints": endpoints}


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
            if name in (DEEP_PAGE, DEEP_PAGE_MODE) or r["kind"] in ("login", "framework"):
                continue
            base = result["sizes"][low]["endpoints"].get(name)
            if base:
                ratio = r["p50_ms"] / base["p50_ms"]
                check(f"flat: p50 at {int(high):,} / p50 at {int(low):,}", name, None,
                      round(ratio, 3), "<= 1.25", ratio <= 1.25)
    for size in sizes:
        ratio = deep_cursor_ratio(result["sizes"][size]["endpoints"])
        if ratio is not None:
            depth = result["sizes"][size].get("list_depth")
            check(f"deep cursor page ({depth:,} in at that size): CPU / first cursor page",
                  DEEP_CURSOR, size, round(ratio, 3), f"<= {DEEP_CURSOR_GOAL}",
                  ratio <= DEEP_CURSOR_GOAL)
    for name, then, now in against_published(result):
        if now["kind"] == "read" and then["ratio_to_floor"] and now["ratio_to_floor"]:
            change = now["ratio_to_floor"] / then["ratio_to_floor"]
            check("reads: x floor against the published run", name, sizes[-1], round(change, 3),
                  f">= {1 - PUBLISHED_SLACK:.2f} of it", change >= 1 - PUBLISHED_SLACK)
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


def deep_cursor_ratio(endpoints: dict[str, Any]) -> float | None:
    """CPU per request of the deep cursor page over the first cursor page's."""
    first, deep = endpoints.get(FIRST_CURSOR), endpoints.get(DEEP_CURSOR)
    if not first or not deep or not cpu_total(first) or cpu_total(deep) is None:
        return None
    return cpu_total(deep) / cpu_total(first)


def against_published(result: dict[str, Any]) -> list[tuple[str, dict, dict]]:
    """(name, published figures, this run's) of each read in both, at the published size."""
    previous = result.get("previous")
    if not previous or previous["size"] not in result["sizes"]:
        return []
    now = result["sizes"][previous["size"]]["endpoints"]
    return [(name, then, now[name]) for name, then in previous["endpoints"].items()
            if name in now and now[name]["kind"] in ("read", "framework")]


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


def _data_markdown(result: dict[str, Any]) -> str:
    rows = []
    for size in sorted(result["sizes"], key=int):
        entry = result["sizes"][size]
        data, load = entry.get("data"), entry.get("load") or {}
        if not data:
            continue
        mix = ", ".join(f"{status} {n / data['deliveries']:.1%}"
                        for status, n in sorted(data["statuses"].items(), key=lambda kv: -kv[1]))
        secs = load.get("seconds", {})
        rows.append(f"| {int(size):,} | {data['deliveries']:,} | {data['sender_1']:,} | "
                    f"{data['events']:,} | {data['deliveries_mb']:,} + {data['events_mb']:,} | "
                    f"{entry['load_seconds']} ({secs.get('deliveries', '-')} / "
                    f"{secs.get('events', '-')} / {secs.get('event_indexes', '-')} / "
                    f"{secs.get('vacuum', '-')}) | {mix} |")
    if not rows:
        return ""
    return ("The data set at each size, as loaded (the deliveries that the write "
            "benchmarks add are deleted after each one; load seconds: the step's total, "
            "then deliveries / events / event indexes / vacuum):\n\n"
            "| size | deliveries | sender 1's | events | MB (deliveries + events) | load s | "
            "status mix |\n|---:|---:|---:|---:|---:|---|---|\n" + "\n".join(rows) + "\n\n")


def _lists_markdown(result: dict[str, Any]) -> str:
    """The cursor pages against page mode, at each size: CPU per request."""
    sizes = sorted(result["sizes"], key=int)
    names = ("sender list, page 0", FIRST_CURSOR, DEEP_CURSOR, DEEP_PAGE_MODE)
    if not all(n in result["sizes"][sizes[-1]]["endpoints"] for n in names[1:3]):
        return ""
    out = ["\nCursor pages against page mode, sender 1's list (CPU microseconds per request "
           "through the Lambda entry point, client + server; in brackets, over the first "
           "cursor page's; the deep pages are 500,000 items in where the list is that long, "
           "else half of it):\n",
           "| size | depth | " + " | ".join(names) + " |",
           "|---:|---:|" + "---:|" * len(names)]
    for size in sizes:
        eps = result["sizes"][size]["endpoints"]
        base = cpu_total(eps[FIRST_CURSOR]) if FIRST_CURSOR in eps else None
        cells = []
        for name in names:
            r = eps.get(name)
            total = cpu_total(r) if r else None
            if total is None:
                cells.append("-")
            else:
                rel = f" ({total / base:.2f}x)" if base else ""
                cells.append(f"{total:,.0f}{rel}")
        w = result["sizes"][size].get("list_depth")
        out.append(f"| {int(size):,} | {w:,} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _published_markdown(result: dict[str, Any]) -> str:
    rows = against_published(result)
    if not rows:
        return ""
    previous = result["previous"]
    out = [f"\nThe reads against the published run ({previous['run']}, "
           f"{Path(previous['source']).name}) at {int(previous['size']):,} deliveries: "
           "ratio to the interleaved SELECT 1 floor, and CPU microseconds per request "
           "(client + server, through the Lambda entry point); the last column divides "
           "the CPU change by GET /'s, the same Python work in both runs, to take out "
           "how fast the machine was at either time:\n",
           "| endpoint | x floor then | x floor now | now / then | CPU then | CPU now | "
           "now / then | over GET /'s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    yardstick = None
    for _name, then, now in rows:
        if now["kind"] == "framework" and then.get("python_us") and cpu_total(now):
            yardstick = cpu_total(now) / ((then.get("python_us") or 0)
                                          + (then.get("postgres_us") or 0))
    for name, then, now in rows:
        change = (now["ratio_to_floor"] / then["ratio_to_floor"]
                  if then.get("ratio_to_floor") and now.get("ratio_to_floor") else None)
        cpu_then = ((then.get("python_us") or 0) + (then.get("postgres_us") or 0)
                    if then.get("python_us") is not None else None)
        cpu_now = cpu_total(now)
        cpu_change = cpu_now / cpu_then if cpu_now and cpu_then else None
        relative = cpu_change / yardstick if cpu_change and yardstick else None
        out.append(f"| {name} | {num(then.get('ratio_to_floor'), 3)} | "
                   f"{num(now['ratio_to_floor'], 3)} | {num(change, 2)} | {num(cpu_then, 0)} | "
                   f"{num(cpu_now, 0)} | {num(cpu_change, 2)} | {num(relative, 2)} |")
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
    code = result.get("code")
    if code:
        changed = code["changed_files"]
        w(f"Code: commit {code['commit']}"
          + (f" plus uncommitted changes in {len(changed)} files ({', '.join(changed[:12])}"
             + (", ..." if len(changed) > 12 else "") + ")" if changed else "") + ".\n\n")
    w(f"Reproduce: `{result['command']}`\n\n")
    w(_data_markdown(result))
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
          "Python, direct SQL | Postgres, direct SQL | floor, client + server | "
          "CPU x floor |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for name, r in rows.items():
            if r["kind"] == "login" or not r["rps"]:
                continue
            cl, cd = r.get("cpu_lambda", {}), r.get("cpu_direct", {})
            cf = r.get("cpu_floor") or {}
            floor_cpu = (cf["python_us"] + (cf.get("postgres_us") or 0)
                         if cf.get("python_us") is not None else None)
            total = cpu_total(r)
            w(f"| {name} | {1e6 / r['rps']:,.0f} | {num(cl.get('python_us'), 0)} | "
              f"{num(cl.get('postgres_us'), 0)} | {num(cd.get('python_us'), 0)} | "
              f"{num(cd.get('postgres_us'), 0)} | {num(floor_cpu, 0)} | "
              f"{num(floor_cpu / total if floor_cpu and total else None, 3)} |\n")
    w(_lists_markdown(result))
    w(_published_markdown(result))
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
