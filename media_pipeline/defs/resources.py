"""Resources: S3 (dagster-aws's S3Resource, tuned for concurrent reads) and the catalog."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from media_pipeline.settings import DEFAULT_BUCKET, Settings
from media_pipeline.storage import make_client


class MediaS3Resource(S3Resource):
    """dagster-aws's S3Resource plus the bucket and where its inventory reports land.

    ``get_client`` builds the client with SigV4, adaptive retries and a connection pool large
    enough for the fingerprint workers, which the stock resource does not set.
    """

    bucket: str = DEFAULT_BUCKET
    inventory_location: str | None = None

    def apply_to(self, settings: Settings) -> Settings:
        return Settings(**{
            **settings.__dict__,
            "bucket": self.bucket,
            "region": self.region_name or settings.region,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.aws_access_key_id,
            "secret_access_key": self.aws_secret_access_key,
            "session_token": self.aws_session_token,
            "profile_name": self.profile_name,
            "inventory_location": self.inventory_location,
        })

    def get_client(self) -> Any:
        return make_client(self.apply_to(Settings.from_env()))


class CatalogResource(dg.ConfigurableResource):
    """Where the catalog lives (``MEDIA_PIPELINE_HOME``); writers share the ``catalog`` pool."""

    home: str = ".media_pipeline"

    def settings(self, s3: MediaS3Resource) -> Settings:
        """The library settings for a run: environment, then these resources' values."""
        base = Settings.from_env()
        return s3.apply_to(Settings(**{**base.__dict__, "home": Path(self.home)}))


def resources_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Resources configured from the environment, secrets as EnvVar so the UI never shows them."""
    env = dict(os.environ) if env is None else env
    settings = Settings.from_env(env)
    s3 = MediaS3Resource(
        bucket=settings.bucket,
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        inventory_location=settings.inventory_location,
        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID") if env.get("AWS_ACCESS_KEY_ID") else None,
        aws_secret_access_key=(
            dg.EnvVar("AWS_SECRET_ACCESS_KEY") if env.get("AWS_SECRET_ACCESS_KEY") else None
        ),
        aws_session_token=(
            dg.EnvVar("AWS_SESSION_TOKEN") if env.get("AWS_SESSION_TOKEN") else None
        ),
        profile_name=settings.profile_name,
    )
    return {"s3": s3, "catalog": CatalogResource(home=str(settings.home))}
