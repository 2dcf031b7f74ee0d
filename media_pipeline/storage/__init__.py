"""S3 access: clients, listing, streaming reads, uploads, URLs, ACLs and safe keys."""

from media_pipeline.storage.keys import (
    UnsafeKey,
    key_in_namespace,
    make_key,
    namespace_of,
    safe_filename,
    validate_key,
    validate_namespace,
)
from media_pipeline.storage.media_storage import (
    AclNotSupported,
    ExpiryTooLong,
    ObjectExists,
    ObjectNotFound,
    S3MediaStorage,
    StorageError,
    UploadResult,
)
from media_pipeline.storage.s3 import (
    ObjectGone,
    RetryCounter,
    S3Object,
    ensure_bucket,
    list_objects,
    make_client,
)

__all__ = [
    "AclNotSupported",
    "ExpiryTooLong",
    "ObjectExists",
    "ObjectGone",
    "ObjectNotFound",
    "RetryCounter",
    "S3MediaStorage",
    "S3Object",
    "StorageError",
    "UnsafeKey",
    "UploadResult",
    "ensure_bucket",
    "key_in_namespace",
    "list_objects",
    "make_client",
    "make_key",
    "namespace_of",
    "safe_filename",
    "validate_key",
    "validate_namespace",
]
