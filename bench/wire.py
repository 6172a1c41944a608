"""Statements on the wire: each endpoint's requests through the counting proxy
(tools/wirecount.py), recorded for the report and for the direct SQL replay."""

import os
import time
from typing import Any

from bench.endpoints import Endpoint
from bench.measure import Rig, lambda_call
from tools.wirecount import StatementCounter

# Requests counted for an endpoint that uses up a delivery each (all alike).
SUPPLIED_REQUESTS = 20


def count_statements(rig: Rig, endpoints: list[Endpoint]) -> dict[str, Any]:
    """Routes the app through the counting proxy; records what each request sends."""
    from chalicelib import conn

    counter = StatementCounter(rig.url)
    os.environ["DATABASE_URL"] = counter.dsn
    conn.drop()
    try:
        conn.connection()  # open it: whatever a new connection sends is set-up, not per request
        time.sleep(0.05)
        setup = counter.taken()
        result: dict[str, Any] = {"connection_setup": setup, "endpoints": {}}
        for ep in endpoints:
            call = lambda_call(rig, ep)
            if ep.supply is not None:
                requests = SUPPLIED_REQUESTS
                ep.supply.ready(ep.lambda_pos, requests + 1)
            else:
                requests = 2 if ep.kind == "login" else min(len(ep.events), 1000)
            call(ep.lambda_pos)  # first use of this function in the session, not counted
            ep.lambda_pos += 1
            ep.wire = []
            for _ in range(requests):
                did = None
                if ep.supply is not None:
                    did = int(ep.supply.events[ep.lambda_pos]["pathParameters"]["did"])
                counter.reset()
                call(ep.lambda_pos)
                ep.lambda_pos += 1
                ep.wire.append(counter.taken())
                if did is not None and ep.supply.template is None:
                    ep.supply.learn_statement(ep.wire[-1], did)
            per_request = [len(w) for w in ep.wire]
            result["endpoints"][ep.name] = {
                "kind": ep.kind,
                "per_request": max(per_request),
                "min": min(per_request),
                "sample": [s[:160] for s in ep.wire[0]],
            }
        # The direct replay connection gets the same set-up as the app's.
        with rig.direct.cursor() as cur:
            for sql in setup:
                cur.execute(sql)
        return result
    finally:
        os.environ["DATABASE_URL"] = rig.url
        conn.drop()
        counter.close()
