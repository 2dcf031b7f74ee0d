"""Shared pytest fixtures: a real S3-compatible server over HTTP (moto in server mode).

One server per test session; every test gets its own bucket and home directory, so tests do not
see each other's objects. Import these into conftest.py with
``from media_pipeline_tests.fixtures_s3 import *``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from media_pipeline.records import PendingObject, media_id_for
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket, make_client

__all__ = ["default_port_lock", "s3_endpoint", "s3_client", "settings", "upload"]

# Tests that start the embedded S3 server on its default port (127.0.0.1:9100) or need it free
# run one after another: each holds a lock file (also without xdist, or beside another run),
# and under xdist they are one group, so no worker sits waiting for another's lock.
_DEFAULT_PORT_USERS = pytest.mark.xdist_group("default-port")
_DEFAULT_PORT_LOCK = pytest.mark.usefixtures("default_port_lock")


def DEFAULT_PORT(test: Callable[..., None]) -> Callable[..., None]:  # noqa: N802 (a mark)
    return _DEFAULT_PORT_USERS(_DEFAULT_PORT_LOCK(test))


@pytest.fixture
def default_port_lock() -> Iterator[None]:
    """Hold the machine-wide lock of the embedded server's default port for one test."""
    with open(os.path.join(tempfile.gettempdir(), "media-pipeline-tests-port-9100.lock"),
              "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of an embedded S3 server on 127.0.0.1 and a free port, for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def settings(s3_endpoint: str, tmp_path: Path) -> Settings:
    """Settings for the embedded server with a bucket name unique to this test."""
    return Settings(
        endpoint_url=s3_endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        bucket=f"test-{uuid.uuid4().hex[:16]}",
        home=tmp_path / "home",
        fingerprint_workers=4,
        near_duplicate_embeddings=False,  # on in test_near_duplicates.py only (time)
        purge_min_age_seconds=0,  # purged moments after deletion; catalog/test_lake.py: the age
    )


@pytest.fixture
def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for ``settings``, with the bucket created."""
    client = make_client(settings)
    ensure_bucket(client, settings.bucket, settings.region)
    return client


def upload(
    client: Any, settings: Settings, key: str, data: bytes, content_type: str, **extra: Any
) -> PendingObject:
    """Put an object and describe it as the catalog would hand it to the fingerprinter."""
    response = client.put_object(
        Bucket=settings.bucket, Key=key, Body=data, ContentType=content_type, **extra
    )
    return PendingObject(
        media_id=media_id_for(settings.bucket, key),
        bucket=settings.bucket,
        key=key,
        size=len(data),
        etag=response["ETag"].strip('"'),
    )


def dagster_resources(settings: Settings, endpoint_url: str | None = None,
                      inventory_location: str | None = None) -> dict[str, Any]:
    """The Dagster resources for ``settings`` (the test server's credentials)."""
    from media_pipeline.defs.resources import MediaPipelineResource, MediaS3Resource

    return {
        "media": MediaPipelineResource(
            s3=MediaS3Resource(
                endpoint_url=endpoint_url or settings.endpoint_url, bucket=settings.bucket,
                aws_access_key_id="testing", aws_secret_access_key="testing",
                inventory_location=inventory_location,
            ),
            home=str(settings.home),
        ),
    }


def env_for(settings: Settings) -> dict[str, str]:
    """This process's environment without AWS/media-pipeline settings, plus ``settings``'s."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MEDIA_PIPELINE"))}
    env.update({
        "AWS_S3_ENDPOINT_URL": settings.endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_STORAGE_BUCKET_NAME": settings.bucket,
        "MEDIA_PIPELINE_HOME": str(settings.home),
        "MEDIA_PIPELINE_NEAR_DUPLICATE_EMBEDDINGS": "1" if settings.near_duplicate_embeddings
                                                    else "0",
    })
    return env
