"""The MCP server through the official Python SDK (`mcp` on PyPI), over stdio and streamable
HTTP, against a simulator this script is given. Prints what it checked; exits 1 on a failure.

    python client.py <kling-batch> <simulator url> <api key> <work folder>
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from common import Sim, check, failures, refused, seen, sizes_hold  # noqa: E402
import common  # noqa: E402

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

BIN, SIM, KEY, WORK = sys.argv[1:5]
RUNS = os.path.join(WORK, "runs")
EXAMPLE = open(os.path.join(os.path.dirname(__file__), "..", "..", "manifests", "example.yaml")).read()
SMALL = """name: small
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake at dawn", "a river in spring", "a sea in a storm"]
matrix: { aspect_ratio: ["16:9", "9:16"] }
"""


def server_args(extra=()):
    return ["mcp", "--runs-dir", RUNS, "--max-spend-per-sweep", "30", "--max-spend-total", "25", "--api-base", SIM, *extra]


ENV = {"RUNAPI_API_KEY": KEY, "RUNAPI_CONFIG_DIR": os.path.join(WORK, "no-config")}


sim = Sim(SIM, KEY)
sim_get = sim.get


def sweep_folders():
    return sorted(d for d in os.listdir(RUNS) if not d.startswith("."))


call = common.call
wait_state = common.wait_state


async def stdio_part():
    params = StdioServerParameters(command=BIN, args=server_args(), env=ENV)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            tools = (await s.list_tools()).tools
            names = sorted(t.name for t in tools)
            check(names == sorted(["validate_manifest", "plan_sweep", "start_sweep", "sweep_status", "sweep_results", "stop_sweep", "resume_sweep", "list_sweeps"]), f"the eight tools are listed: {names}")
            read_only = sorted(t.name for t in tools if t.annotations and t.annotations.read_only_hint)
            check(read_only == sorted(["validate_manifest", "plan_sweep", "sweep_status", "sweep_results", "list_sweeps"]), f"the five read-only tools say so: {read_only}")
            spending = sorted(t.name for t in tools if t.annotations and t.annotations.open_world_hint)
            check(spending == ["resume_sweep", "start_sweep"], f"the two that spend are open-world: {spending}")
            bad = (await call(s, "validate_manifest", {"manifest_yaml": "prompts:\n  - prompt: hi\n    modle: kling-3.0\n"})).structured_content
            check(bad["valid"] is False and any(p["line"] == 3 and "modle" in p["message"] for p in bad["problems"]), f"a bad manifest's problems have their lines: {bad['problems']}")
            plan = (await call(s, "plan_sweep", {"manifest_yaml": EXAMPLE})).structured_content
            check(plan["jobs"] == 16 and abs(plan["estimate_usd"] - 18.6) < 1e-9, f"the example plans 16 jobs at $18.60: {plan['jobs']} ${plan['estimate_usd']}")
            other = (await call(s, "plan_sweep", {"manifest_yaml": SMALL})).structured_content
            refusals = [
                ("no approval", {"manifest_yaml": EXAMPLE, "max_spend_usd": 25, "approval": ""}, "not_approved"),
                ("another plan's approval", {"manifest_yaml": EXAMPLE, "max_spend_usd": 25, "approval": other["approval"]}, "not_approved"),
                ("a cap above the approved estimate", {"manifest_yaml": EXAMPLE, "max_spend_usd": 18.61, "approval": plan["approval"]}, "over_approved"),
                ("a path that escapes", {"manifest_path": "../../etc/passwd", "max_spend_usd": 5, "approval": plan["approval"]}, "outside_runs"),
                ("a manifest outside the runs folder", {"manifest_path": os.path.join(WORK, "outside.yaml"), "max_spend_usd": 5, "approval": plan["approval"]}, "outside_runs"),
                ("an out that escapes", {"manifest_yaml": EXAMPLE, "out": "../elsewhere", "max_spend_usd": 18.60, "approval": plan["approval"]}, "bad_out"),
            ]
            with open(os.path.join(WORK, "outside.yaml"), "w") as f:
                f.write(EXAMPLE)
            for what, args, code in refusals:
                r = await call(s, "start_sweep", args)
                check(refused(r, code), f"start_sweep refuses {what}, as an answer and not an error ({r.structured_content.get('error')})")
            check(sweep_folders() == [] and sim.stats()["tasks_created"] == 0, "after the refusals nothing was written or sent")
            began = time.monotonic()
            started = await call(s, "start_sweep", {"manifest_yaml": EXAMPLE, "max_spend_usd": 18.60, "approval": plan["approval"]})
            took = time.monotonic() - began
            check(not refused(started) and started.structured_content["started"] is True, f"start_sweep with the approval starts it: {started.structured_content}")
            first = started.structured_content["sweep_id"]
            status = (await call(s, "sweep_status", {"sweep_id": first})).structured_content
            check(status["state"] == "running", f"start_sweep answered once the sweep runs ({took:.2f} s), state {status['state']}")
            waited = time.monotonic()
            moved = (await call(s, "sweep_status", {"sweep_id": first, "wait_s": 30})).structured_content
            check(time.monotonic() - waited < 30 and (moved["completed"], moved["in_flight"], moved["state"]) != (status["completed"], status["in_flight"], status["state"]),
                  f"sweep_status with wait_s answers as soon as the sweep moves ({time.monotonic() - waited:.1f} s)")
            # With a progress token, waiting sends progress; once a video is done there is an ETA.
            progress = []

            async def noted(done, total, message):
                progress.append((done, total))

            etas = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                now = (await call(s, "sweep_status", {"sweep_id": first, "wait_s": 10}, progress_callback=noted)).structured_content
                if now["state"] != "running":
                    break
                if now["completed"] > 0:
                    etas.append(now["eta_s"])
                if progress and etas:
                    break
            check(progress and all(t == 16 for _, t in progress), f"waiting with a progress token sends progress of the 16 jobs ({progress[:3]})")
            check(etas and all(isinstance(e, (int, float)) for e in etas), f"a running sweep with videos done has an ETA ({etas[:3]})")
            over = await call(s, "start_sweep", {"manifest_yaml": EXAMPLE, "out": "again", "max_spend_usd": 18.60, "approval": plan["approval"]})
            check(refused(over, "approval_used"), f"the approval a second time is refused ({over.structured_content.get('error')})")
            # A small plan's cap above the server's per-sweep limit is refused too.
            limited = StdioServerParameters(command=BIN, args=["mcp", "--runs-dir", RUNS, "--max-spend-per-sweep", "1", "--max-spend-total", "25", "--api-base", SIM], env=ENV)
        async with stdio_client(limited) as (read2, write2):
            async with ClientSession(read2, write2) as s2:
                await s2.initialize()
                r = await call(s2, "start_sweep", {"manifest_yaml": SMALL, "max_spend_usd": 4.20, "approval": other["approval"]})
                check(refused(r, "over_limit"), f"a cap over --max-spend-per-sweep is refused ({r.structured_content.get('error')})")
        # The stdio session ends here: the server process is gone, the sweep goes on.
    return first, other


async def restarted_part(first, other):
    params = StdioServerParameters(command=BIN, args=server_args(), env=ENV)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            listed = (await call(s, "list_sweeps", {})).structured_content
            check([x["sweep_id"] for x in listed["sweeps"]] == [first], f"a restarted server lists the sweep: {listed}")
            done = await wait_state(s, first, {"finished", "failed", "stopped", "interrupted"})
            check(done["state"] == "finished" and done["completed"] == 16, f"the sweep finished after the server was restarted: {done['state']}")
            page = (await call(s, "sweep_results", {"sweep_id": first})).structured_content
            rows = list(page["rows"])
            while "next_offset" in page:
                page = (await call(s, "sweep_results", {"sweep_id": first, "offset": page["next_offset"]})).structured_content
                rows += page["rows"]
            check(len(rows) == 16 and all(r["status"] == "completed" and r["video_path"] for r in rows), f"sweep_results lists every video, page by page ({len(rows)})")
            import csv
            with open(os.path.join(RUNS, first, "results.csv")) as f:
                tasks = {row["job_id"]: row for row in csv.DictReader(f)}
            same = 0
            for r in rows:
                row = tasks[r["job_id"]]
                task = json.loads(sim_get(f"/api/v1/kling/{row['endpoint']}/{row['task_id']}"))
                url = task["data"]["videos"][0]["url"] if "data" in task else task["videos"][0]["url"]
                with urllib.request.urlopen(url, timeout=30) as v:
                    served = v.read()
                same += open(r["video_path"], "rb").read() == served
            check(same == 16, f"every video's bytes are what the simulator served ({same}/16)")
            # A sweep stopped in its course resumes within its cap (18.60 + 4.20 of the 25 total).
            second = (await call(s, "start_sweep", {"manifest_yaml": SMALL, "max_spend_usd": 4.20, "approval": other["approval"]})).structured_content
            sid = second.get("sweep_id")
            check(sid is not None, f"a second sweep within the total starts: {second}")
            # Stopped mid-course: once some of its work is under way.
            deadline = time.monotonic() + 60
            while True:
                now = (await call(s, "sweep_status", {"sweep_id": sid})).structured_content
                if now["state"] != "running" or now["in_flight"] + now["completed"] > 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            stopped = (await call(s, "stop_sweep", {"sweep_id": sid})).structured_content
            after = await wait_state(s, sid, {"interrupted", "finished", "stopped"})
            check(after["state"] in ("interrupted", "finished"), f"stop_sweep stops it gracefully ({stopped.get('stopping')}, {after['state']})")
            if after["state"] == "interrupted":
                resumed = await call(s, "resume_sweep", {"sweep_id": sid})
                check(not refused(resumed) and resumed.structured_content["state"] in ("running", "finished"), f"resume_sweep resumes it: {resumed.structured_content}")
            end = await wait_state(s, sid, {"finished", "failed", "stopped"})
            check(end["state"] == "finished" and end["completed"] == 6, f"the resumed sweep finished: {end['state']} {end['completed']}")
            again = (await call(s, "plan_sweep", {"manifest_yaml": SMALL})).structured_content
            third = await call(s, "start_sweep", {"manifest_yaml": SMALL, "out": "third", "max_spend_usd": 4.20, "approval": again["approval"]})
            check(refused(third, "over_total"), f"the total limit still holds after a restart ({third.structured_content.get('error')})")
            listed = (await call(s, "list_sweeps", {})).structured_content
            spent = sum(x["spent_usd"] for x in listed["sweeps"])
            sim.money_holds(spent, "the SDK's sweeps")


def start_http(listen, want_token):
    """An HTTP server on `listen`: the process, its address (on 127.0.0.1) and its token."""
    proc = subprocess.Popen([BIN, *server_args(["--listen", listen])], env={**os.environ, **ENV}, stderr=subprocess.PIPE, text=True)
    url = token = None
    deadline = time.monotonic() + 60
    while (url is None or (want_token and token is None)) and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "streamable HTTP at" in line:
            url = line.split(" at ")[1].strip().replace("0.0.0.0", "127.0.0.1")
        if line.startswith("bearer token: "):
            token = line.split(": ", 1)[1].strip()
    return proc, url, token


def post_status(url, headers):
    req = urllib.request.Request(url, data=b"{}", method="POST", headers={"content-type": "application/json", "accept": "application/json, text/event-stream", **headers})
    try:
        urllib.request.urlopen(req, timeout=10)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


async def http_part():
    proc, url, token = start_http("0.0.0.0:0", True)
    try:
        check(url is not None and token is not None, f"the HTTP server prints its address and token: {url}")
        code = post_status(url, {})
        check(code == 401, f"off loopback, a request without the token is refused ({code})")
        client = create_mcp_http_client(headers={"Authorization": "Bearer " + token})
        async with client:
            async with streamable_http_client(url, http_client=client) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    names = [t.name for t in (await s.list_tools()).tools]
                    check(len(names) == 8, f"over streamable HTTP with the token, the tools are listed ({len(names)})")
                    plan = (await call(s, "plan_sweep", {"manifest_path": os.path.join(RUNS, "..", "runs", ".kling-batch-mcp", "nothing.yaml")}))
                    check(refused(plan, "outside_runs"), "a path into the server's own folder is not a manifest")
                    listed = (await call(s, "list_sweeps", {})).structured_content
                    check(len(listed["sweeps"]) == 2, f"over HTTP, list_sweeps sees both sweeps ({len(listed['sweeps'])})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def close_status(url):
    """Opens a session by hand and closes it as an SDK does (DELETE): the status answered."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "close-check", "version": "1"}}}
    req = urllib.request.Request(url, data=json.dumps(init).encode(), method="POST",
                                 headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(req, timeout=10) as r:
        session = r.headers.get("mcp-session-id")
        r.read()
    req = urllib.request.Request(url, method="DELETE", headers={"mcp-session-id": session or ""})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


async def loopback_http_part():
    proc, url, _ = start_http("127.0.0.1:0", False)
    try:
        code = close_status(url)
        check(code in (200, 204), f"closing an HTTP session is answered as the SDKs expect ({code})")
        code = post_status(url, {"host": "rebound.example"})
        check(code == 403, f"on loopback, a request addressed to another name is refused ({code})")
        async with streamable_http_client(url) as streams:
            async with ClientSession(streams[0], streams[1]) as s:
                await s.initialize()
                names = [t.name for t in (await s.list_tools()).tools]
                check(len(names) == 8, f"on loopback, the tools are listed without a token ({len(names)})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def main():
    shutil.rmtree(RUNS, ignore_errors=True)
    os.makedirs(RUNS)
    first, other = await stdio_part()
    await restarted_part(first, other)
    await http_part()
    await loopback_http_part()
    leaked = [t for _, t in seen if KEY in t]
    check(not leaked and len(seen) > 20, f"the API key is in none of {len(seen)} tool results")
    sizes_hold("the SDK's session")


try:
    asyncio.run(main())
except Exception as e:  # a failure to run is a failure, with its cause
    import traceback

    traceback.print_exc()
    failures.append(repr(e))
common.finish()
