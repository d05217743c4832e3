"""The script users would otherwise write: RunAPI's official Python SDK (runapi-kling) in a thread
pool of the same concurrency, each thread calling `text_to_video.run(...)` (the SDK's default 2 s
polling) and downloading the video. One shared client, as the SDK's README shows.

Usage: sdk_baseline.py BASE_URL JOBS_JSON OUT_DIR CONCURRENCY [POLL_INTERVAL]
JOBS_JSON holds a list of request bodies (without `endpoint`). POLL_INTERVAL (seconds) replaces
the SDK's 2 s when the simulator compresses time: `run()` takes no polling options, so the same
create + the SDK's own `poll_until_complete` is called with the scaled interval. Prints one JSON
line of counts.
"""

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from runapi.core.options import PollingOptions
from runapi.core.polling import poll_until_complete
from runapi.kling import KlingClient

base_url, jobs_path, out_dir, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
poll_interval = float(sys.argv[5]) if len(sys.argv) > 5 else None
with open(jobs_path) as f:
    jobs = json.load(f)
os.makedirs(out_dir, exist_ok=True)

kling = KlingClient(api_key=os.environ["RUNAPI_API_KEY"], base_url=base_url)
downloads = httpx.Client(timeout=60)


def one(index_and_params):
    index, params = index_and_params
    try:
        if poll_interval is None:
            result = kling.text_to_video.run(**params)
        else:
            task = kling.text_to_video.create(**params)
            result = poll_until_complete(
                lambda: kling.text_to_video.get(task.id), PollingOptions(poll_interval=poll_interval)
            )
        with downloads.stream("GET", result.videos[0].url) as response:
            response.raise_for_status()
            with open(os.path.join(out_dir, f"{index:06}.mp4"), "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return None
    except Exception as error:  # a batch script logs and goes on
        return f"{type(error).__name__}: {error}"


started = time.monotonic()
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    errors = [e for e in pool.map(one, enumerate(jobs)) if e is not None]
print(
    json.dumps(
        {
            "jobs": len(jobs),
            "completed": len(jobs) - len(errors),
            "failed": len(errors),
            "first_errors": errors[:3],
            "wall_seconds": time.monotonic() - started,
        }
    )
)
