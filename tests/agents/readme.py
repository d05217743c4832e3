"""The agent configurations exactly as README.md gives them: each fenced block after a
`<!-- config: NAME -->` line, with the README's example runs folder and key placeholder swapped for
the test's own, and the base URL of the test's simulator added to the server's env (the README
names `RUNAPI_BASE_URL` for that)."""
import json
import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def block(name):
    text = open(README).read()
    m = re.search(r"<!-- config: " + re.escape(name) + r" -->\s*```\w*\n(.*?)```", text, re.S)
    if not m:
        raise SystemExit(f"README.md has no config block {name}")
    return m.group(1)


def filled(name, runs, key, sim_url, listen=None):
    text = block(name).replace("/home/me/kling-runs", runs).replace('"sk-..."', json.dumps(key))
    if listen:
        text = text.replace("127.0.0.1:8800", listen)
    return text
