"""What the MCP checks share: a check that records failures, the simulator's counters, a tool call
that keeps every answer (to look for the key and measure sizes), and the money invariants."""
import json
import sys
import time
import asyncio
import urllib.request

failures = []
seen = []  # (tool, text the model is handed)


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


class Sim:
    def __init__(self, url, key):
        self.url, self.key = url, key

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer " + self.key})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": "Bearer " + self.key, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status

    def stats(self):
        return json.loads(self.get("/__sim/stats"))

    def money_holds(self, spent_usd, what):
        """Nothing billed or created twice, and the spend reported is what the simulator billed."""
        st = self.stats()
        twice = [k for k, n in st["billed_per_client_request_id"].items() if n > 1] + \
                [k for k, n in st["creates_per_idempotency_key"].items() if n > 1]
        check(not twice, f"{what}: nothing billed or created twice ({twice[:3]})")
        check(abs(spent_usd - st["billed_usd"]) < 1e-6,
              f"{what}: the spend reported (${spent_usd:.2f}) is what the simulator billed (${st['billed_usd']:.2f})")


def handed_to_model(result):
    """What a client hands its model of a successful result: every text block and the structured
    content pretty-printed (OpenClaw's form, the larger of the two)."""
    texts = [getattr(c, "text", "") for c in result.content]
    structured = json.dumps(result.structured_content, indent=2) if result.structured_content is not None else ""
    return "\n".join(texts + [structured])


async def call(session, tool, args, **kw):
    result = await session.call_tool(tool, args, **kw)
    seen.append((tool, handed_to_model(result)))
    return result


def refused(result, code=None):
    sc = result.structured_content or {}
    return (not result.is_error) and sc.get("refused") is True and (code is None or sc.get("error") == code)


async def wait_state(session, sweep_id, states, limit=120):
    deadline = time.monotonic() + limit
    while True:
        status = (await call(session, "sweep_status", {"sweep_id": sweep_id, "wait_s": 5})).structured_content
        if status["state"] in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{sweep_id} did not reach {states} within {limit} s: {status}")
        await asyncio.sleep(0.05)


def sizes_hold(what):
    big = [(tool, len(text)) for tool, text in seen if len(text) >= 8000]
    check(not big and seen, f"{what}: every answer as a client hands it to the model is under 8,000 characters ({len(seen)} answers; over: {big[:3]})")


def finish():
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)
