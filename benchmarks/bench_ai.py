"""Local AI backend on the demo corpus: images per second and the cache hit rate.

Beside it, in the same run: the loop a user would write without the pipeline's cache, which
analyses every object (duplicates included) and analyses them all again on the next run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from media_pipeline.ai.runner import ANALYSABLE_TYPES, analyze_batch
from media_pipeline.ai.service import MediaAIService
from media_pipeline.catalog import Catalog, open_catalog
from media_pipeline.corpus import generate_corpus
from media_pipeline.demo import seed_bucket
from media_pipeline.settings import Settings
from media_pipeline.stages import (
    commit_inventory,
    fingerprint_pending,
    take_inventory,
)
from media_pipeline.storage import ensure_bucket, make_client

DATA = Path(__file__).parent / ".data" / "ai"


def main() -> None:
    from benchmarks.bench_fingerprint import start_server

    proc, url = start_server()
    try:
        shutil.rmtree(DATA, ignore_errors=True)
        settings = Settings(endpoint_url=url, access_key_id="bench", secret_access_key="bench",
                            bucket="bench", home=DATA / "home")
        client = make_client(settings)
        ensure_bucket(client, settings.bucket)
        seed_bucket(client, settings.bucket, generate_corpus())
        take_inventory(settings, client)
        commit_inventory(settings)
        fingerprint_pending(settings, client)
        with Catalog.open(settings.catalog_location) as c:
            objects = c.con.execute(
                "SELECT bucket, key, content_type FROM media_files WHERE status = 'active' "
                "AND list_contains(?, content_type) ORDER BY key", [list(ANALYSABLE_TYPES)],
            ).fetchall()
        service = MediaAIService(settings)
        started = time.perf_counter()
        status = service.backend.status()
        load_s = time.perf_counter() - started
        print(f"== local AI backend on the demo corpus: {len(objects)} analysable objects; "
              f"engines {', '.join(status['available'])} loaded in {load_s:.1f} s")

        started = time.perf_counter()
        for bucket, key, content_type in objects:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            service.backend.analyze(data, filename=key, content_type=content_type)
        naive_s = time.perf_counter() - started
        print(f"naive loop (every object, no cache): {len(objects) / naive_s:5.2f} objects/s, "
              f"{naive_s:.1f} s; the same again on every run")

        first = analyze_batch(settings, client, service, lambda: open_catalog(settings),
                              batch_size=50)
        hits = first.files_updated - first.analysed
        print(f"pipeline, first run: {first.analysed} contents analysed in {first.seconds:.1f} s "
              f"= {first.analysed / first.seconds:5.2f} images/s; {first.files_updated} files "
              f"updated, cache hit rate {hits / max(first.files_updated, 1):.1%} (exact "
              f"duplicates); {naive_s / first.seconds:.2f}× the naive loop's speed")
        second = analyze_batch(settings, client, service, lambda: open_catalog(settings),
                               batch_size=50)
        print(f"pipeline, second run: {second.analysed} analysed in {second.seconds:.2f} s "
              f"(cache hit rate 100%: nothing changed)")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
