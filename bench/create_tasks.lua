-- wrk script: POST creates (a new task each time, no Idempotency-Key) to measure memory per task.
wrk.method = "POST"
wrk.body = '{"model":"kling-3.0","prompt":"A drone shot over a mountain lake at sunrise","duration_seconds":5}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-sim-local"
