"""kling-batch's MCP server in Hermes Agent 0.19.0, driven through Hermes' own MCP client code (no
LLM): `tools.mcp_tool.discover_mcp_tools` and `model_tools.handle_function_call`, the functions its
agent loop calls, with the README's configuration written to `$HERMES_HOME/config.yaml`. The one
stand-in is the human at Hermes' approval prompt (`tools.approval.prompt_dangerous_approval`).

    python hermes.py <stdio|http> <work folder> <simulator url> <api key> [<mcp url>]
"""
import json
import os
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import readme  # noqa: E402

MODE, WORK, SIM, KEY = sys.argv[1:5]
MCP_URL = sys.argv[5] if len(sys.argv) > 5 else None
RUNS = os.path.join(WORK, f"runs-{MODE}")
HOME = os.path.join(WORK, f"hermes-{MODE}")
failures = []
answers = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + f"hermes {MODE}: " + what, flush=True)
    if not ok:
        failures.append(what)


def stats():
    req = urllib.request.Request(SIM + "/__sim/stats", headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


shutil.rmtree(HOME, ignore_errors=True)
os.makedirs(os.path.join(HOME, "skills"))
os.makedirs(RUNS, exist_ok=True)
if MODE == "stdio":
    config = readme.filled("hermes-stdio", RUNS, KEY, SIM)
    config = config.replace('RUNAPI_API_KEY: "${RUNAPI_API_KEY}"', 'RUNAPI_API_KEY: "${RUNAPI_API_KEY}"\n      RUNAPI_BASE_URL: "' + SIM + '"')
    os.environ["RUNAPI_API_KEY"] = KEY
else:
    config = readme.filled("hermes-http", RUNS, KEY, SIM, listen=MCP_URL.split("//")[1].split("/")[0])
open(os.path.join(HOME, "config.yaml"), "w").write(config)
shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "skills", "kling-batch"), os.path.join(HOME, "skills", "kling-batch"))
os.environ["HERMES_HOME"] = HOME

# The human at Hermes' approval prompt: says yes to what the test wants, and notes what it saw.
import tools.approval as approval  # noqa: E402

human = {"answer": "once"}


def at_the_prompt(message, description, **kw):
    answers.append(message)
    return human["answer"]


approval.prompt_dangerous_approval = at_the_prompt

from tools.mcp_tool import discover_mcp_tools  # noqa: E402
from model_tools import handle_function_call  # noqa: E402
from agent.prompt_builder import build_skills_system_prompt  # noqa: E402

seen = []


def tool(name, args):
    text = handle_function_call("mcp__kling_batch__" + name, args)
    seen.append((name, text))
    try:
        return text, json.loads(text)
    except ValueError:
        return text, {}


def structured(answer):
    return answer.get("structuredContent") or {}


names = discover_mcp_tools()
kb = sorted(n for n in names if n.startswith("mcp__kling_batch__"))
check(len(kb) == 8, f"Hermes lists the eight tools: {kb}")

# The skill in Hermes' own index, as the model's system prompt shows it.
index = build_skills_system_prompt()
line = next((l for l in index.splitlines() if "kling-batch:" in l and "Use when" in l), "")
check("Use when someone wants many Kling videos" in line, f"the skill is in Hermes' index with its use in the first 60 characters: {line.strip()}")

SMALL = f"name: hermes-{MODE}\ndefaults: {{ model: kling-3.0, duration_seconds: 5 }}\nprompts: [\"a lake\", \"a river\"]\nmatrix: {{ aspect_ratio: [\"16:9\", \"9:16\"] }}\n"

# Five refusals in a row, then a plan: Hermes must not take the server for broken.
for i in range(5):
    text, answer = tool("start_sweep", {"manifest_yaml": SMALL, "max_spend_usd": 1, "approval": f"forged-{i}"})
    sc = structured(answer)
    check(sc.get("refused") is True and sc.get("error") == "not_approved" and "unreachable" not in text.lower(),
          f"refusal {i + 1} is an answer the model can act on ({sc.get('error')})")
text, answer = tool("plan_sweep", {"manifest_yaml": SMALL})
plan = structured(answer)
check("approval" in plan and "unreachable" not in text.lower(), f"after five refusals a plan still works ({plan.get('jobs')} jobs)")

# Plan → start (Hermes asks its human) → status with wait_s → results → list.
before = stats()["tasks_created"]
human["answer"] = "deny"
text, answer = tool("start_sweep", {"manifest_yaml": SMALL, "max_spend_usd": plan["estimate_usd"], "approval": plan["approval"]})
check(structured(answer).get("error") == "declined" and stats()["tasks_created"] == before and len(answers) == 1,
      f"Hermes asked its human, who said no: nothing starts ({structured(answer).get('error')}, asked {len(answers)})")
human["answer"] = "once"
text, answer = tool("start_sweep", {"manifest_yaml": SMALL, "max_spend_usd": plan["estimate_usd"], "approval": plan["approval"]})
started = structured(answer)
check(started.get("state") in ("running", "finished") and len(answers) == 2 and "estimated $" in answers[-1],
      f"with the human's yes at Hermes' prompt, it starts ({started.get('state')}: {answers[-1][:80] if answers else ''})")
sid = started.get("sweep_id")
deadline = time.monotonic() + 180
status = {}
while sid and time.monotonic() < deadline:
    _, answer = tool("sweep_status", {"sweep_id": sid, "wait_s": 20})
    status = structured(answer)
    if status.get("state") != "running":
        break
check(status.get("state") == "finished" and status.get("completed") == 4, f"sweep_status with wait_s follows it to the end ({status.get('state')}, {status.get('completed')})")
_, answer = tool("sweep_results", {"sweep_id": sid or ""})
rows = structured(answer).get("rows", [])
check(len(rows) == 4 and all(r["status"] == "completed" and os.path.exists(r["video_path"]) for r in rows), f"sweep_results lists the videos ({len(rows)})")
_, answer = tool("list_sweeps", {})
listed = structured(answer)
check(any(s["sweep_id"] == sid for s in listed.get("sweeps", [])), "list_sweeps shows it")

big = [(n, len(t)) for n, t in seen if len(t) >= 8000]
check(not big, f"every answer as Hermes hands it to the model is under 8,000 characters ({len(seen)}; over: {big})")
check(not any(KEY in t for _, t in seen), "the key is in no answer")
spent = sum(s["spent_usd"] for s in listed.get("sweeps", []))
st = stats()
twice = [k for k, n in st["creates_per_idempotency_key"].items() if n > 1] + [k for k, n in st["billed_per_client_request_id"].items() if n > 1]
check(not twice, f"nothing created or billed twice ({twice[:3]})")
check(abs(spent - st["billed_usd"]) < 1e-6, f"the spend reported (${spent:.2f}) is what the simulator billed (${st['billed_usd']:.2f})")
print(f"{len(failures)} failed", flush=True)
# Hermes' MCP threads do not end on their own: leave without waiting for them.
os._exit(1 if failures else 0)
