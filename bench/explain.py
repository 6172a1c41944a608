"""EXPLAIN of the revenue endpoint's query: revenue_window() from scheme.sql, the SQL
function courier_revenue calls (inlined into the plan), over the endpoint's window. Its
figures are checked against the endpoint's, and its plan for index scans on the rollup."""

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import psycopg2

from bench.endpoints import Endpoint
from bench.measure import Rig

_EXPLAIN = ("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF, TIMING OFF)"
            " SELECT * FROM revenue_window(%s, %s, %s)")


def explain_revenue(db: Any, courier_id: int, start: dt.datetime,
                    end: dt.datetime) -> dict[str, Any]:
    args = (courier_id, start, end)
    with db.cursor() as cur:
        cur.execute("SELECT indexrelid::regclass::text FROM pg_index"
                    " WHERE indrelid = 'courier_daily_revenue'::regclass")
        rollup_indexes = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT deliveries, revenue FROM revenue_window(%s, %s, %s)", args)
        deliveries, revenue = cur.fetchone()
        cur.execute(_EXPLAIN, args)
        plan = "\n".join(row[0] for row in cur.fetchall())
    index_scan = ("Index Only Scan" in plan or "Index Scan" in plan) and "Seq Scan" not in plan
    return {"plan": plan, "index_scan": index_scan,
            "rollup_index": any(f" {name}" in plan for name in rollup_indexes),
            "deliveries": int(deliveries), "revenue": str(revenue)}


def revenue_plan(db: Any, rig: Rig, ep: Endpoint, courier_id: int = 1) -> dict[str, Any]:
    """The plan over the window of the endpoint's first event, and whether the function
    returns what the endpoint answered for it."""
    params = ep.events[0]["pathParameters"]
    start, end = (dt.datetime.fromtimestamp(int(params[k]), dt.UTC) for k in ("from", "to"))
    try:
        explain = explain_revenue(db, courier_id, start, end)
    except psycopg2.Error as exc:  # a schema without revenue_window
        explain = {"plan": str(exc).strip(), "index_scan": False, "rollup_index": False,
                   "deliveries": None, "revenue": None}
    response = json.loads(rig.app(ep.events[0], rig.context)["body"])
    explain["endpoint_says"] = response
    explain["same_as_endpoint"] = (
        explain["deliveries"] == response["deliveries"]
        and explain["revenue"] is not None
        and Decimal(explain["revenue"]) == Decimal(response["revenue"]))
    return explain
