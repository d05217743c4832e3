"""Drives the kling-batch simulator with RunAPI's official Python SDK (runapi-kling).

If a client nobody here wrote can create, poll, run to completion, download the video, and gets
the SDK's own error class for each failure, the simulator speaks the same contract as the real
service. Usage: sdk_conformance.py BASE_URL API_KEY
"""

import json
import sys
import traceback
import urllib.request

from runapi.core import RequestOptions
from runapi.core.errors import (
    AuthenticationError,
    ConflictError,
    InsufficientCreditsError,
    RateLimitError,
    TaskFailedError,
    ValidationError,
)
from runapi.kling import KlingClient

BASE_URL, API_KEY = sys.argv[1], sys.argv[2]
PARAMS = {"model": "kling-3.0", "prompt": "A drone shot over a mountain lake", "duration_seconds": 5}


def control(path, body):
    request = urllib.request.Request(
        f"{BASE_URL}/__sim/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request).read()


def stats():
    return json.load(urllib.request.urlopen(f"{BASE_URL}/__sim/stats"))


def client(**options):
    return KlingClient(api_key=API_KEY, base_url=BASE_URL, **options)


def expect(error_class, call):
    try:
        call()
    except error_class as error:
        return error
    raise AssertionError(f"expected {error_class.__name__}")


def create_and_get():
    kling = client()
    task = kling.text_to_video.create(**PARAMS)
    assert task.id, "create returns an id"
    again = kling.text_to_video.get(task.id)
    assert again.id == task.id
    assert again.status in ("pending", "processing", "completed"), again.status


def run_to_completion_and_download():
    result = client().text_to_video.run(**PARAMS)
    assert result.status == "completed"
    url = result.videos[0].url
    video = urllib.request.urlopen(url).read()
    assert video[4:8] == b"ftyp", "the video is an MP4"
    assert len(video) > 1000


def image_to_video_runs_too():
    result = client().image_to_video.run(
        model="kling-v2.1-pro", prompt="The dog runs", first_frame_image_url="https://example.com/dog.png"
    )
    assert result.videos[0].url


def failed_task_raises_its_error():
    control("faults", {"task_failure_rate": 1.0})
    try:
        error = expect(TaskFailedError, lambda: client().text_to_video.run(**PARAMS))
        assert "Generation failed" in str(error), str(error)
    finally:
        control("faults", {})


def wrong_key_is_authentication_error():
    kling = KlingClient(api_key="sk-not-the-key", base_url=BASE_URL, max_retries=0)
    expect(AuthenticationError, lambda: kling.text_to_video.create(**PARAMS))


def empty_balance_is_insufficient_credits():
    control("balance", {"cents": 0})
    try:
        expect(InsufficientCreditsError, lambda: client(max_retries=0).text_to_video.create(**PARAMS))
    finally:
        control("balance", {"cents": 100000})


def reused_key_with_new_body_is_conflict():
    kling = client(max_retries=0)
    options = RequestOptions(headers={"Idempotency-Key": "conformance-key-1"})
    first = kling.text_to_video.create(options=options, **PARAMS)
    replay = kling.text_to_video.create(options=options, **PARAMS)
    assert replay.id == first.id, "same key and body give the original task"
    changed = dict(PARAMS, prompt="Something else entirely")
    expect(ConflictError, lambda: kling.text_to_video.create(options=options, **changed))


def invalid_request_is_validation_error():
    before = stats()["requests"].get("POST /api/v1/kling/{action}", {}).get("422", 0)
    expect(ValidationError, lambda: client(max_retries=0).text_to_video.create(**dict(PARAMS, duration_seconds=99)))
    after = stats()["requests"]["POST /api/v1/kling/{action}"].get("422", 0)
    assert after == before + 1, "the server, not the SDK, refused it"


def rate_limit_is_rate_limit_error():
    control("faults", {"rate_limit_per_second": 0.001, "rate_limit_burst": 1.0, "retry_after": "seconds"})
    try:
        kling = client(max_retries=0)
        kling.text_to_video.create(**PARAMS)
        error = expect(RateLimitError, lambda: kling.text_to_video.create(**PARAMS))
        assert error.retry_after and error.retry_after >= 1, error.retry_after
    finally:
        control("faults", {})


CHECKS = [
    create_and_get,
    run_to_completion_and_download,
    image_to_video_runs_too,
    failed_task_raises_its_error,
    wrong_key_is_authentication_error,
    empty_balance_is_insufficient_credits,
    reused_key_with_new_body_is_conflict,
    invalid_request_is_validation_error,
    rate_limit_is_rate_limit_error,
]

if __name__ == "__main__":
    failed = 0
    for check in CHECKS:
        try:
            check()
            print(f"ok: {check.__name__}")
        except Exception:
            failed += 1
            print(f"FAILED: {check.__name__}")
            traceback.print_exc()
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
