"""The one resource the assets use: S3 (dagster-aws's S3Resource, tuned for concurrent reads)
and the library settings of a run.

Nothing here reads the environment when the definitions load: a field left unset means "from
the environment", read by :meth:`MediaPipelineResource.settings` when a run uses the resource
(secrets are never resource config, so the UI never shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from media_pipeline.settings import Settings
from media_pipeline.storage import make_client

# Writers of the catalog run one at a time (dagster.yaml gives the pool one slot).
CATALOG_POOL = "catalog"
RESOURCE_KEY = "media"


class MediaS3Resource(S3Resource):
    """dagster-aws's S3Resource plus the bucket and where its inventory reports land.

    ``get_client`` builds the client with SigV4, adaptive retries and a connection pool large
    enough for the fingerprint workers, which the stock resource does not set. Fields left
    unset come from the environment (``Settings.from_env``) when a run reads them.
    """

    bucket: str | None = None
    inventory_location: str | None = None

    def apply_to(self, settings: Settings) -> Settings:
        """``settings`` with the fields this resource sets."""
        given = {
            "bucket": self.bucket,
            "region": self.region_name,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.aws_access_key_id,
            "secret_access_key": self.aws_secret_access_key,
            "session_token": self.aws_session_token,
            "profile_name": self.profile_name,
            "inventory_location": self.inventory_location,
        }
        return Settings(**{**settings.__dict__,
                           **{k: v for k, v in given.items() if v is not None}})

    def get_client(self) -> Any:
        return make_client(self.apply_to(Settings.from_env()))


class MediaPipelineResource(dg.ConfigurableResource):
    """S3 and the catalog's home (``MEDIA_PIPELINE_HOME``); gives the library settings of a run:
    the environment, then the values set here."""

    s3: MediaS3Resource
    home: str | None = None

    def settings(self) -> Settings:
        base = Settings.from_env()
        if self.home is not None:
            base = Settings(**{**base.__dict__, "home": Path(self.home)})
        return self.s3.apply_to(base)

    def s3_client(self) -> Any:
        return self.s3.get_client()


def default_resources() -> dict[str, Any]:
    """The resources `dagster dev` runs with: everything from the environment at run time."""
    return {RESOURCE_KEY: MediaPipelineResource(s3=MediaS3Resource())}
