"""The tracking page in headless Chromium, against a real `chalice local`: a
delivery on its way (picked up, the courier's position fresh, a PIN) opened at
360 px (a phone) and at 1280 px. The DOM shows the status, the ETA the status
route answers, the courier and the PIN; nothing is asked of another origin,
the CSP refuses nothing (the inline style is allowed by its hash), nothing
runs off the screen's width; with scripts off the page shows the same.

The screenshots go to build/screenshots/ (not in git) for a person to look at."""

from pathlib import Path

import pytest

from tests.browser import started_chromium
from tests.test_stops import full_stops

pytestmark = pytest.mark.slow

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


@pytest.fixture(scope="module")
def chromium():
    yield from started_chromium("track-chromium-")


@pytest.fixture(scope="module")
def tracked(live):
    """A picked-up delivery with a PIN and a fresh position: its page's URL,
    and what its status route answers."""
    api = live["api"]
    sender, courier = api.new_sender(), api.new_courier()
    made = api.post("/deliveries", {"size": "10x20x30", "cost": "12.00", **full_stops()},
                    token=sender["token"]).json
    assert api.put(f"/assign/{made['id']}/{courier['courier_id']}",
                   token=sender["token"]).status == 200
    assert api.post(f"/deliveries/{made['id']}/pickup", token=courier["token"]).status == 200
    assert api.put("/me/location", body={"lat": 52.0, "lng": 12.5},
                   token=courier["token"]).status == 204
    url = made["tracking_url"]
    assert url.startswith(live["base"] + "/track/"), url
    status = api.get(url[len(live["base"]):] + "/status").json
    assert status["eta"] and status["dropoff"]["pin"]
    return url, status


def _loaded(page):
    page.wait_event("Page.loadEventFired")
    return page


@pytest.mark.parametrize("width", [360, 1280])
def test_the_page_shows_the_delivery_and_loads_nothing_else(chromium, tracked, live, width):
    url, status = tracked
    page = _loaded(chromium.open(url, width=width))
    assert page.evaluate("document.querySelector('#status').dataset.status") == "picked_up"
    assert page.evaluate("document.querySelector('#eta time').getAttribute('datetime')") \
        == status["eta"]
    assert page.evaluate("document.querySelector('#pin').textContent") == status["dropoff"]["pin"]
    assert page.evaluate("document.querySelector('#courier').textContent") == "Ann, in a van"
    steps = page.evaluate("[...document.querySelectorAll('#steps li span')]"
                          ".map((s) => s.textContent)")
    assert steps == ["Created", "Courier assigned", "Picked up"]
    # it fits the screen: nothing wider than the viewport, text not shrunk
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16
    assert page.evaluate("document.querySelector('meta[http-equiv=refresh]').content") == "30"
    assert [u for u in page.requested_urls() if not u.startswith(live["base"] + "/")] == []
    assert page.evaluate("window.__cspViolations") == []
    assert page.errors() == [] or all("favicon" in e for e in page.errors())
    shot = page.screenshot(SHOTS / f"track-{width}.png")
    assert shot.stat().st_size > 5000


def test_the_page_works_with_javascript_off(chromium, tracked):
    url, status = tracked
    page = _loaded(chromium.open(url, width=360, javascript=False))
    assert 'data-status="picked_up"' in page.html("#status")
    assert f'datetime="{status["eta"]}"' in page.html("#eta")
    assert status["dropoff"]["pin"] in page.html("#pin")
    page.screenshot(SHOTS / "track-360-no-js.png")
