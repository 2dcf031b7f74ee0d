"""Fingerprinting from the embedded S3 server, beside the loop a user would write.

The server runs in its own process (moto_server), as S3 would. Figures:
- 2,000 × 100 KB objects: objects/s and MB/s, ours vs sequential ``get_object().read()`` + sha256;
- one 1 GB object: MB/s, ours vs the same loop, and our peak RSS (measured in a child process);
- a pipeline rerun with nothing changed: object bytes read (must be 0).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from media_pipeline import stages
from media_pipeline.records import PendingObject, media_id_for
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket, make_client
from media_pipeline.storage.embedded import free_port, is_listening

DATA = Path(__file__).parent / ".data" / "fingerprint"
MB = 1e6


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if is_listening(url):
            return proc, url
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def naive(client: object, bucket: str, keys: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    total = 0
    for key in keys:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
        hashlib.sha256(data).hexdigest()
        total += len(data)
    return time.perf_counter() - started, total


def ours(client: object, settings: Settings, objects: list[PendingObject]) -> tuple[float, int]:
    from media_pipeline.fingerprint import fingerprint_objects

    started = time.perf_counter()
    total = 0
    for result in fingerprint_objects(client, objects, settings):
        if result.status == "error":
            raise RuntimeError(result.error)
        total += result.bytes_read
    return time.perf_counter() - started, total


BIG_CHILD = """
import sys, time
from media_pipeline.fingerprint import fingerprint_object
from media_pipeline.records import PendingObject
from media_pipeline.settings import Settings
from media_pipeline.storage import make_client
url, bucket, key, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = Settings(endpoint_url=url, access_key_id="x", secret_access_key="x", bucket=bucket)
client = make_client(settings)
obj = PendingObject(media_id="m", bucket=bucket, key=key, size=size, etag="")
t = time.perf_counter()
r = fingerprint_object(client, obj, settings)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(time.perf_counter() - t, r.bytes_read, r.status, hwm)
"""


def main(small_count: int = 2000, small_size: int = 100_000, big_size: int = 1_000_000_000) -> None:
    proc, url = start_server()
    try:
        shutil.rmtree(DATA, ignore_errors=True)
        settings = Settings(endpoint_url=url, access_key_id="bench", secret_access_key="bench",
                            bucket="bench", home=DATA / "home")
        client = make_client(settings)
        ensure_bucket(client, settings.bucket)
        print(f"== fingerprint: {small_count:,} × {small_size / 1e3:.0f} KB and one "
              f"{big_size / 1e9:.1f} GB object from moto_server on {url} "
              f"({os.cpu_count()} cores, {settings.fingerprint_workers} workers)")
        keys = [f"ns{i % 8}/obj-{i:05d}.bin" for i in range(small_count)]
        payload = os.urandom(small_size)
        for i, key in enumerate(keys):
            client.put_object(Bucket="bench", Key=key, Body=payload[:-8] + i.to_bytes(8, "big"))
        objects = [PendingObject(media_id_for("bench", k), "bench", k, small_size, "")
                   for k in keys]

        server = psutil.Process(proc.pid)

        def server_cpu() -> float:
            times = server.cpu_times()
            return float(times.user + times.system)

        cpu0 = server_cpu()
        naive_s, naive_bytes = naive(client, "bench", keys)
        cpu1 = server_cpu()
        ours_s, ours_bytes = ours(client, settings, objects)
        cpu2 = server_cpu()
        assert naive_bytes == ours_bytes == small_count * small_size
        per_request = (cpu2 - cpu1) / small_count
        print(f"small objects  naive loop: {small_count / naive_s:7.0f} obj/s "
              f"{naive_bytes / MB / naive_s:7.1f} MB/s   (server CPU "
              f"{(cpu1 - cpu0) / small_count * 1e3:.2f} ms/GET)")
        print(f"small objects  ours:       {small_count / ours_s:7.0f} obj/s "
              f"{ours_bytes / MB / ours_s:7.1f} MB/s   ({naive_s / ours_s:.2f}× the loop; server "
              f"CPU {per_request * 1e3:.2f} ms/GET, so one moto process tops out near "
              f"{1 / per_request:.0f} GET/s)")

        big_key = "ns0/big.bin"
        block = os.urandom(8 * 1024 * 1024)
        from boto3.s3.transfer import TransferConfig

        class Repeat:
            def __init__(self, size: int) -> None:
                self.left = size

            def read(self, n: int = -1) -> bytes:
                n = self.left if n < 0 else min(n, self.left)
                self.left -= n
                out = (block * (n // len(block) + 1))[:n]
                return out

        client.upload_fileobj(Repeat(big_size), "bench", big_key,
                              Config=TransferConfig(multipart_chunksize=64 * 1024 * 1024))
        naive_s, naive_bytes = naive(client, "bench", [big_key])
        out = subprocess.run(
            [sys.executable, "-c", BIG_CHILD, url, "bench", big_key, str(big_size)],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        ours_s, ours_bytes, status, rss_kb = float(out[0]), int(out[1]), out[2], int(out[3])
        assert ours_bytes == naive_bytes == big_size, (ours_bytes, naive_bytes)
        print(f"1 GB object    naive loop: {naive_bytes / MB / naive_s:7.1f} MB/s "
              f"(holds the whole object in memory)")
        print(f"1 GB object    ours:       {ours_bytes / MB / ours_s:7.1f} MB/s "
              f"({naive_s / ours_s:.2f}× the loop), peak RSS {rss_kb / 1024:.0f} MB, "
              f"status {status} (over MAX_FILE_SIZE)")
        client.delete_object(Bucket="bench", Key=big_key)

        stages.take_inventory(settings, client)
        stages.commit_inventory(settings)
        first = stages.fingerprint_pending(settings, client)
        stages.take_inventory(settings, client)
        stages.commit_inventory(settings)
        second = stages.fingerprint_pending(settings, client)
        print(f"pipeline run 1: {first.objects:,} objects, {first.bytes_read / MB:.1f} MB read; "
              f"rerun with nothing changed: {second.objects} objects, {second.bytes_read} bytes "
              f"read")
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(benchmark process peak RSS {rss_mb:.0f} MB)")
    finally:
        proc.kill()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
