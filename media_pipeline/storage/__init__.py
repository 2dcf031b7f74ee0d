"""S3 access: clients, listing, streaming reads."""

from media_pipeline.storage.s3 import (
    ObjectGone,
    RetryCounter,
    S3Object,
    ensure_bucket,
    list_objects,
    make_client,
)

__all__ = ["ObjectGone", "RetryCounter", "S3Object", "ensure_bucket", "list_objects", "make_client"]
