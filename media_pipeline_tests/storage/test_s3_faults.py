"""S3 that pushes back: throttling answered by retries (and counted), a bad inventory that fails
the run without touching the catalog."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pytest

from media_pipeline.catalog import Catalog
from media_pipeline.corpus import generate_corpus
from media_pipeline.defs.execution import run_assets
from media_pipeline.demo import seed_bucket
from media_pipeline.inventory import write_inventory_report
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_s3 import dagster_resources
from media_pipeline_tests.http_server import Request, Response, TestServer

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class ThrottlingProxy:
    """A real HTTP proxy in front of the S3 server that answers every ``every``-th request
    with 503 SlowDown, as S3 does under load."""

    def __init__(self, upstream: str, every: int) -> None:
        self.upstream = urlsplit(upstream)
        self.every = every
        self.requests = 0
        self.throttled = 0
        self.cut_once: set[str] = set()  # request paths whose next GET body breaks off
        self.lock = threading.Lock()
        self.server: TestServer | None = None

    def _handle(self, request: Request) -> Response:
        with self.lock:
            self.requests += 1
            throttle = self.requests % self.every == 0
            self.throttled += throttle
            cut = request.method == "GET" and request.path in self.cut_once
            self.cut_once.discard(request.path)
        if throttle:
            return Response(503, SLOW_DOWN, {"Content-Type": "application/xml"})
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port,
                                          timeout=30)
        try:
            conn.request(request.method, request.path, body=request.body or None,
                         headers=dict(request.headers))
            resp = conn.getresponse()
            data = resp.read()
            # A cut body breaks off halfway: the connection drops.
            return Response(resp.status, data, resp.getheaders(),
                            cut_at=len(data) // 2 if cut else None)
        finally:
            conn.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def __enter__(self) -> ThrottlingProxy:
        self.server = TestServer(self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
def throttled(s3_endpoint: str) -> Iterator[ThrottlingProxy]:
    with ThrottlingProxy(s3_endpoint, every=10) as proxy:
        yield proxy


def resources(settings: Settings, endpoint: str, inventory: str | None = None) -> dict[str, Any]:
    return dagster_resources(settings, endpoint_url=endpoint, inventory_location=inventory)


def test_throttled_requests_are_retried_and_counted(
    settings: Settings, s3_client: Any, throttled: ThrottlingProxy
) -> None:
    files = generate_corpus()[:24]
    seed_bucket(s3_client, settings.bucket, files)
    # The stages that read S3 (the rest of the nightly only waits out the same backoffs).
    summary = run_assets(["inventory_snapshot", "media_files", "fingerprints"],
                         instance=dg.DagsterInstance.ephemeral(),
                         resources=resources(settings, throttled.url))
    assert summary.success, summary.failure
    assert throttled.throttled > 0
    fp = summary.materialized["fingerprints"]
    assert fp["objects"] == len(files) and fp["errors"] == 0
    retries = fp["s3_retries"] + summary.materialized["inventory_snapshot"]["s3_retries"]
    assert retries > 0
    with Catalog.open(settings.catalog_location, read_only=True) as c:
        row = c.con.execute(
            "SELECT count(*) FILTER (WHERE file_hash IS NOT NULL) FROM media_files").fetchone()
    assert row == (len(files),)


def test_a_bad_inventory_fails_the_run_naming_the_file_and_the_catalog_stays(
    settings: Settings, s3_client: Any, s3_endpoint: str
) -> None:
    files = generate_corpus()[:12]
    seed_bucket(s3_client, settings.bucket, files)
    good = run_assets(instance=dg.DagsterInstance.ephemeral(),
                      resources=resources(settings, s3_endpoint))
    assert good.success
    with Catalog.open(settings.catalog_location, read_only=True) as c:
        before = c.con.execute("SELECT key, status, etag FROM media_files ORDER BY key").fetchall()

    # An inventory report that lists one object fewer, whose manifest.checksum is wrong.
    s3_client.create_bucket(Bucket=settings.bucket + "-inv")
    report = write_inventory_report(
        (s3_client, settings.bucket + "-inv", "reports"), settings.bucket,
        [(f.key, len(f.data), "etag", None) for f in files[1:]],
    )
    s3_client.put_object(Bucket=settings.bucket + "-inv", Key=report.checksum_key,
                         Body=b"0" * 32)
    bad = run_assets(instance=dg.DagsterInstance.ephemeral(),
                     resources=resources(settings, s3_endpoint, report.location))
    assert not bad.success
    assert bad.failure is not None and "manifest" in bad.failure and "checksum" in bad.failure
    assert report.manifest_key.rsplit("/", 1)[0] in bad.failure
    with Catalog.open(settings.catalog_location, read_only=True) as c:
        after = c.con.execute("SELECT key, status, etag FROM media_files ORDER BY key").fetchall()
    assert after == before


def test_a_body_that_breaks_off_midway_is_read_again(
    settings: Settings, s3_client: Any, s3_endpoint: str
) -> None:
    import hashlib
    from urllib.parse import quote

    from media_pipeline.fingerprint import fingerprint_object
    from media_pipeline.records import PendingObject, media_id_for
    from media_pipeline.storage import RetryCounter, make_client

    photo = next(f for f in generate_corpus() if f.kind == "photo" and len(f.data) > 20_000)
    s3_client.put_object(Bucket=settings.bucket, Key=photo.key, Body=photo.data)
    with ThrottlingProxy(s3_endpoint, every=10**9) as proxy:
        proxy.cut_once.add(f"/{settings.bucket}/{quote(photo.key, safe='/~')}")
        client = make_client(Settings(**{**settings.__dict__, "endpoint_url": proxy.url}))
        counter = RetryCounter()
        result = fingerprint_object(
            client, PendingObject(media_id_for(settings.bucket, photo.key), settings.bucket,
                                  photo.key, len(photo.data), ""), settings, counter=counter)
    assert not proxy.cut_once, "the cut was never made: the test proves nothing"
    assert result.status == "active", result.error
    assert result.file_hash == hashlib.sha256(photo.data).hexdigest()
    assert counter.retries >= 1
