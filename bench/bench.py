"""kling-batch benchmarks (issue 7). Run through bench/run.sh, which builds in release mode and makes
the SDK venv. Every scenario starts the simulator as its own process (`kling-batch sim`), runs the
client under /usr/bin/time -v (CPU, peak RSS), and reads API request counts and per-task timings
from the simulator (`/__sim/stats`, `/__sim/tasks`). Figures go to target/bench/results.json and
into BENCHMARKS.md between the `bench:results` markers.

Usage: bench.py BIN PYTHON [--quick] [--no-baseline] [--only S1,S2,...] [--no-write]
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "sk-sim-local"
ENV = dict(os.environ, RUNAPI_API_KEY=KEY, RUST_LOG="", NO_COLOR="1")


def log(*parts):
    print("bench:", *parts, file=sys.stderr, flush=True)


# --- the simulator, as a separate process -------------------------------------------------------


class Sim:
    def __init__(self, binary, work, profile):
        self.work = work
        path = os.path.join(work, "sim-profile.json")  # JSON is YAML
        with open(path, "w") as f:
            json.dump(profile, f)
        self.out = open(os.path.join(work, "sim-url"), "w+")
        self.err = open(os.path.join(work, "sim-log"), "w")
        self.proc = subprocess.Popen(
            [binary, "sim", "--port", "0", "--faults", path], stdout=self.out, stderr=self.err, env=ENV
        )
        for _ in range(200):
            self.out.seek(0)
            line = self.out.readline().strip()
            if line:
                self.url = line
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the simulator did not start; see {self.err.name}")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=120) as r:
            return json.load(r)

    def stats(self):
        return self.get("/__sim/stats")

    def tasks(self):
        return self.get("/__sim/tasks")

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def profile(time_scale, generation, video_bytes):
    return {
        "time_scale": time_scale,
        "generation": generation,
        "video_bytes": video_bytes,
        "balance_cents": 10**12,
        "seed": 7,
    }


# --- measuring a process ------------------------------------------------------------------------


def timed(cmd, work, name, env=ENV):
    """Runs cmd under /usr/bin/time -v; returns wall, user, sys, peak RSS and the exit code."""
    time_out = os.path.join(work, f"{name}.time")
    with open(os.path.join(work, f"{name}.stdout"), "w") as out, open(os.path.join(work, f"{name}.stderr"), "w") as err:
        started = time.monotonic()
        code = subprocess.call(["/usr/bin/time", "-v", "-o", time_out, *cmd], stdout=out, stderr=err, env=env)
        wall = time.monotonic() - started
    with open(time_out) as f:
        text = f.read()

    def field(label):
        return float(re.search(re.escape(label) + r":\s+([\d.]+)", text).group(1))

    return {
        "exit": code,
        "wall": wall,
        "user": field("User time (seconds)"),
        "sys": field("System time (seconds)"),
        "rss_mb": field("Maximum resident set size (kbytes)") / 1024,
        "started_unix_ms": (time.time() - wall) * 1000,
        "stdout": os.path.join(work, f"{name}.stdout"),
        "stderr": os.path.join(work, f"{name}.stderr"),
    }


def api_requests(stats):
    return sum(sum(by.values()) for route, by in stats["requests"].items() if "/api/" in route)


def task_figures(sim_tasks):
    """Polls per task and how late the client noticed, as a share of generation time."""
    tasks = sim_tasks["tasks"]
    scale = sim_tasks["time_scale"] or 1
    seen = [t for t in tasks if t["noticed_after_seconds"] is not None]
    shares = [t["noticed_after_seconds"] / t["generation_seconds"] for t in seen if t["generation_seconds"] > 0]
    ordered = sorted(shares)
    return {
        "tasks": len(tasks),
        "polls_per_task": statistics.mean(t["polls"] for t in tasks) if tasks else 0,
        "median_notice_delay_share": statistics.median(shares) if shares else None,
        "p90_notice_delay_share": ordered[int(0.9 * (len(ordered) - 1))] if ordered else None,
        "median_notice_delay_ms": statistics.median(t["noticed_after_seconds"] for t in seen) / scale * 1000
        if seen
        else None,
        "longest_generation_s": max((t["generation_seconds"] for t in tasks), default=0) / scale,
    }


def write_manifest(path, prompts, defaults, matrix=None, limits=None):
    manifest = {"name": os.path.basename(path).split(".")[0], "defaults": defaults, "prompts": prompts}
    if matrix:
        manifest["matrix"] = matrix
    with open(path, "w") as f:
        json.dump(manifest, f)  # JSON is YAML


def prompts(n, tag):
    return [f"{tag} shot {i}: a paper boat drifting down a gutter after rain, take {i * 7919 % 10007}" for i in range(n)]


def runner_cmd(binary, manifest, out, url, rate, concurrency, extra=()):
    # Never told the simulator's time scale: the poll schedule learns it (issue 15).
    return [
        binary, "run", manifest, "--out", out, "--api-base", url, "--rate", str(rate),
        "--concurrency", str(concurrency), "--max-spend", "100000000", "--yes", "-q", *extra,
    ]  # fmt: skip


def baseline(args, sim, work, bodies, concurrency, poll_interval=None):
    jobs = os.path.join(work, "jobs.json")
    with open(jobs, "w") as f:
        json.dump(bodies, f)
    cmd = [args.python, os.path.join(ROOT, "bench", "sdk_baseline.py"), sim.url, jobs, os.path.join(work, "sdk-videos"), str(concurrency)]
    if poll_interval is not None:
        cmd.append(str(poll_interval))
    result = timed(cmd, work, "sdk")
    with open(result["stdout"]) as f:
        lines = f.read().strip().splitlines()
    result["report"] = json.loads(lines[-1]) if lines else {}
    return result


def with_sim_figures(result, sim, jobs):
    stats = sim.stats()
    result["api_requests"] = api_requests(stats)
    result["creates"] = stats["tasks_created"]
    result["completed_tasks"] = stats["tasks_completed"]
    result["rate_limited"] = stats["rate_limited"]
    tasks = sim.tasks()
    result.update(task_figures(tasks))
    # When the last task finished, from the client's start: no client can end before it (its
    # create waited for the rate, or for the client to start; then it generated).
    scale = tasks["time_scale"] or 1
    if "started_unix_ms" in result:
        finishes = [(t["created_unix_ms"] - result["started_unix_ms"]) / 1000 + t["generation_seconds"] / scale for t in tasks["tasks"]]
        result["last_finish_s"] = max(finishes, default=None)
    result["polls_per_job"] = stats["polls"] / jobs
    result["cpu_us_per_job"] = (result["user"] + result["sys"]) / jobs * 1e6
    return result


# --- scenarios ----------------------------------------------------------------------------------


def s1_throughput(args, work):
    n, rate, conc = (1000, 500, 1000) if args.quick else (10000, 500, 1000)
    scale = 100.0
    prof = profile(scale, {"kind": "uniform", "min_seconds": 20.0, "max_seconds": 80.0}, 4096)
    defaults = {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5, "output_resolution": "720p"}
    texts = prompts(n, "s1")
    manifest = os.path.join(work, "s1.yaml")
    write_manifest(manifest, texts, defaults)
    out = {"jobs": n, "rate": rate, "concurrency": conc}
    sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
    try:
        r = timed(runner_cmd(args.bin, manifest, os.path.join(work, "s1-out"), sim.url, rate, conc), work, "s1")
        out["kling_batch"] = with_sim_figures(r, sim, n)
        out["sim_rss_mb"] = sim.rss_kb() / 1024
    finally:
        sim.stop()
    longest = out["kling_batch"]["longest_generation_s"]
    out["bound_s"] = 2 * n / rate + longest
    out["kling_batch"]["wall_over_bound"] = out["kling_batch"]["wall"] / out["bound_s"]
    if not args.no_baseline:
        sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
        try:
            bodies = [{k: v for k, v in defaults.items() if k != "endpoint"} | {"prompt": t} for t in texts]
            r = baseline(args, sim, work, bodies, conc)
            out["sdk"] = with_sim_figures(r, sim, n)
            out["sdk"]["wall_over_bound"] = r["wall"] / out["bound_s"]
        finally:
            sim.stop()
    return out


def s2_polling(args, work):
    n, rate, conc = (300, 500, 100) if args.quick else (2000, 500, 100)
    scale = 100.0
    prof = profile(scale, {"kind": "realistic"}, 4096)
    # 30–120 s by length and resolution: 5/10/15 s × 720p/1080p/4k.
    matrix = {"duration_seconds": [5, 10, 15], "output_resolution": ["720p", "1080p", "4k"]}
    defaults = {"endpoint": "text_to_video", "model": "kling-3.0"}
    texts = prompts(n // 9 + (n % 9 > 0), "s2")
    manifest = os.path.join(work, "s2.yaml")
    write_manifest(manifest, texts, defaults, matrix)
    jobs = len(texts) * 9
    out = {"jobs": jobs, "rate": rate, "concurrency": conc}
    sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
    try:
        r = timed(runner_cmd(args.bin, manifest, os.path.join(work, "s2-out"), sim.url, rate, conc), work, "s2")
        out["kling_batch"] = with_sim_figures(r, sim, jobs)
    finally:
        sim.stop()
    if not args.no_baseline:
        sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
        try:
            bodies = [
                {"model": "kling-3.0", "prompt": t, "duration_seconds": d, "output_resolution": res}
                for t in texts
                for d in matrix["duration_seconds"]
                for res in matrix["output_resolution"]
            ]
            r = baseline(args, sim, work, bodies, conc, poll_interval=2.0 / scale)
            out["sdk"] = with_sim_figures(r, sim, jobs)
        finally:
            sim.stop()
    return out


def s3_scale(args, work):
    n = 20000 if args.quick else 100000
    scale = 100.0
    prof = profile(scale, {"kind": "uniform", "min_seconds": 20.0, "max_seconds": 80.0}, 1024)
    manifest = os.path.join(work, "s3.yaml")
    # 100,000 jobs: 16,667 prompts × 6 combinations.
    matrix = {"aspect_ratio": ["16:9", "9:16", "1:1"], "enable_sound": [False, True]}
    texts = prompts(-(-n // 6), "s3")
    write_manifest(manifest, texts, {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5}, matrix)
    jobs = len(texts) * 6
    out = {"jobs": jobs}
    out["plan"] = timed([args.bin, "plan", manifest], work, "s3-plan")
    out["plan_json"] = timed([args.bin, "plan", manifest, "--json"], work, "s3-plan-json")
    validate = timed([args.bin, "validate", manifest], work, "s3-validate")
    out["validate"] = validate
    sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
    folder = os.path.join(work, "s3-out")
    try:
        first = timed(
            runner_cmd(args.bin, manifest, folder, sim.url, 4000, 1000, ["--max-runtime", "15s"]), work, "s3-run"
        )
        out["run"] = first
        before = sim.stats()["tasks_created"]
        resume = timed(
            runner_cmd(args.bin, manifest, folder, sim.url, 4000, 1000, ["--max-runtime", "3s"]), work, "s3-resume"
        )
        out["resume"] = resume
        created = [t["created_unix_ms"] for t in sim.tasks()["tasks"][before:]]
        out["resume"]["first_create_after_ms"] = min(created) - resume["started_unix_ms"] if created else None
        out["journal_records_mb"] = os.path.getsize(os.path.join(folder, "journal.jsonl")) / 2**20
        out["completed_before_resume"] = before
    finally:
        sim.stop()
    return out


def download_seconds(stderr_path):
    """Bytes, seconds to the last byte written, and seconds until the file was fsynced in place."""
    with open(stderr_path) as f:
        for line in f:
            if '"downloaded"' in line:
                fields = json.loads(line).get("fields", {})
                return fields.get("bytes"), fields.get("received_seconds"), fields.get("seconds")
    return None, None, None


def s4_download(args, work):
    size = (256 if args.quick else 1024) * 2**20
    defaults = {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5}
    out = {"bytes": size}
    for label, video_bytes in (("small", 4096), ("large", size)):
        manifest = os.path.join(work, f"s4-{label}.yaml")
        write_manifest(manifest, ["a single long take of a lighthouse"], defaults)
        sim = Sim(args.bin, tempfile.mkdtemp(dir=work), profile(1000.0, {"kind": "realistic"}, video_bytes))
        try:
            folder = os.path.join(work, f"s4-{label}-out")
            cmd = runner_cmd(args.bin, manifest, folder, sim.url, 50, 4, ["--max-video-bytes", str(2 * size)])
            cmd = [c for c in cmd if c != "-q"] + ["-vv", "--log-format", "json", "--log-file", os.path.join(work, f"s4-{label}.log")]
            r = timed(cmd, work, f"s4-{label}")
            r["bytes"], r["download_seconds"], r["durable_seconds"] = download_seconds(os.path.join(work, f"s4-{label}.log"))
            out[label] = r
            if label == "large":
                # curl on the same video, in the same run: a fresh task's URL.
                request = urllib.request.Request(
                    sim.url + "/api/v1/kling/text_to_video",
                    data=json.dumps({"model": "kling-3.0", "prompt": "curl", "duration_seconds": 5}).encode(),
                    headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                )
                task = json.load(urllib.request.urlopen(request))
                while True:
                    req = urllib.request.Request(
                        sim.url + f"/api/v1/kling/text_to_video/{task['id']}", headers={"Authorization": f"Bearer {KEY}"}
                    )
                    view = json.load(urllib.request.urlopen(req))
                    if view["status"] == "completed":
                        break
                    time.sleep(0.05)
                url = view["videos"][0]["url"]
                target = os.path.join(work, "curl.mp4")
                speeds = []
                for _ in range(2):
                    text = subprocess.check_output(["curl", "-s", "-o", target, "-w", "%{speed_download}", url])
                    speeds.append(float(text))
                    os.remove(target)
                out["curl_mb_s"] = max(speeds) / 2**20
        finally:
            sim.stop()
    large = out["large"]
    # Like curl's figure: to the last byte written. The fsync that makes the file durable (curl
    # does none) is reported on its own line.
    out["kling_batch_mb_s"] = large["bytes"] / large["download_seconds"] / 2**20 if large["download_seconds"] else None
    out["durable_mb_s"] = large["bytes"] / large["durable_seconds"] / 2**20 if large["durable_seconds"] else None
    out["rss_growth_mb"] = large["rss_mb"] - out["small"]["rss_mb"]
    out["throughput_vs_curl"] = out["kling_batch_mb_s"] / out["curl_mb_s"] if out["kling_batch_mb_s"] else None
    return out


# Issue 15: generation-time shapes the runner is not told about. (name, label, profile generation,
# time scale, jobs, concurrency, rate; quick jobs.) Realistic 30–120 s at ×100 is S2.
POLLING = [
    ("P1", "uniform 0.2–0.5 s", {"kind": "uniform", "min_seconds": 0.2, "max_seconds": 0.5}, 400, 100, 100, 200),
    ("P2", "uniform 8–20 s, all at once", {"kind": "uniform", "min_seconds": 8, "max_seconds": 20}, 60, 60, 50, 60),
    ("P3", "log-normal, median 5 s, σ 0.5", {"kind": "log_normal", "median_seconds": 5, "sigma": 0.5}, 100, 20, 50, 40),
    ("P4", "bimodal 2 s / 12 s (30 % slow)", {"kind": "bimodal", "fast_seconds": 2, "slow_seconds": 12, "slow_share": 0.3}, 100, 20, 50, 40),
    ("P5", "drift 2 s → 10 s over 40 s", {"kind": "drift", "from_seconds": 2, "to_seconds": 10, "over_seconds": 40}, 120, 20, 50, 40),
]


def polling_scenario(name, label, generation, jobs, conc, rate, quick_jobs):
    def run(args, work):
        n = quick_jobs if args.quick else jobs
        prof = profile(1.0, generation, 4096)
        defaults = {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5, "output_resolution": "720p"}
        texts = prompts(n, name.lower())
        manifest = os.path.join(work, f"{name}.yaml")
        write_manifest(manifest, texts, defaults)
        out = {"label": label, "jobs": n, "rate": rate, "concurrency": conc}
        sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
        try:
            r = timed(runner_cmd(args.bin, manifest, os.path.join(work, f"{name}-out"), sim.url, rate, conc), work, name)
            out["kling_batch"] = with_sim_figures(r, sim, n)
            # Every task as the simulator saw it (polls, when noticed), for a closer look.
            with open(os.path.join(work, f"{name}-tasks.json"), "w") as f:
                json.dump(sim.tasks(), f)
        finally:
            sim.stop()
        out["bound_s"] = 2 * n / rate + out["kling_batch"]["longest_generation_s"]
        if not args.no_baseline:
            sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
            try:
                bodies = [{k: v for k, v in defaults.items() if k != "endpoint"} | {"prompt": t} for t in texts]
                out["sdk"] = with_sim_figures(baseline(args, sim, work, bodies, conc), sim, n)
            finally:
                sim.stop()
        return out

    return run


def u1_uploads(args, work):
    """Issue 16: 1,000 small local images (100 KB each) as first frames, then one 1 GiB local
    reference video; uploads per second and MiB/s, peak RSS against a run of URL inputs."""
    n = 100 if args.quick else 1000
    big = (64 if args.quick else 1024) * 2**20
    out = {"images": n, "video_bytes": big}
    folder = os.path.join(work, "u1")
    os.makedirs(os.path.join(folder, "photos"), exist_ok=True)
    for i in range(n):
        with open(os.path.join(folder, "photos", f"p{i:05}.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(100_000))
    with open(os.path.join(folder, "dance.mp4"), "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42")
        chunk = os.urandom(2**20)
        for _ in range(big // 2**20):
            f.write(chunk)
    with open(os.path.join(folder, "me.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(1000))
    prof = profile(100.0, {"kind": "uniform", "min_seconds": 20.0, "max_seconds": 40.0}, 4096)
    images = os.path.join(folder, "images.yaml")
    with open(images, "w") as f:
        json.dump({"defaults": {"endpoint": "image_to_video", "model": "kling-v2.6", "mode": "pro", "duration_seconds": 5},
                   "prompts": [{"id": "still", "prompt": "the picture comes alive", "first_frame_image_url": "photos/*.png"}]}, f)
    video = os.path.join(folder, "video.yaml")
    with open(video, "w") as f:
        json.dump({"defaults": {"endpoint": "motion_control", "model": "kling-3.0"},
                   "prompts": [{"id": "dance", "prompt": "dance like this", "source_image_url": "me.png",
                                "reference_video_url": "dance.mp4"}]}, f)
    for label, manifest, jobs in (("images", images, n), ("video", video, 1)):
        sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
        try:
            r = timed(runner_cmd(args.bin, manifest, os.path.join(work, f"u1-{label}-out"), sim.url, 500, 200), work, f"u1-{label}")
            stats = sim.stats()
            r["uploads"] = stats["uploads_confirmed"]
            r["upload_requests_with_authorization"] = stats["upload_requests_with_authorization"]
            r["completed_tasks"] = stats["tasks_completed"]
            out[label] = r
        finally:
            sim.stop()
    out["images_per_second"] = n / out["images"]["wall"]
    out["images_mib_per_second"] = n * 100_000 / 2**20 / out["images"]["wall"]
    out["video_mib_per_second"] = big / 2**20 / out["video"]["wall"]
    return out


# --- several machines, one sweep (issue 18) -----------------------------------------------------


class Pg:
    """A throwaway PostgreSQL: Debian's server binaries, a cluster from initdb in a temporary
    folder, started by pg_ctl on a free loopback port (as the postgres user when root), with its
    default durability (fsync on)."""

    def __init__(self):
        import glob
        import pwd
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise RuntimeError("PostgreSQL's server is not installed: apt-get install postgresql")
        self.bin = bins[-1]
        self.dir = tempfile.mkdtemp(prefix="kb-bench-pg-")
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.tool("initdb", "-D", f"{self.dir}/data", "-U", "kb", "--auth=trust", "-E", "UTF8")
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        self.tool("pg_ctl", "-D", f"{self.dir}/data", "-o", opts, "-l", f"{self.dir}/log", "-w", "start")

    def tool(self, name, *args):
        cmd = [os.path.join(self.bin, name), *args]
        if self.as_postgres:
            cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sql(self, db, text):
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "kb", "-d", db, "-At", "-c", text],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip()

    def database(self, name):
        self.sql("postgres", f"create database {name}")
        return f"postgres://kb@127.0.0.1:{self.port}/{name}"

    def stop(self):
        self.tool("pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def parallel(cmds, work, name):
    """Runs several commands at once, each under /usr/bin/time -v; their figures and the wall time
    of the whole."""
    started = time.monotonic()
    procs = []
    for i, cmd in enumerate(cmds):
        time_out = os.path.join(work, f"{name}-{i}.time")
        err = open(os.path.join(work, f"{name}-{i}.stderr"), "w")
        procs.append((subprocess.Popen(["/usr/bin/time", "-v", "-o", time_out, *cmd], stdout=subprocess.DEVNULL, stderr=err, env=ENV), time_out, err))
    figures = []
    for proc, time_out, err in procs:
        code = proc.wait()
        err.close()
        with open(time_out) as f:
            text = f.read()
        user = float(re.search(r"User time \(seconds\):\s+([\d.]+)", text).group(1))
        sys_ = float(re.search(r"System time \(seconds\):\s+([\d.]+)", text).group(1))
        rss = float(re.search(r"Maximum resident set size \(kbytes\):\s+([\d.]+)", text).group(1)) / 1024
        figures.append({"exit": code, "user": user, "sys": sys_, "rss_mb": rss})
    return {"wall": time.monotonic() - started, "workers": figures, "user": sum(f["user"] for f in figures), "sys": sum(f["sys"] for f in figures), "rss_mb": max(f["rss_mb"] for f in figures)}


def d1_state(args, work):
    """The same sweep with the local journal, one worker on PostgreSQL, and three workers."""
    n, rate, conc = (500, 300, 100) if args.quick else (2000, 300, 100)
    prof = profile(100.0, {"kind": "uniform", "min_seconds": 20.0, "max_seconds": 80.0}, 4096)
    defaults = {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5, "output_resolution": "720p"}
    manifest = os.path.join(work, "d1.yaml")
    write_manifest(manifest, prompts(n, "d1"), defaults)
    out = {"jobs": n, "rate": rate, "concurrency": conc}
    pg = Pg()
    try:
        for label, state, workers in (("journal", None, 1), ("one_worker", "one", 1), ("three_workers", "three", 3)):
            sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
            try:
                folder = os.path.join(work, f"d1-{label}")
                extra = ["--state", pg.database(state), "--lease", "10s"] if state else []
                cmds = [runner_cmd(args.bin, manifest, folder, sim.url, rate, conc, extra) for _ in range(workers)]
                r = parallel(cmds, work, f"d1-{label}")
                r = with_sim_figures(r, sim, n)
                r["rss_mb_per_worker"] = r["rss_mb"]
                if state:
                    r["db_mb"] = int(pg.sql(state, f"select pg_database_size('{state}')")) / 2**20
                out[label] = r
            finally:
                sim.stop()
    finally:
        pg.stop()
    return out


def d2_register(args, work):
    """A 100,000-job sweep on PostgreSQL: registering it, and running it for a while."""
    n = 20000 if args.quick else 100000
    prof = profile(100.0, {"kind": "uniform", "min_seconds": 20.0, "max_seconds": 80.0}, 1024)
    manifest = os.path.join(work, "d2.yaml")
    matrix = {"aspect_ratio": ["16:9", "9:16", "1:1"], "enable_sound": [False, True]}
    texts = prompts(-(-n // 6), "d2")
    write_manifest(manifest, texts, {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5}, matrix)
    jobs = len(texts) * 6
    out = {"jobs": jobs}
    pg = Pg()
    sim = Sim(args.bin, tempfile.mkdtemp(dir=work), prof)
    try:
        url = pg.database("big")
        folder = os.path.join(work, "d2-out")
        extra = ["--state", url, "--max-runtime", "15s"]
        r = timed(runner_cmd(args.bin, manifest, folder, sim.url, 4000, 1000, extra), work, "d2-run")
        created = [t["created_unix_ms"] for t in sim.tasks()["tasks"]]
        r["first_create_after_ms"] = min(created) - r["started_unix_ms"] if created else None
        r["completed"] = sim.stats()["tasks_completed"]
        out["run"] = r
        out["db_mb"] = int(pg.sql("big", "select pg_database_size('big')")) / 2**20
        out["records"] = int(pg.sql("big", "select count(*) from kb_records"))
        before = sim.stats()["tasks_created"]
        resume = timed(runner_cmd(args.bin, manifest, folder, sim.url, 4000, 1000, ["--state", url, "--max-runtime", "3s"]), work, "d2-resume")
        later = [t["created_unix_ms"] for t in sim.tasks()["tasks"][before:]]
        resume["first_create_after_ms"] = min(later) - resume["started_unix_ms"] if later else None
        out["resume"] = resume
    finally:
        sim.stop()
        pg.stop()
    return out


class S3Fs:
    """s3s-fs (the object-storage tests' server), from its cache folder; a bucket `bench`."""

    def __init__(self, work):
        import socket

        binary = os.environ.get("KLING_BATCH_S3S_FS") or os.path.expanduser("~/.cache/kling-batch/s3s-fs/bin/s3s-fs")
        if not os.path.exists(binary):
            raise RuntimeError("s3s-fs is not installed: ./test.sh builds it into ~/.cache/kling-batch")
        self.root = tempfile.mkdtemp(dir=work, prefix="s3-")
        os.makedirs(os.path.join(self.root, "bench"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", "AKIABENCH", "--secret-key", "bench-secret", self.root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("s3s-fs did not start")

    def env(self):
        return dict(
            ENV,
            AWS_ACCESS_KEY_ID="AKIABENCH",
            AWS_SECRET_ACCESS_KEY="bench-secret",
            AWS_REGION="us-east-1",
            AWS_ENDPOINT=f"http://127.0.0.1:{self.port}",
            AWS_ALLOW_HTTP="true",
        )

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def n1_needs(args, work):
    """`needs:` graphs (issue 24): cycles refused and chains planned, in time linear in the entries."""
    head = ["defaults: { model: kling-v2.5-turbo-text-to-video-pro, duration_seconds: 5 }", "prompts:"]
    def cycle(n):
        return head + [f'  - {{ id: c{i}, prompt: "scene {i}", endpoint: extend_video, needs: c{(i + 1) % n} }}' for i in range(n)]
    def chains(n):
        lines = list(head)
        for i in range(n // 2):
            lines.append(f'  - {{ id: b{i}, prompt: "scene {i}" }}')
            lines.append(f'  - {{ id: s{i}, prompt: "then {i}", endpoint: extend_video, mode: pro, needs: b{i} }}')
        return lines
    def plain(n):
        return head + [f'  - {{ id: b{i}, prompt: "scene {i}" }}' for i in range(n)]
    big = 20000 if args.quick else 100000
    out = {"big": big}
    for name, lines, code in [("cycle_6000", cycle(6000), 4), ("cycle_big", cycle(big), 4), ("chains_big", chains(big), 0), ("plain_big", plain(big), 0)]:
        path = os.path.join(work, f"n1-{name}.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = timed([args.bin, "validate", path], work, f"n1-{name}")
        assert r["exit"] == code, (name, r)
        out[name] = r
    return out


def b1_bucket(args, work):
    """A 1 GiB video into object storage (s3s-fs on the same disk), against the same video to the
    local folder, and a small video to the bucket for the memory baseline."""
    size = (256 if args.quick else 1024) * 2**20
    defaults = {"endpoint": "text_to_video", "model": "kling-3.0", "duration_seconds": 5}
    out = {"bytes": size}
    s3 = S3Fs(work)
    try:
        for label, video_bytes, to_bucket in (("small_bucket", 4096, True), ("large_local", size, False), ("large_bucket", size, True)):
            manifest = os.path.join(work, f"b1-{label}.yaml")
            write_manifest(manifest, ["a single long take of a lighthouse"], defaults)
            sim = Sim(args.bin, tempfile.mkdtemp(dir=work), profile(1000.0, {"kind": "realistic"}, video_bytes))
            try:
                folder = os.path.join(work, f"b1-{label}-out")
                extra = ["--max-video-bytes", str(2 * size)]
                if to_bucket:
                    cmd = runner_cmd(args.bin, manifest, f"s3://bench/{label}", sim.url, 50, 4, extra + ["--state", folder])
                else:
                    cmd = runner_cmd(args.bin, manifest, folder, sim.url, 50, 4, extra)
                r = timed(cmd, work, f"b1-{label}", env=s3.env())
                out[label] = r
            finally:
                sim.stop()
    finally:
        s3.stop()
    out["rss_growth_mb"] = out["large_bucket"]["rss_mb"] - out["small_bucket"]["rss_mb"]
    out["bucket_mb_s"] = size / out["large_bucket"]["wall"] / 2**20
    out["local_mb_s"] = size / out["large_local"]["wall"] / 2**20
    return out


SCENARIOS = {"S1": s1_throughput, "S2": s2_polling, "S3": s3_scale, "S4": s4_download, "U1": u1_uploads, "D1": d1_state, "D2": d2_register, "B1": b1_bucket, "N1": n1_needs} | {
    p[0]: polling_scenario(*p) for p in POLLING
}


# --- the table ----------------------------------------------------------------------------------


def fmt(x, digits=2):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


def table(results):
    date = results["date"]
    lines = [
        f"Run {date} on {results['machine']} (`{results['command']}`).",
        "",
        "| scenario | figure | target | kling-batch | SDK baseline | SDK ÷ kling-batch |",
        "|---|---|---|---|---|---|",
    ]
    s1 = results.get("S1")
    if s1:
        k, s = s1["kling_batch"], s1.get("sdk", {})
        head = f"1. throughput ({s1['jobs']:,} jobs, rate {s1['rate']}, concurrency {s1['concurrency']})"
        rows = [
            ("wall time, s", f"≤ {s1['bound_s'] * 1.05:.1f} (bound {s1['bound_s']:.1f} +5 %)", k["wall"], s.get("wall")),
            ("wall ÷ bound", "≤ 1.05 (bound ÷ wall ≥ 0.95)", k["wall_over_bound"], s.get("wall_over_bound")),
            ("API requests", f"≥ {2 * s1['jobs']:,}", k["api_requests"], s.get("api_requests")),
            ("polls per job", "", k["polls_per_job"], s.get("polls_per_job")),
            ("CPU s (user+sys)", "", k["user"] + k["sys"], (s.get("user", 0) + s.get("sys", 0)) or None),
            ("CPU per job, µs (5.)", "< 100", k["cpu_us_per_job"], s.get("cpu_us_per_job")),
            ("peak RSS, MB", "", k["rss_mb"], s.get("rss_mb")),
            ("jobs completed", f"{s1['jobs']:,}", k["completed_tasks"], (s.get("report") or {}).get("completed")),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | {fmt(r[3])} | {ratio(r[3], r[2])} |" for i, r in enumerate(rows)]
    s2 = results.get("S2")
    if s2:
        k, s = s2["kling_batch"], s2.get("sdk", {})
        head = f"2. polling economy ({s2['jobs']:,} jobs, 30–120 s ÷ 100, concurrency {s2['concurrency']})"
        rows = [
            ("polls per job", "≤ 3", k["polls_per_job"], s.get("polls_per_job")),
            ("median notice delay ÷ generation", "< 0.10", k["median_notice_delay_share"], s.get("median_notice_delay_share")),
            ("p90 notice delay ÷ generation", "≤ 0.30", k["p90_notice_delay_share"], s.get("p90_notice_delay_share")),
            ("median notice delay, ms (scaled)", "", k["median_notice_delay_ms"], s.get("median_notice_delay_ms")),
            ("wall time, s", "", k["wall"], s.get("wall")),
            ("API requests", "", k["api_requests"], s.get("api_requests")),
            ("CPU s (user+sys)", "", k["user"] + k["sys"], (s.get("user", 0) + s.get("sys", 0)) or None),
            ("peak RSS, MB", "", k["rss_mb"], s.get("rss_mb")),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2], 3 if 'share' in r[0] or '÷' in r[0] else 2)} | {fmt(r[3], 3 if '÷' in r[0] else 2)} | {ratio(r[3], r[2])} |" for i, r in enumerate(rows)]
    for name, *_ in POLLING:
        p = results.get(name)
        if not p:
            continue
        k, s = p["kling_batch"], p.get("sdk", {})
        head = f"{name}. {p['label']} ({p['jobs']:,} jobs, {p['concurrency']} at once, rate {p['rate']})"
        rows = [
            ("polls per job", "≤ 3", k["polls_per_job"], s.get("polls_per_job"), 2),
            ("median notice delay ÷ generation", "≤ 0.10", k["median_notice_delay_share"], s.get("median_notice_delay_share"), 3),
            ("p90 notice delay ÷ generation", "≤ 0.30", k["p90_notice_delay_share"], s.get("p90_notice_delay_share"), 3),
            ("wall time, s", "≤ SDK's", k["wall"], s.get("wall"), 2),
            ("rate bound ÷ wall", "≥ 0.95 where the rate binds", p["bound_s"] / k["wall"], p["bound_s"] / s["wall"] if s.get("wall") else None, 2),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2], r[4])} | {fmt(r[3], r[4])} | {ratio(r[3], r[2])} |" for i, r in enumerate(rows)]
    u1 = results.get("U1")
    if u1:
        head = f"U1. local files ({u1['images']:,} images of 100 KB; one {u1['video_bytes'] // 2**20:,} MiB video)"
        rows = [
            ("images: wall time, s (upload, create, poll, download)", "", u1["images"]["wall"]),
            ("images: files uploaded", f"{u1['images']:,}", u1["images"]["uploads"]),
            ("images: uploads per second", "", u1["images_per_second"]),
            ("images: peak RSS, MB", "", u1["images"]["rss_mb"]),
            ("video: wall time, s", "", u1["video"]["wall"]),
            ("video: MiB/s through the whole run", "", u1["video_mib_per_second"]),
            ("video: peak RSS, MB", "≤ 20 above the images run's", u1["video"]["rss_mb"]),
            ("requests to upload URLs carrying the key", "0", u1["images"]["upload_requests_with_authorization"] + u1["video"]["upload_requests_with_authorization"]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | | |" for i, r in enumerate(rows)]
    s3 = results.get("S3")
    if s3:
        head = f"3. scale ({s3['jobs']:,} jobs)"
        rows = [
            ("`plan` wall time, s", "< 2", s3["plan"]["wall"]),
            ("`plan` peak RSS, MB", "", s3["plan"]["rss_mb"]),
            ("`plan --json` wall time, s", "", s3.get("plan_json", {}).get("wall")),
            ("`validate` wall time, s", "", s3["validate"]["wall"]),
            ("peak RSS during the run, MB", "< 150", s3["run"]["rss_mb"]),
            ("resume: start → first create, s", "< 1", (s3["resume"]["first_create_after_ms"] or 0) / 1000),
            ("journal at resume, MB", "", s3["journal_records_mb"]),
            ("peak RSS of the resume, MB", "< 150", s3["resume"]["rss_mb"]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | | |" for i, r in enumerate(rows)]
    d1 = results.get("D1")
    if d1:
        head = f"D1. shared state ({d1['jobs']:,} jobs, rate {d1['rate']}, concurrency {d1['concurrency']}): journal / 1 worker / 3 workers"
        trio = [d1.get(k, {}) for k in ("journal", "one_worker", "three_workers")]
        rows = [
            ("wall time, s", "", [t.get("wall") for t in trio]),
            ("CPU per job, µs (all workers)", "", [t.get("cpu_us_per_job") for t in trio]),
            ("median notice delay, ms (scaled)", "", [t.get("median_notice_delay_ms") for t in trio]),
            ("polls per job", "", [t.get("polls_per_job") for t in trio]),
            ("creates (one per job)", f"{d1['jobs']:,}", [t.get("creates") for t in trio]),
            ("peak RSS per worker, MB", "", [t.get("rss_mb_per_worker") for t in trio]),
            ("database size, MB", "", [t.get("db_mb") for t in trio]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {' / '.join(fmt(x) for x in r[2])} | | |" for i, r in enumerate(rows)]
    d2 = results.get("D2")
    if d2:
        head = f"D2. a {d2['jobs']:,}-job sweep on PostgreSQL"
        rows = [
            ("start (plan, register) → first create, s", "", (d2["run"]["first_create_after_ms"] or 0) / 1000),
            ("jobs completed in 15 s", "", d2["run"]["completed"]),
            ("worker peak RSS, MB", "< 150", d2["run"]["rss_mb"]),
            ("database size after 15 s, MB", "", d2["db_mb"]),
            ("records after 15 s", "", d2["records"]),
            ("resume: start → first create, s", "< 1", (d2["resume"]["first_create_after_ms"] or 0) / 1000),
            ("resume peak RSS, MB", "< 150", d2["resume"]["rss_mb"]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | | |" for i, r in enumerate(rows)]
    b1 = results.get("B1")
    if b1:
        head = f"B1. a {b1['bytes'] // 2**20:,} MiB video to object storage (s3s-fs, same disk)"
        rows = [
            ("whole run to the bucket, s", "", b1["large_bucket"]["wall"]),
            ("… MiB/s through the whole run", "", b1["bucket_mb_s"]),
            ("the same to the local folder, s", "", b1["large_local"]["wall"]),
            ("… MiB/s", "", b1["local_mb_s"]),
            ("peak RSS, large to the bucket, MB", "", b1["large_bucket"]["rss_mb"]),
            ("RSS growth over a 4 KB video to the bucket, MB", "≤ 20 + parts in flight", b1["rss_growth_mb"]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | | |" for i, r in enumerate(rows)]
    n1 = results.get("N1")
    if n1:
        head = "N1. `needs:` graphs, `validate` (reads the YAML, builds the graph, reports)"
        rows = [
            ("a 6,000-entry cycle refused, s", "< 1", n1["cycle_6000"]["wall"]),
            (f"a {n1['big']:,}-entry cycle refused, s", "< 1", n1["cycle_big"]["wall"]),
            (f"{n1['big']:,} entries in two-entry chains planned, s", "< 1", n1["chains_big"]["wall"]),
            (f"… the same entries without needs, s (reading alone)", "", n1["plain_big"]["wall"]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | | |" for i, r in enumerate(rows)]
    s4 = results.get("S4")
    if s4:
        head = f"4. download ({s4['bytes'] // 2**20:,} MiB video)"
        rows = [
            ("RSS growth over a 4 KB video, MB", "< 20", s4["rss_growth_mb"]),
            ("throughput to the last byte written, MiB/s", "", s4["kling_batch_mb_s"]),
            ("… until fsynced and renamed into place, MiB/s", "", s4.get("durable_mb_s")),
            ("curl on the same URL, MiB/s", "", s4["curl_mb_s"]),
            ("throughput ÷ curl", "≥ 0.80", s4["throughput_vs_curl"]),
        ]
        lines += [f"| {head if i == 0 else ''} | {r[0]} | {r[1]} | {fmt(r[2])} | | |" for i, r in enumerate(rows)]
    return "\n".join(lines) + "\n"


def spread(results, names):
    """Each figure of the repeated scenarios, run by run, with the targets of issue 29."""
    lines = ["| scenario | figure | target | " + " | ".join(f"run {i + 1}" for i in range(len(results[names[0]]["runs"]))) + " | held in every run |", "|---|---|---|" + "---|" * (len(results[names[0]]["runs"]) + 1)]
    for name in names:
        runs = results[name].get("runs")
        if not runs:
            continue
        if name == "D1":
            rows = [
                ("median notice delay, ms (scaled): journal", None, lambda r: r["journal"]["median_notice_delay_ms"]),
                ("… one worker", None, lambda r: r["one_worker"]["median_notice_delay_ms"]),
                ("… three workers", None, lambda r: r["three_workers"]["median_notice_delay_ms"]),
                ("three ÷ one", (lambda x: x <= 2.0, "≤ 2"), lambda r: r["three_workers"]["median_notice_delay_ms"] / r["one_worker"]["median_notice_delay_ms"]),
                ("wall, s: journal / one / three", None, lambda r: f"{r['journal']['wall']:.2f} / {r['one_worker']['wall']:.2f} / {r['three_workers']['wall']:.2f}"),
                ("peak RSS per worker, MB: journal / one / three", None, lambda r: f"{r['journal']['rss_mb']:.1f} / {r['one_worker']['rss_mb']:.1f} / {r['three_workers']['rss_mb']:.1f}"),
                ("polls per job: journal / one / three", None, lambda r: f"{r['journal']['polls_per_job']:.2f} / {r['one_worker']['polls_per_job']:.2f} / {r['three_workers']['polls_per_job']:.2f}"),
            ]
        else:
            rows = [
                ("polls per job", (lambda x: x <= 3.0, "≤ 3"), lambda r: r["kling_batch"]["polls_per_job"]),
                ("median notice delay ÷ generation", (lambda x: x <= 0.10, "≤ 0.10"), lambda r: r["kling_batch"]["median_notice_delay_share"]),
                ("p90 notice delay ÷ generation", (lambda x: x <= 0.30, "≤ 0.30"), lambda r: r["kling_batch"]["p90_notice_delay_share"]),
                ("wall time, s", None, lambda r: r["kling_batch"]["wall"]),
                ("SDK script's wall time, s", None, lambda r: (r.get("sdk") or {}).get("wall")),
                ("wall ÷ SDK's", (lambda x: x <= 1.0, "≤ 1"), lambda r: r["kling_batch"]["wall"] / r["sdk"]["wall"] if r.get("sdk") else None),
                ("last task finished, s from start: kling-batch / SDK", None, lambda r: f"{r['kling_batch']['last_finish_s']:.2f} / {r['sdk']['last_finish_s']:.2f}"),
                ("wall after it, s: kling-batch / SDK", None, lambda r: f"{r['kling_batch']['wall'] - r['kling_batch']['last_finish_s']:.2f} / {r['sdk']['wall'] - r['sdk']['last_finish_s']:.2f}"),
                ("rate bound ÷ wall", None, lambda r: r["bound_s"] / r["kling_batch"]["wall"]),
            ]
        for i, (label, target, get) in enumerate(rows):
            values = []
            for r in runs:
                try:
                    values.append(get(r))
                except (KeyError, TypeError, ZeroDivisionError):
                    values.append(None)
            held = "" if target is None or any(v is None for v in values) else ("yes" if all(target[0](v) for v in values) else "**no**")
            cells = " | ".join(v if isinstance(v, str) else fmt(v, 3 if isinstance(v, float) and v < 10 else 2) for v in values)
            lines.append(f"| {name if i == 0 else ''} | {label} | {target[1] if target else ''} | {cells} | {held} |")
    return "\n".join(lines) + "\n"


def machine():
    cores = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1)) / 2**20
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.+)", f.read()).group(1).strip()
    except (OSError, AttributeError):
        pass
    return f"{cores} cores ({model}), {mem:.0f} GiB, {platform.system()} {platform.release()}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("python")
    parser.add_argument("--quick", action="store_true", help="smaller scenarios, for trying the harness")
    parser.add_argument("--no-baseline", action="store_true", help="skip the SDK baseline runs")
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario this many times in a row and report the spread")
    args = parser.parse_args()
    work = os.path.join(ROOT, "target", "bench", "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    path = os.path.join(ROOT, "target", "bench", "results.json")
    results = {}
    if os.path.exists(path):
        # --only reruns some scenarios: keep the others' figures from the last run of the same size.
        with open(path) as f:
            previous = json.load(f)
        if previous.get("quick") == args.quick:
            results = {k: v for k, v in previous.items() if k in SCENARIOS}
    results |= {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "command": "bench/run.sh" + (" --quick" if args.quick else ""),
        "quick": args.quick,
    }
    for name in args.only.split(","):
        runs = []
        for i in range(args.repeat):
            log(f"{name} ({i + 1}/{args.repeat}) …")
            started = time.monotonic()
            place = os.path.join(work, f"{name}-{i}") if args.repeat > 1 else work
            os.makedirs(place, exist_ok=True)
            runs.append(SCENARIOS[name](args, place))
            log(f"{name} done in {time.monotonic() - started:.1f} s")
        results[name] = runs[0] | ({"runs": runs} if args.repeat > 1 else {})
        # Kept after every scenario: a later one failing loses none of the figures before it.
        with open(path, "w") as f:
            json.dump(results, f, indent=2, default=str)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=str)
    text = table(results)
    print(text)
    if args.repeat > 1:
        print(spread(results, args.only.split(",")))
    if not args.no_write and not args.quick:
        bench_md = os.path.join(ROOT, "BENCHMARKS.md")
        with open(bench_md) as f:
            doc = f.read()
        begin, end = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
        if begin in doc and end in doc:
            doc = doc[: doc.index(begin) + len(begin)] + "\n" + text + doc[doc.index(end) :]
            with open(bench_md, "w") as f:
                f.write(doc)
            log("BENCHMARKS.md updated")
    log(f"all figures: {path}")


if __name__ == "__main__":
    main()
