"""Fingerprinting end to end (listing, reading, hashing, committing) on Celery workers, beside
the loop a user would write and beside rclone, on the embedded S3 and behind added latency.

``--objects`` (10,000) objects of ``--size`` (100 KB) random, distinct bytes are put once in a
bucket of the embedded S3 server (moto_server, in its own process). Each endpoint is that server
directly and, for every ``--latencies`` value above 0 (20 and 40 ms: what S3's first byte
costs), a small proxy in front of it that waits that long before forwarding each request
(``benchmarks/latency_proxy.py``, its own process). On each endpoint, in the same run:

- naive: ``list_objects_v2`` (paginated), then ``get_object().read()`` + sha256, one at a time;
- rclone: ``rclone hashsum sha256 --download remote:bucket`` (Debian package ``rclone``,
  installed with apt-get if missing), its defaults (8 checkers);
- ours, in-process: ``media-pipeline run --select inventory_snapshot --select media_files
  --select fingerprints`` as a subprocess on a fresh catalog home (in one process the stage
  asset does the whole pass, as the nightly's `media-pipeline run` does);
- ours on ``--workers`` (1, 2) Celery workers: the same run plus the pieces ``fingerprints_0``
  ... ``fingerprints_f`` with ``MEDIA_PIPELINE_EXECUTOR=celery`` (RabbitMQ on 127.0.0.1:5672, a
  queue of its own), each worker a ``media-pipeline worker`` started before and stopped after
  the run (their start is not timed).

The objects are random bytes, application/octet-stream: ours runs with that type allowed
(``ALLOWED_FILE_TYPES``), else each object would be quarantined and cost one more request (its
ACL is read); ``--quarantine`` measures that case.

Every run must have catalogued every object (a fingerprint per object in ``media_files``) and
rclone printed a hash per object. Figures: seconds, objects/s and MB/s end to end (ours: the
whole `run` subprocess, Python and Dagster's start included), ours/rclone, the CPU seconds of
the clients (this process for the loop; the subprocesses, workers included with their start,
otherwise) and of the server and proxy, the fingerprint assets' own seconds (their ``seconds``
metadata), with the machine's load average before and after each endpoint (the
machine is shared). Target: ours ahead of rclone end to end on every endpoint.

    .venv/bin/python -m benchmarks.bench_distributed [--objects 10000] [--size 100000]
        [--latencies 0,20,40] [--workers 1,2] [--quarantine] [--json out.json]

Last measured 2026-12-07 22:03-22:21 UTC (``--objects 10000 --latencies 0,20 --workers 1,2``,
this 2-core machine otherwise idle: load 1.9-3.9 from the benchmark itself; the server, the
proxy, rclone and ours share the two cores), objects/s end to end:

    endpoint              naive  rclone  ours in-process  ours 1 worker  ours 2 workers
    moto directly           145     252    180 (0.71x)     140 (0.55x)    181 (0.72x)
    +20 ms a request         35     125    105 (0.84x)     109 (0.87x)    112 (0.89x)

Target (ahead of rclone on every endpoint): missed. Of ours in-process on moto directly, 41.1 s
of 55.7 s were the fingerprint assets themselves (rclone took 39.7 s in all); the rest is the
CLI's Python and Dagster start and the listing. The server (moto, and the proxy in front of it)
used 33-73 CPU-seconds of the same two cores in each run. +40 ms a request, 23:04-23:21 UTC
(``--objects 10000 --latencies 40 --workers 1,2``): naive 20, rclone 81, ours in-process 114
(1.40x), on 1 worker 132 (1.62x), on 2 workers 106 (1.30x): ahead there (and 92 / 116 against
rclone's 80 at 5,000 objects, 22:56-23:04).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.bench_fingerprint import start_server
from media_pipeline.settings import DEFAULT_ALLOWED_FILE_TYPES
from media_pipeline.storage.embedded import free_port, is_listening

MB = 1e6
ACCESS_KEY = "testing"
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
BASE_SELECTION = ["inventory_snapshot", "media_files", "fingerprints"]
SHARDS = [f"fingerprints_{digit:x}" for digit in range(16)]
WORKER_START_TIMEOUT = 300.0


@dataclass
class Row:
    endpoint: str
    method: str
    seconds: float
    objects: int
    bytes: int
    client_cpu: float
    server_cpu: float
    # Ours: the fingerprint assets' own seconds (their metadata), without the run's start.
    asset_seconds: float | None = None
    note: str = ""

    @property
    def objects_per_second(self) -> float:
        return self.objects / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes / MB / self.seconds if self.seconds else 0.0


@dataclass
class Endpoint:
    name: str
    url: str
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rows: list[Row] = field(default_factory=list)


# -- the server, the objects, the proxies ---------------------------------------------------------


def s3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=ACCESS_KEY, region_name="us-east-1",
                        config=Config(max_pool_connections=32,
                                      retries={"max_attempts": 3, "mode": "standard"}))


def upload(url: str, bucket: str, count: int, size: int) -> list[str]:
    client = s3_client(url)
    client.create_bucket(Bucket=bucket)
    keys = [f"ns{i % 8}/obj-{i:06d}.bin" for i in range(count)]

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    return keys


def start_proxy(upstream: str, latency_ms: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.latency_proxy", "--upstream", upstream,
         "--port", str(port), "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if is_listening(url):
            return proc, url
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the latency proxy did not start")


def ensure_rclone() -> str:
    found = shutil.which("rclone")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("bench_distributed: installing rclone with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "rclone"], check=True, env=env)
    found = shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone is not on PATH after apt-get install rclone")
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerCpu:
    """CPU seconds of the server processes (moto, and the endpoint's proxy)."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]

    def __call__(self) -> float:
        return sum(float(t.user + t.system) for t in (p.cpu_times() for p in self.processes))


# -- the three clients ----------------------------------------------------------------------------


def naive(endpoint: str, url: str, bucket: str, server_cpu: ServerCpu) -> Row:
    """What a user would write: list, then read and hash each object in turn."""
    client = s3_client(url)
    cpu0, server0 = self_cpu(), server_cpu()
    started = time.perf_counter()
    count = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            data = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            hashlib.sha256(data).hexdigest()
            count += 1
            total += len(data)
    seconds = time.perf_counter() - started
    return Row(endpoint, "naive loop", seconds, count, total, self_cpu() - cpu0,
               server_cpu() - server0)


def rclone(endpoint: str, url: str, bucket: str, keys: list[str], size: int, work: Path,
           server_cpu: ServerCpu) -> Row:
    config = work / "rclone.conf"
    config.write_text(
        "[bench]\ntype = s3\nprovider = Other\n"
        f"endpoint = {url}\naccess_key_id = {ACCESS_KEY}\nsecret_access_key = {ACCESS_KEY}\n"
        "region = us-east-1\nforce_path_style = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    cpu0, server0 = children_cpu(), server_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [ensure_rclone(), "--config", str(config), "hashsum", "sha256", "--download",
         f"bench:{bucket}"],
        capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"rclone failed ({done.returncode}): {done.stderr[-2000:]}")
    lines = [line.split(None, 1) for line in done.stdout.splitlines() if line.strip()]
    printed = {name.strip() for digest, name in lines if len(digest) == 64}
    if printed != set(keys):
        raise RuntimeError(f"rclone hashed {len(printed)} objects of {len(keys)}")
    return Row(endpoint, "rclone hashsum", seconds, len(printed), len(printed) * size,
               children_cpu() - cpu0, server_cpu() - server0)


def pipeline_env(url: str, bucket: str, home: Path, quarantine: bool = False) -> dict[str, str]:
    """Our settings for one run. The objects are random bytes (application/octet-stream), a
    type the default ALLOWED_FILE_TYPES quarantines, and each quarantined object costs one more
    request (its ACL is read: ``close_public_access``); so the type is allowed unless
    ``quarantine``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MEDIA_PIPELINE_", "DAGSTER_", "MAX_FILE_SIZE",
                                "ALLOWED_FILE_TYPES"))}
    if not quarantine:
        env["ALLOWED_FILE_TYPES"] = json.dumps(
            {**DEFAULT_ALLOWED_FILE_TYPES, "other": ["application/octet-stream"]})
    env.update({
        "AWS_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "MEDIA_PIPELINE_HOME": str(home / "catalog"),
        "MEDIA_PIPELINE_NEAR_DUPLICATE_EMBEDDINGS": "0",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    })
    return env


def celery_env(env: dict[str, str], home: Path, queue: str) -> dict[str, str]:
    return {**env,
            "MEDIA_PIPELINE_EXECUTOR": "celery",
            "MEDIA_PIPELINE_CELERY_QUEUE": queue,
            "MEDIA_PIPELINE_CELERY_BROKER": BROKER,
            "DAGSTER_HOME": str(home / "dagster")}


@contextmanager
def workers(count: int, env: dict[str, str], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` `media-pipeline worker` processes, each ready (its log says " ready.") before
    this yields; stopped (SIGTERM to each one's process group) after."""
    procs: list[subprocess.Popen[bytes]] = []
    files = []
    try:
        for n in range(1, count + 1):
            log = open(logs / f"worker-{n}.log", "wb")  # noqa: SIM115 (closed below)
            files.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "media_pipeline", "worker", "--name", f"w{n}@%h"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        for n, proc in enumerate(procs, start=1):
            path = logs / f"worker-{n}.log"
            while b" ready." not in path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {n} did not start: "
                                       f"{path.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in files:
            log.close()


def delete_queue(queue: str) -> None:
    """The run's Celery queue is durable: removed from RabbitMQ afterwards (best effort)."""
    try:
        from kombu import Connection

        with Connection(BROKER, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception as exc:  # noqa: BLE001 (cleanup only)
        print(f"  (could not delete queue {queue}: {exc})")


def run_pipeline(env: dict[str, str], selection: list[str]) -> tuple[float, dict[str, Any], str]:
    """One `media-pipeline run --json` of ``selection``: its seconds, its summary, stderr."""
    args = [sys.executable, "-m", "media_pipeline", "run", "--json"]
    for name in selection:
        args += ["--select", name]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    try:
        summary = json.loads(done.stdout) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    if done.returncode or not summary.get("success"):
        return seconds, summary, (done.stderr or done.stdout)[-3000:] or "failed"
    return seconds, summary, ""


def catalogued(env: dict[str, str]) -> int:
    """Objects of the catalog with a fingerprint."""
    done = subprocess.run(
        [sys.executable, "-m", "media_pipeline", "query",
         "SELECT count(*) AS n FROM media_files WHERE file_hash IS NOT NULL", "--format", "json"],
        capture_output=True, text=True, env=env, check=True)
    rows = json.loads(done.stdout)
    first = rows[0] if isinstance(rows, list) else rows
    return int(next(iter(first.values())) if isinstance(first, dict) else first[0])


class Ours:
    """Our pipeline's runs; the first asks for the shard assets and falls back to the three
    assets alone if the definitions have none (said in the output)."""

    def __init__(self, bucket: str, size: int, count: int, work: Path,
                 quarantine: bool = False) -> None:
        self.bucket, self.size, self.count, self.work = bucket, size, count, work
        self.quarantine = quarantine
        self.selection: list[str] | None = None
        self.note = ""

    def _run(self, env: dict[str, str], pieces: bool) -> tuple[float, dict[str, Any]]:
        if not pieces:  # one process: the stage asset does the whole pass, as `run` does
            seconds, summary, error = run_pipeline(env, BASE_SELECTION)
        elif self.selection is None:
            seconds, summary, error = run_pipeline(env, BASE_SELECTION + SHARDS)
            self.selection = BASE_SELECTION + SHARDS
            # The selection is checked before anything runs: nothing to undo.
            if error and "no asset named" in error and "fingerprints_0" in error:
                self.selection = BASE_SELECTION
                self.note = "no fingerprint shard assets (fingerprints_0..f): three assets only"
                print(f"  ({self.note})")
                seconds, summary, error = run_pipeline(env, self.selection)
        else:
            seconds, summary, error = run_pipeline(env, self.selection)
        if error:
            raise RuntimeError(f"media-pipeline run failed: {error}")
        return seconds, summary

    def measure(self, endpoint: str, url: str, server_cpu: ServerCpu, method: str,
                worker_count: int = 0) -> Row:
        home = Path(tempfile.mkdtemp(prefix="run-", dir=self.work))
        env = pipeline_env(url, self.bucket, home, self.quarantine)
        cpu0, server0 = children_cpu(), server_cpu()
        if worker_count:
            queue = f"bench-{uuid.uuid4().hex[:12]}"
            env = celery_env(env, home, queue)
            try:
                with workers(worker_count, env, home):
                    seconds, summary = self._run(env, pieces=True)
            finally:
                delete_queue(queue)
        else:
            seconds, summary = self._run(env, pieces=False)
        client_cpu, used_server = children_cpu() - cpu0, server_cpu() - server0
        materialized = summary.get("materialized", {})
        hashed = [meta for name, meta in materialized.items()
                  if name == "fingerprints" or name.startswith("fingerprints_")]
        objects = sum(int(meta.get("objects", 0)) for meta in hashed)
        asset_seconds = sum(float(meta.get("seconds", 0)) for meta in hashed)
        in_catalog = catalogued(env)
        if in_catalog != self.count:
            raise RuntimeError(f"{method}: {in_catalog} objects fingerprinted in the catalog "
                               f"of {self.count} (the run's metadata says {objects})")
        shutil.rmtree(home, ignore_errors=True)
        return Row(endpoint, method, seconds, in_catalog, in_catalog * self.size, client_cpu,
                   used_server, asset_seconds, self.note)


# -- the report ------------------------------------------------------------------------------------


def print_endpoint(endpoint: Endpoint) -> None:
    before = " ".join(f"{v:.2f}" for v in endpoint.load_before)
    after = " ".join(f"{v:.2f}" for v in endpoint.load_after)
    print(f"-- {endpoint.name} ({endpoint.url}), load average {before} -> {after}")
    print(f"   {'':24} {'seconds':>8} {'obj/s':>8} {'MB/s':>7} {'/rclone':>8} "
          f"{'client CPU-s':>12} {'server CPU-s':>12} {'hashing s':>9}")
    reference = next((r for r in endpoint.rows if r.method == "rclone hashsum"), None)
    for row in endpoint.rows:
        ratio = (f"{row.objects_per_second / reference.objects_per_second:7.2f}x"
                 if reference and reference.objects_per_second else "")
        print(f"   {row.method:24} {row.seconds:8.2f} {row.objects_per_second:8.0f} "
              f"{row.mb_per_second:7.1f} {ratio:>8} {row.client_cpu:12.1f} "
              f"{row.server_cpu:12.1f} "
              f"{'' if row.asset_seconds is None else f'{row.asset_seconds:9.2f}':>9}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100_000, help="bytes per object")
    parser.add_argument("--latencies", default="0,20,40",
                        help="ms added per request, comma separated; 0 is the server directly")
    parser.add_argument("--workers", default="1,2", help="Celery worker counts, comma separated")
    parser.add_argument("--quarantine", action="store_true",
                        help="keep the default ALLOWED_FILE_TYPES: every object (random bytes) "
                             "is quarantined, and has its ACL read (one more request each)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    latencies = [int(v) for v in args.latencies.split(",") if v.strip()]
    worker_counts = [int(v) for v in args.workers.split(",") if v.strip()]

    ensure_rclone()
    bucket = "bench-distributed"
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    server, url = start_server()
    proxies: list[subprocess.Popen[bytes]] = []
    endpoints: list[Endpoint] = []
    try:
        started = time.perf_counter()
        keys = upload(url, bucket, args.objects, args.size)
        print(f"== fingerprinting end to end: {args.objects:,} x {args.size / 1e3:.0f} KB objects "
              f"on moto_server {url} ({os.cpu_count()} cores; uploaded in "
              f"{time.perf_counter() - started:.1f} s; load average "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())})")
        ours = Ours(bucket, args.size, args.objects, work, args.quarantine)
        for latency in latencies:
            pids = [server.pid]
            if latency > 0:
                proxy, endpoint_url = start_proxy(url, latency)
                proxies.append(proxy)
                pids.append(proxy.pid)
                endpoint = Endpoint(f"+{latency} ms a request (proxy)", endpoint_url)
            else:
                endpoint = Endpoint("moto_server directly", url)
            server_cpu = ServerCpu(pids)
            endpoint.load_before = os.getloadavg()
            endpoint.rows.append(naive(endpoint.name, endpoint.url, bucket, server_cpu))
            endpoint.rows.append(rclone(endpoint.name, endpoint.url, bucket, keys, args.size,
                                        work, server_cpu))
            endpoint.rows.append(ours.measure(endpoint.name, endpoint.url, server_cpu,
                                              "ours, in-process"))
            for count in worker_counts:
                endpoint.rows.append(ours.measure(
                    endpoint.name, endpoint.url, server_cpu,
                    f"ours, {count} worker{'s' if count > 1 else ''}", count))
            endpoint.load_after = os.getloadavg()
            endpoints.append(endpoint)
            print_endpoint(endpoint)
        if ours.note:
            print(f"(ours: {ours.note})")
        if args.json:
            args.json.write_text(json.dumps({
                "objects": args.objects, "size": args.size, "selection": ours.selection,
                "quarantine": args.quarantine,
                "endpoints": [{**asdict(e), "rows": [
                    {**asdict(r), "objects_per_second": r.objects_per_second,
                     "mb_per_second": r.mb_per_second} for r in e.rows]} for e in endpoints],
            }, indent=2))
    finally:
        for proc in [*proxies, server]:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
