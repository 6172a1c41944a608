"""The benchmark as a picture: docs/benchmark.svg, written by `make bench` from
its results (or `python -m bench.chart [results.json]`). Two panels, drawn as
plain SVG (no plotting library):

1. CPU per request (Python and Postgres, stacked) and req/s of every endpoint at
   the largest size;
2. CPU per request of the reads against data size (10k to 1M), one line each:
   flat lines are the point.
"""

import json
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmark.svg"
PYTHON, POSTGRES, RATE = "#4c78a8", "#f58518", "#54a24b"
LINES = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2",
         "#ff9da6", "#9d755d", "#bab0ac"]


def _cpu(endpoint: dict) -> tuple[float, float]:
    cpu = endpoint.get("cpu_lambda") or {}
    return cpu.get("python_us") or 0.0, cpu.get("postgres_us") or 0.0


def _text(x: float, y: float, s: str, size: int = 11, anchor: str = "start",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}">{escape(s)}</text>')


def bars(endpoints: dict, top: float) -> tuple[list[str], float]:
    """Panel 1: one row per endpoint (login left out: its scrypt dwarfs the rest)."""
    rows = [(name, e) for name, e in endpoints.items() if e.get("kind") != "login"]
    width, label, scale_w = 980, 250, 420
    costs = sorted(sum(_cpu(e)) for _, e in rows)
    # A bar far beyond the rest (page mode deep in a long list) is cut, its figure shown.
    most = min(costs[-1], 8 * costs[len(costs) // 2]) or 1
    most_rps = max(e.get("rps") or 0 for _, e in rows) or 1
    out = [_text(20, top + 16, "CPU per request (µs): Python and Postgres, stacked; req/s "
                 "(green) at the largest size", 13, weight="bold")]
    y = top + 34
    for name, e in rows:
        py, pg = _cpu(e)
        x0 = label
        out.append(_text(label - 8, y + 10, name, anchor="end"))
        cut = min(1.0, most / (py + pg)) if py + pg else 1.0
        py_w, pg_w = py * cut / most * scale_w, pg * cut / most * scale_w
        out.append(f'<rect x="{x0}" y="{y}" width="{py_w:.1f}" height="12" fill="{PYTHON}"/>')
        out.append(f'<rect x="{x0 + py_w:.1f}" y="{y}" width="{pg_w:.1f}" height="12" '
                   f'fill="{POSTGRES}"/>')
        mark = " (cut)" if cut < 1 else ""
        out.append(_text(x0 + py_w + pg_w + 4, y + 10, f"{py + pg:,.0f}{mark}"))
        rx = label + scale_w + 90
        rps = e.get("rps") or 0
        out.append(f'<rect x="{rx}" y="{y}" width="{rps / most_rps * 180:.1f}" height="12" '
                   f'fill="{RATE}"/>')
        out.append(_text(rx + rps / most_rps * 180 + 4, y + 10, f"{rps:,.0f}/s"))
        y += 18
    out.append(f'<rect x="{label}" y="{y + 4}" width="10" height="10" fill="{PYTHON}"/>')
    out.append(_text(label + 15, y + 13, "Python (the Lambda handler)"))
    out.append(f'<rect x="{label + 200}" y="{y + 4}" width="10" height="10" '
               f'fill="{POSTGRES}"/>')
    out.append(_text(label + 215, y + 13, "Postgres (the backend)"))
    del width
    return out, y + 26


def lines(sizes: dict, top: float) -> tuple[list[str], float]:
    """Panel 2: CPU per request of each read against data size (log scale of size)."""
    keys = sorted(sizes, key=int)
    reads = [name for name, e in sizes[keys[-1]]["endpoints"].items() if e.get("kind") == "read"]
    series = {name: [sum(_cpu(sizes[k]["endpoints"][name])) for k in keys
                     if name in sizes[k]["endpoints"]] for name in reads}
    series = {n: v for n, v in series.items() if len(v) == len(keys)}
    # Page mode deep in a long list is off this scale by design: it goes in the legend.
    far = {n: v for n, v in series.items() if max(v) > 20 * min(min(s) for s in series.values())}
    near = {n: v for n, v in series.items() if n not in far}
    x0, w, h = 80, 560, 220
    y0 = top + 40
    most = max(max(v) for v in near.values()) * 1.1
    out = [_text(20, top + 16, "CPU per request (µs) of the reads against data size", 13,
                 weight="bold")]
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + h}" stroke="#333"/>')
    for i, k in enumerate(keys):
        x = x0 + i * w / max(1, len(keys) - 1)
        out.append(_text(x, y0 + h + 16, f"{int(k):,} deliveries", anchor="middle"))
    for j in range(5):
        v = most * j / 4
        y = y0 + h - h * j / 4
        out.append(_text(x0 - 6, y + 4, f"{v:,.0f}", anchor="end"))
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#ddd"/>')
    legend_y = y0
    for n, (name, values) in enumerate(near.items()):
        color = LINES[n % len(LINES)]
        points = " ".join(f"{x0 + i * w / max(1, len(keys) - 1):.1f},"
                          f"{y0 + h - v / most * h:.1f}" for i, v in enumerate(values))
        dash = ' stroke-dasharray="6,3"' if n >= len(LINES) else ""
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<rect x="{x0 + w + 20}" y="{legend_y}" width="10" height="10" '
                   f'fill="{color}"/>')
        out.append(_text(x0 + w + 36, legend_y + 9, name))
        legend_y += 16
    for name, values in far.items():
        out.append(_text(x0 + w + 20, legend_y + 9,
                         f"off scale: {name}: " + " → ".join(f"{v:,.0f}" for v in values)))
        legend_y += 16
    return out, max(y0 + h + 30, legend_y + 10)


def render(result: dict) -> str:
    sizes = result["sizes"]
    largest = sizes[max(sizes, key=int)]
    body, y = bars(largest["endpoints"], 10)
    more, y = lines(sizes, y + 10)
    body += more
    note = f"make bench, {result.get('started', '')}; {result.get('machine', {}).get('cpu', '')}"
    body.append(_text(20, y + 6, note, 10))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="{y + 20:.0f}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
            + "".join(body) + "</svg>\n")


def write(result: dict, out: Path = OUT) -> Path:
    out.write_text(render(result))
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "bench" / "results" / "latest.json"
    print(write(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
