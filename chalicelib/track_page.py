"""GET /track/{token}: the recipient's page, rendered here from the status the
database answered (the same as GET /track/{token}/status).

A real page for a person on a phone: the data is in the HTML (it works with
JavaScript off: there is none), the one stylesheet is inline and allowed by
its hash (a CSP without 'unsafe-inline'), nothing is loaded from anywhere, and
while the delivery is not final the page reloads itself every 30 seconds
(a meta refresh). Times are shown in UTC: without a script the page cannot
know the reader's time zone.
"""

import base64
import hashlib
from datetime import datetime
from html import escape
from typing import Any

from chalice import Response

REFRESH_SECONDS = 30
FINAL = ("delivered", "failed", "cancelled")

_STYLE = """
:root{color-scheme:light;--ink:#1d2430;--muted:#5b6472;--line:#d9dee5;--accent:#0b6bcb;
--good:#17803d;--bad:#b42318}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:#f4f6f9}
main{max-width:40rem;margin:0 auto;padding:1rem}
header{padding:1.25rem 1rem;background:#fff;border-bottom:1px solid var(--line)}
header p{margin:0;color:var(--muted);font-size:.9rem}
h1{margin:.2rem 0 0;font-size:1.6rem;line-height:1.25}
h1.delivered{color:var(--good)}h1.failed,h1.cancelled{color:var(--bad)}
section{background:#fff;border:1px solid var(--line);border-radius:.75rem;padding:1rem;
margin:0 0 1rem}
h2{margin:0 0 .5rem;font-size:1rem;color:var(--muted);font-weight:600}
.eta{font-size:1.9rem;font-weight:700;margin:0}
.pin{font:700 2.4rem/1 ui-monospace,Menlo,Consolas,monospace;letter-spacing:.35em;margin:.2rem 0}
.note{margin:.25rem 0 0;color:var(--muted);font-size:.9rem}
ol{list-style:none;margin:0;padding:0}
li{display:flex;justify-content:space-between;gap:1rem;padding:.45rem 0;
border-top:1px solid var(--line)}
li:first-child{border-top:0}
li time{color:var(--muted);white-space:nowrap}
dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}
dt{color:var(--muted)}dd{margin:0}
@media (min-width:48rem){main{display:grid;grid-template-columns:1fr 1fr;gap:1rem;
max-width:64rem}section{margin:0}.wide{grid-column:1/-1}header{text-align:center}}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
           "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
           "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

_HEADLINES = {"created": "Your delivery is being prepared",
              "assigned": "A courier is on the way to collect it",
              "picked_up": "On its way to you", "delivered": "Delivered",
              "failed": "The delivery did not succeed", "cancelled": "Cancelled"}
_STEPS = {"delivery.created": "Created", "delivery.assigned": "Courier assigned",
          "delivery.unassigned": "Courier unassigned", "delivery.picked_up": "Picked up",
          "delivery.delivered": "Delivered", "delivery.failed": "Not delivered",
          "delivery.cancelled": "Cancelled"}
_VEHICLES = {"bicycle": "on a bicycle", "scooter": "on a scooter",
             "motorcycle": "on a motorcycle", "car": "in a car", "van": "in a van",
             "truck": "in a truck"}


def _moment(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _time(text: str | None, with_day: bool = True) -> str:
    """<time> of an RFC 3339 instant, shown in UTC ("2 Dec, 14:05 UTC")."""
    moment = _moment(text)
    if moment is None:
        return ""
    shown = f"{moment.day} {moment:%b}, {moment:%H:%M} UTC" if with_day \
        else f"{moment:%H:%M} UTC"
    return f'<time datetime="{escape(text)}">{escape(shown)}</time>'


def _window(window: dict[str, str] | None) -> str:
    if not window:
        return "any time"
    return f"between {_time(window['start'])} and {_time(window['end'])}"


def _page(title: str, body: str, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"robots\" content=\"noindex\">"
            f"<title>{escape(title)}</title>{meta}<style>{_STYLE}</style></head>"
            f"<body>{body}</body></html>")


def html(status: dict[str, Any]) -> str:
    """The page of a tracked delivery."""
    state = status["status"]
    parts = [f'<header><p>Delivery tracking</p><h1 class="{escape(state)}" id="status" '
             f'data-status="{escape(state)}">{escape(_HEADLINES.get(state, state))}</h1>'
             f'<p>Updated {_time(status["updated_at"])}</p></header><main>']
    if status.get("eta"):
        parts.append(f'<section class="wide"><h2>Expected</h2><p class="eta" id="eta">'
                     f'{_time(status["eta"])}</p></section>')
    dropoff = status.get("dropoff") or {}
    if dropoff.get("pin") and state not in FINAL:
        parts.append('<section><h2>Your PIN</h2>'
                     f'<p class="pin" id="pin">{escape(dropoff["pin"])}</p>'
                     '<p class="note">Tell it to the courier at the door, not before.</p>'
                     '</section>')
    courier = status.get("courier")
    if courier:
        vehicle = _VEHICLES.get(courier["vehicle"], "by " + escape(courier["vehicle"]))
        located = status.get("courier_location")
        seen = (f'<p class="note" id="location">Last position {located["lat"]}, '
                f'{located["lng"]} at {_time(located["at"], with_day=False)}</p>'
                if located else "")
        parts.append(f'<section><h2>Courier</h2><p id="courier">'
                     f'{escape(courier["first_name"])}, {vehicle}</p>{seen}</section>')
    steps = "".join(f'<li><span>{escape(_STEPS.get(e["type"], e["type"]))}</span>'
                    f'{_time(e["at"])}</li>' for e in status.get("events") or [])
    parts.append(f'<section class="wide"><h2>Progress</h2><ol id="steps">{steps}</ol></section>')
    rows = []
    for name, stop in (("From", status.get("pickup")), ("To", dropoff or None)):
        if stop:
            rows.append(f"<dt>{name}</dt><dd>{escape(stop['city'])}, "
                        f"{_window(stop.get('window'))}</dd>")
    if rows:
        parts.append(f'<section class="wide"><h2>Where and when</h2><dl>{"".join(rows)}</dl>'
                     "</section>")
    parts.append("</main>")
    return _page(_HEADLINES.get(state, state), "".join(parts), refresh=state not in FINAL)


def not_found() -> str:
    return _page("Tracking link not found",
                 '<header><p>Delivery tracking</p><h1 id="status">This tracking link is not '
                 'valid, or it has expired</h1></header><main><section class="wide"><p>Links '
                 'stop working 7 days after a delivery ends. Ask the sender if '
                 'you need to know more.</p></section></main>', refresh=False)


def response(status: dict[str, Any] | None) -> Response:
    if status is None:
        return Response(body=not_found(), status_code=404, headers=HEADERS)
    return Response(body=html(status), status_code=200, headers=HEADERS)
