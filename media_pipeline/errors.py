"""Every error media-pipeline raises on purpose, under one root.

Our exception hierarchy:

* MediaPipelineError
  x NotFound                      (also a LookupError)
    + UnknownMedia                a media id, namespace, collection, tag or member
    + ObjectNotFound              no object under that key (also a StorageError)
  x PermissionDenied              (also a PermissionError) the user lacks the role; nothing changed
  x Refused                       the request is understood, the state forbids it; nothing changed
    + LifecycleError              (also a ValueError) e.g. restoring a purged file
    + MediaUnavailable            (also a ValueError) quarantined, purged, missing, not validated
    + QueryFailed                 (also a RuntimeError) an analyst query failed or hit a limit
    + Conflict                    (also a ValueError) a name taken, the last admin, an item there
  x InvalidInput                  (also a ValueError) an argument that cannot be used
    + UnsafeKey, UnsafeUrl, ExpiryTooLong, MalformedMessage
    + InvalidFile                 content that cannot be used
      - ValidationFailed          an upload refused for its content
      - UnreadableInput, UnreadableImageError   bytes no decoder accepts
      - InventoryError            an inventory report or snapshot that cannot be trusted
  x ConfigurationError            (also a ValueError) a setting or configuration file
    + SettingsError               an environment variable; the message names it
    + SourceConfigError           the content sources file; one line per problem
    + SourcesUnavailable          (also a RuntimeError) the sources file cannot be loaded
  x StorageError                  (also a RuntimeError) an S3 operation failed
    + ObjectExists, ObjectNotFound, AclNotSupported, ObjectGone
  x CatalogError                  (also a RuntimeError) the catalog cannot do what was asked
    + CatalogConflict
  x ServiceError                  (also a RuntimeError) a service answered, but not usefully
    + AIServiceError              the AI service's answer cannot be used
    + SourceError                 a content source could not be read to the end
    + DemoError                   a step of the demo failed
    + ServiceUnavailable          not reachable or not installed now: a later try may work
      - AIServiceUnavailable, EngineUnavailable, EmbeddedServerUnavailable

The builtin bases in brackets keep ``except ValueError`` (and the like) working where callers
relied on them before the tree; new code catches the tree's classes. The modules that raised
these errors before still export them under the same names.
"""

from __future__ import annotations

__all__ = [
    "AIServiceError",
    "AIServiceUnavailable",
    "AclNotSupported",
    "CatalogError",
    "CatalogConflict",
    "ConfigurationError",
    "Conflict",
    "DemoError",
    "EmbeddedServerUnavailable",
    "EngineUnavailable",
    "ExpiryTooLong",
    "InvalidFile",
    "InvalidInput",
    "InventoryError",
    "LifecycleError",
    "MalformedMessage",
    "MediaPipelineError",
    "MediaUnavailable",
    "NotFound",
    "ObjectExists",
    "ObjectGone",
    "ObjectNotFound",
    "PermissionDenied",
    "QueryFailed",
    "Refused",
    "ServiceError",
    "ServiceUnavailable",
    "SettingsError",
    "SourceConfigError",
    "SourceError",
    "SourcesUnavailable",
    "StorageError",
    "UnknownMedia",
    "UnreadableImageError",
    "UnreadableInput",
    "UnsafeKey",
    "UnsafeUrl",
    "ValidationFailed",
]


class MediaPipelineError(Exception):
    """The root: every error the package raises on purpose. The message is one line a person
    can act on."""


# -- the nodes -----------------------------------------------------------------------------------


class NotFound(MediaPipelineError, LookupError):
    """What was asked for does not exist."""


class PermissionDenied(MediaPipelineError, PermissionError):
    """The user lacks the role an action needs; nothing was changed."""


class Refused(MediaPipelineError):
    """The request is understood, but the state of things forbids it; nothing was changed."""


class InvalidInput(MediaPipelineError, ValueError):
    """An argument or a piece of data that cannot be used; the message says why."""


class InvalidFile(InvalidInput):
    """A file's content cannot be used (an upload, an image, an inventory report)."""


class ConfigurationError(MediaPipelineError, ValueError):
    """A setting or a configuration file is wrong; the message names it."""


class StorageError(MediaPipelineError, RuntimeError):
    """An S3 operation failed; the message names the operation, bucket and key."""


class CatalogError(MediaPipelineError, RuntimeError):
    """The catalog cannot do what was asked; the message says why."""


class ServiceError(MediaPipelineError, RuntimeError):
    """A service the package relies on (AI, a content source, a pipeline run) answered, but the
    answer cannot be used."""


class ServiceUnavailable(ServiceError):
    """A service cannot be reached or is not installed now; a later try may work."""


# -- not found -----------------------------------------------------------------------------------


class UnknownMedia(NotFound):
    """No file (or collection, namespace, tag, member) with this id or name in the catalog."""

    def __init__(self, message: str, media_id: str | None = None) -> None:
        super().__init__(message)
        self.media_id = media_id or ""

    @classmethod
    def of(cls, media_id: str) -> UnknownMedia:
        """The error for a media id the catalog does not know."""
        return cls(f"no media file with id {media_id!r} in the catalog", media_id)


# -- refused -------------------------------------------------------------------------------------


class LifecycleError(Refused, ValueError):
    """The file is not in a state that allows the action (e.g. restoring a purged file)."""


class MediaUnavailable(Refused, ValueError):
    """The file exists in the catalog but cannot be served (quarantined, purged, missing...)."""


class QueryFailed(Refused, RuntimeError):
    """The query failed or hit a limit; the message is one line, naming the setting."""


class Conflict(Refused, ValueError):
    """The request clashes with what exists: a name already taken, the last admin of a
    namespace, an item already in a collection, the same file already stored."""


# -- invalid input -------------------------------------------------------------------------------


class UnsafeKey(InvalidInput):
    """A namespace, file name or key that cannot be used safely; the message says why."""


class UnsafeUrl(InvalidInput):
    """A URL that cannot be split into its parts unambiguously; the message never quotes it."""


class ExpiryTooLong(InvalidInput):
    """A URL expiry above ``MEDIA_PIPELINE_SIGNED_URL_MAX_EXPIRY`` (SigV4 allows 7 days)."""


class MalformedMessage(InvalidInput):
    """An SQS message that is not an S3 event notification we can read; says why."""


class ValidationFailed(InvalidFile):
    """The upload was refused for its content (the reason says why); nothing was stored."""

    def __init__(self, reason: str, filename: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.reason = reason
        self.filename = filename


class UnreadableInput(InvalidFile):
    """The bytes or image cannot be decoded: corrupt, truncated, encrypted, or not that format."""


class UnreadableImageError(InvalidFile):
    """The image cannot be decoded: truncated or corrupt data, an empty image, a decompression
    bomb. Raised by every local vision engine instead of the decoder's own error, so a caller
    records it against the file and carries on."""


class InventoryError(InvalidFile):
    """An inventory report (or a snapshot) cannot be used; the message names the file and why.

    Raised instead of writing a snapshot that would be wrong: a snapshot missing objects would
    make the committer mark them ``missing``, so a doubtful report must stop the run, not shrink
    the catalog.
    """


# -- configuration -------------------------------------------------------------------------------


class SettingsError(ConfigurationError):
    """A setting has a value we cannot use; the message names the variable."""


class SourceConfigError(ConfigurationError):
    """The sources file is not valid; ``errors`` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors

    def __reduce__(self) -> tuple[type[SourceConfigError], tuple[list[str]]]:
        return (SourceConfigError, (self.errors,))


class SourcesUnavailable(ConfigurationError, RuntimeError):
    """The content sources are configured but cannot be read: purge must not guess them."""


# -- storage and catalog -------------------------------------------------------------------------


class ObjectExists(StorageError):
    """The key is taken: uploads never overwrite an existing object."""


class ObjectNotFound(StorageError, NotFound):
    """No object under that key."""


class AclNotSupported(StorageError):
    """The bucket has ACLs disabled (Object Ownership "bucket owner enforced")."""


class ObjectGone(StorageError):
    """The object was listed but no longer exists when we came to read it."""


class CatalogConflict(CatalogError):
    """A catalog transaction kept conflicting with other writers' (two changes to the same
    rows' data file) after every retry; nothing of it was applied."""


# -- services ------------------------------------------------------------------------------------


class AIServiceError(ServiceError):
    """The service answered, but the answer cannot be used (4xx, malformed JSON, wrong shape), or
    the input cannot be sent (unreadable image). Retrying the same input will not help."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class SourceError(ServiceError):
    """A content source could not be read completely; the message names the source."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"content source {source!r}: {message}")
        self.source = source
        self.reason = message

    def __reduce__(self) -> tuple[type[SourceError], tuple[str, str]]:
        # Survives pickling (Dagster moves errors between processes).
        return (SourceError, (self.source, self.reason))


class DemoError(ServiceError):
    """A demo step failed; the message says which and what to do next."""


class AIServiceUnavailable(ServiceUnavailable):
    """The service cannot be used now (down, timed out, overloaded, circuit open): defer the batch.
    ``retry_after`` is a hint in seconds when one is known."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class EngineUnavailable(ServiceUnavailable):
    """An engine's package or model is not installed; the message says which extra to add."""


class EmbeddedServerUnavailable(ServiceUnavailable):
    """moto is not installed (it comes with the ``embedded`` extra), or the port is taken."""
