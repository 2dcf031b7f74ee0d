"""Typed settings read from the environment.

The names are the seed application's where it had one (``AWS_*``, ``AI_*``, ``MAX_FILE_SIZE``,
``ALLOWED_FILE_TYPES``) so an existing deployment's environment works unchanged. Secrets are kept
out of ``repr`` so that logging a Settings object never leaks them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from media_pipeline.catalog.lake import METADATA_SETTING, LakeLocation
from media_pipeline.errors import SettingsError  # noqa: F401
from media_pipeline.kinds import PurgeVersions

if TYPE_CHECKING:
    from media_pipeline.catalog.lake import LakeLocation

EMBEDDED_S3_HOST = "127.0.0.1"
EMBEDDED_S3_PORT = 9100
DEFAULT_BUCKET = "media"

DEFAULT_ALLOWED_FILE_TYPES: dict[str, list[str]] = {
    "image": ["image/jpeg", "image/png", "image/gif", "image/webp", "image/svg+xml"],
    "document": ["application/pdf", "text/plain"],
    "video": ["video/mp4", "video/webm", "video/quicktime"],
    "audio": ["audio/mpeg", "audio/ogg", "audio/wav", "audio/x-wav"],
}


# Any of these means boto3 can find AWS credentials, so "no AWS settings" does not hold.
AWS_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "session_token",
                           "ai_service_api_key", "celery_broker"})
EXECUTORS = ("multiprocess", "in_process", "celery", "k8s")


# The longest retention or minimum age a purge takes (100 years): "now" minus more than about
# 2,000 years is before the year 1, which Python's datetime cannot hold (the purge failed with
# an OverflowError instead of a one-line settings error).
MAX_PURGE_DAYS = 36_500


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(raw: str, name: str) -> int:
    """A byte count: ``2GB``, ``512MiB``, ``1.5 GiB`` or plain bytes."""
    text = raw.strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    unit = text[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _SIZE_UNITS or value <= 0:
        raise SettingsError(f"{name} must be a size such as 2GB, 512MiB or a number of bytes, "
                            f"got {raw!r}")
    return int(value * _SIZE_UNITS[unit])


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return default if raw is None or raw == "" else parse_size(raw, name)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute against the current working directory, once.

    Every relative path in the settings (``MEDIA_PIPELINE_HOME``, ``MEDIA_PIPELINE_SOURCES``, a
    local ``MEDIA_PIPELINE_INVENTORY``, the demo's ``--home``) means "relative to where the
    command was started"; it is resolved when the settings are made and stays absolute after,
    so nothing resolves it a second time against another folder.
    """
    return Path(os.path.abspath(Path(path).expanduser()))


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return absolute(raw) if raw else None


def _location(raw: str | None) -> str | None:
    """An inventory location: an ``s3://`` URL as given, a local folder made absolute."""
    if not raw or "://" in raw:
        return raw or None
    return str(absolute(raw))


# DuckLake's own ATTACH spellings ("postgres:dbname=... host=...", "ducklake:sqlite:path"): taken
# as a path, such a value became a new, empty SQLite catalog in a folder of that name, while the
# user meant the shared one (every process then worked on a catalog of its own).
_LAKE_ATTACH_FORM = re.compile(r"(?:ducklake:)?(?:postgres|postgresql|sqlite|duckdb|mysql|md)"
                               r":(?!//)", re.IGNORECASE)


def _catalog_metadata(raw: str | None) -> str | None:
    """The metadata setting: a ``postgresql://`` URL as given, a SQLite path made absolute;
    anything else (another scheme, DuckLake's own spelling) is refused, never taken as a path.
    The value is not echoed: a libpq keyword string may hold a password."""
    if not raw:
        return None
    if "://" in raw:
        scheme = urlsplit(raw).scheme.lower()
        if scheme not in {"postgres", "postgresql"}:
            raise SettingsError(
                f"{METADATA_SETTING} must be a SQLite file path or a postgresql:// URL, not a "
                f"{scheme or 'schemeless'}:// URL")
        return raw
    if _LAKE_ATTACH_FORM.match(raw):
        raise SettingsError(
            f"{METADATA_SETTING} is written in DuckLake's ATTACH form "
            f"({raw.split(':', 1)[0]}:...): give a PostgreSQL database as "
            "postgresql://user@host[:port]/dbname and a SQLite file as its path")
    return str(absolute(raw))


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (env.get(name) or "").split(",") if part.strip())


def _days_by_namespace(env: Mapping[str, str], name: str) -> dict[str, int]:
    raw = env.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
        for k, v in value.items()
    ):
        raise SettingsError(f'{name} must be a JSON object of namespace -> days > 0, '
                            f'e.g. {{"blog": 90}}')
    return value


def _allowed_types(env: Mapping[str, str]) -> dict[str, list[str]]:
    raw = env.get("ALLOWED_FILE_TYPES")
    if not raw:
        return {k: list(v) for k, v in DEFAULT_ALLOWED_FILE_TYPES.items()}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"ALLOWED_FILE_TYPES is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
        for k, v in value.items()
    ):
        raise SettingsError(
            'ALLOWED_FILE_TYPES must be a JSON object of kind -> list of MIME types, '
            'e.g. {"image": ["image/png"]}'
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the library reads from the environment, with the documented defaults."""

    bucket: str = DEFAULT_BUCKET
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None
    home: Path = Path(".media_pipeline")
    # Where the catalog (a DuckLake) lives: its metadata database (a SQLite path or a
    # postgresql:// URL) and its data files (a folder or s3://bucket/prefix/). None: under home.
    catalog_metadata: str | None = field(default=None, repr=False)
    catalog_data: str | None = None
    max_file_size: int = 100 * 1024 * 1024
    allowed_file_types: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ALLOWED_FILE_TYPES.items()}
    )
    max_image_pixels: int = 50_000_000
    # Animations with more frames are quarantined (frames are counted, never all decoded).
    max_frames: int = 1000
    # The memory one image decode may take (width x height x bytes per pixel of its mode).
    max_decode_bytes: int = 256 * 1024 * 1024
    # PDFs with JavaScript, launch actions or XFA forms are quarantined unless this is true.
    allow_pdf_scripts: bool = False
    # Where the bucket's S3 Inventory reports land: s3://bucket/prefix/ or a local folder.
    inventory_location: str | None = None
    near_duplicate_distance: int = 6
    # Image embeddings for near-duplicates (crops, rotations, watermarks); needs ai-vision.
    near_duplicate_embeddings: bool = True
    fingerprint_workers: int = 16
    retention_days: int = 30
    purge_batch_size: int = 100
    ai_service_url: str | None = None
    ai_service_api_key: str | None = field(default=None, repr=False)
    ai_service_model: str = "gpt-4o-mini"
    ai_confidence_threshold: float = 0.7
    ai_cache_timeout: int = 3600
    ai_detector_thresholds: str | None = None  # JSON: detector → threshold
    # --- references and lifecycle ---
    # The YAML file that lists content sources (see references/sources.py).
    content_sources: Path | None = None
    # Where files are served from, besides the bucket's own S3 URLs: the public base URL
    # (django-storages' AWS_S3_CUSTOM_DOMAIN, used to build public URLs) and other CDN bases
    # that content may use. References in any of these forms are recognised.
    custom_domain: str | None = None
    cdn_base_urls: tuple[str, ...] = ()
    # How content embeds a media id, e.g. [media id="…"]; group "id" is the media id.
    shortcode_pattern: str = r"\[media(?:\s+id)?[=:\s]\s*\"?(?P<id>[0-9a-fA-F-]{36})\"?\s*\]"
    # A purge stops (and deletes nothing more) past either cap.
    purge_max_count: int = 10_000
    purge_max_share: float = 0.05
    # The share cap applies only when more files than this would go: a small library (1 file
    # of 15) can be cleaned without changing settings; the count cap always applies.
    purge_share_floor: int = 20
    # Seconds a deleted file waits before any purge may take it (catalog/lifecycle.py
    # PURGE_MIN_AGE); 0 only where nothing else writes to the catalog (the demo, tests).
    purge_min_age_seconds: int = 60
    # Versioned buckets: "marker" adds a delete marker (recoverable, S3 lifecycle expires the
    # old versions); "all" deletes every version (permanent).
    purge_versions: str = "marker"
    # A scan that finds more than this share fewer documents, references or bytes than the
    # source's baseline (or nothing at all) is suspect: not applied, purges blocked. Only
    # tightens (at most the default 0.10); a source's max_drop in the sources file loosens.
    scan_max_drop: float = 0.10
    # Days unreferenced after which a namespace's files are soft-deleted by `system`; absent = off.
    auto_delete_days: dict[str, int] = field(default_factory=dict)
    # --- application API ---
    # Users who are admin in every namespace (operators); everyone else needs a membership.
    admins: frozenset[str] = frozenset()
    signed_url_max_expiry: int = 7 * 24 * 3600  # SigV4's own limit
    multipart_threshold: int = 16 * 1024 * 1024
    # --- new-object sensor ---
    # An SQS queue receiving the bucket's S3 event notifications; without one the sensor lists
    # the bucket.
    sqs_queue_url: str | None = None
    # --- analysts' SQL (`media-pipeline query`) ---
    query_timeout: float = 60.0
    query_memory: int = 2 * 1024**3
    query_threads: int = 2
    # Catalog snapshots older than this are expired by catalog_maintenance, except those a
    # purge decided on, kept this long after the purge (why-purged answers from them).
    catalog_snapshot_retention_days: int = 30
    purge_snapshot_retention_days: int = 90
    # --- running the pipeline ---
    # How Dagster runs a job's steps: "multiprocess" (a process per step, Dagster's default),
    # "in_process", "celery" (steps are tasks on Celery workers, on any machine that has these
    # settings; the `distributed` extra) or "k8s" (a Kubernetes Job per step; the `kubernetes`
    # extra). The broker URL may hold a password.
    executor: str = "multiprocess"
    celery_broker: str | None = field(default=None, repr=False)
    celery_backend: str = "rpc://"
    # The broker queue this deployment's steps go to; None: one named after the settings a
    # step depends on (``definitions.celery_queue_name``).
    celery_queue: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        endpoint = env.get("AWS_S3_ENDPOINT_URL") or None
        access_key = env.get("AWS_ACCESS_KEY_ID") or None
        mode = (env.get("MEDIA_PIPELINE_S3") or "auto").lower()
        if mode not in {"auto", "aws", "embedded"}:
            raise SettingsError(f"MEDIA_PIPELINE_S3 must be auto, aws or embedded, got {mode!r}")
        has_aws_credentials = any(env.get(name) for name in AWS_CREDENTIAL_VARIABLES)
        if mode == "embedded" or (mode == "auto" and endpoint is None and not has_aws_credentials):
            # No AWS settings at all: the embedded S3 server on this machine. With an instance
            # role and nothing in the environment, say MEDIA_PIPELINE_S3=aws.
            endpoint = endpoint or f"http://{EMBEDDED_S3_HOST}:{EMBEDDED_S3_PORT}"
        settings = cls(
            bucket=env.get("AWS_STORAGE_BUCKET_NAME") or DEFAULT_BUCKET,
            region=env.get("AWS_S3_REGION_NAME") or "us-east-1",
            endpoint_url=endpoint,
            access_key_id=access_key,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            profile_name=env.get("AWS_PROFILE") or None,
            home=absolute(env.get("MEDIA_PIPELINE_HOME") or ".media_pipeline"),
            catalog_metadata=env.get("MEDIA_PIPELINE_CATALOG_METADATA") or None,
            catalog_data=env.get("MEDIA_PIPELINE_CATALOG_DATA") or None,
            executor=(env.get("MEDIA_PIPELINE_EXECUTOR") or "multiprocess").strip().lower(),
            celery_broker=env.get("MEDIA_PIPELINE_CELERY_BROKER") or None,
            celery_backend=env.get("MEDIA_PIPELINE_CELERY_BACKEND") or "rpc://",
            celery_queue=env.get("MEDIA_PIPELINE_CELERY_QUEUE") or None,
            max_file_size=_int(env, "MAX_FILE_SIZE", 100 * 1024 * 1024),
            allowed_file_types=_allowed_types(env),
            max_image_pixels=_int(env, "MEDIA_PIPELINE_MAX_IMAGE_PIXELS", 50_000_000),
            max_frames=_int(env, "MEDIA_PIPELINE_MAX_FRAMES", 1000),
            max_decode_bytes=_size(env, "MEDIA_PIPELINE_MAX_DECODE_BYTES", 256 * 1024 * 1024),
            allow_pdf_scripts=_bool(env, "MEDIA_PIPELINE_ALLOW_PDF_SCRIPTS", False),
            inventory_location=_location(env.get("MEDIA_PIPELINE_INVENTORY")),
            near_duplicate_distance=_int(env, "MEDIA_PIPELINE_NEAR_DUPLICATE_DISTANCE", 6),
            near_duplicate_embeddings=_bool(env, "MEDIA_PIPELINE_NEAR_DUPLICATE_EMBEDDINGS", True),
            fingerprint_workers=_int(env, "MEDIA_PIPELINE_FINGERPRINT_WORKERS", 16),
            retention_days=_int(env, "MEDIA_PIPELINE_RETENTION_DAYS", 30),
            purge_batch_size=_int(env, "MEDIA_PIPELINE_PURGE_BATCH_SIZE", 100),
            ai_service_url=env.get("AI_SERVICE_URL") or None,
            ai_service_api_key=env.get("AI_SERVICE_API_KEY") or None,
            ai_service_model=env.get("AI_SERVICE_MODEL") or "gpt-4o-mini",
            ai_confidence_threshold=_float(env, "AI_CONFIDENCE_THRESHOLD", 0.7),
            ai_cache_timeout=_int(env, "AI_CACHE_TIMEOUT", 3600),
            ai_detector_thresholds=env.get("AI_DETECTOR_THRESHOLDS") or None,
            content_sources=_path(env, "MEDIA_PIPELINE_SOURCES"),
            custom_domain=env.get("AWS_S3_CUSTOM_DOMAIN") or None,
            cdn_base_urls=_csv(env, "MEDIA_PIPELINE_CDN_BASE_URLS"),
            shortcode_pattern=env.get("MEDIA_PIPELINE_SHORTCODE_PATTERN")
            or cls.shortcode_pattern,
            purge_max_count=_int(env, "MEDIA_PIPELINE_PURGE_MAX_COUNT", 10_000),
            purge_max_share=_float(env, "MEDIA_PIPELINE_PURGE_MAX_SHARE", 0.05),
            purge_share_floor=_int(env, "MEDIA_PIPELINE_PURGE_SHARE_FLOOR", 20),
            purge_min_age_seconds=_int(env, "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS", 60),
            purge_versions=(env.get("MEDIA_PIPELINE_PURGE_VERSIONS") or "marker").lower(),
            scan_max_drop=_float(env, "MEDIA_PIPELINE_SCAN_MAX_DROP", 0.10),
            auto_delete_days=_days_by_namespace(env, "MEDIA_PIPELINE_AUTO_DELETE_DAYS"),
            admins=frozenset(_csv(env, "MEDIA_PIPELINE_ADMINS")),
            signed_url_max_expiry=_int(env, "MEDIA_PIPELINE_SIGNED_URL_MAX_EXPIRY", 7 * 24 * 3600),
            multipart_threshold=_int(env, "MEDIA_PIPELINE_MULTIPART_THRESHOLD", 16 * 1024 * 1024),
            sqs_queue_url=env.get("MEDIA_PIPELINE_SQS_QUEUE_URL") or None,
            query_timeout=_float(env, "MEDIA_PIPELINE_QUERY_TIMEOUT", 60.0),
            query_memory=_size(env, "MEDIA_PIPELINE_QUERY_MEMORY", 2 * 1024**3),
            query_threads=_int(env, "MEDIA_PIPELINE_QUERY_THREADS", 2),
            catalog_snapshot_retention_days=_int(
                env, "MEDIA_PIPELINE_CATALOG_SNAPSHOT_RETENTION_DAYS", 30),
            purge_snapshot_retention_days=_int(
                env, "MEDIA_PIPELINE_PURGE_SNAPSHOT_RETENTION_DAYS", 90),
        )
        return replace(settings, **overrides) if overrides else settings

    def __post_init__(self) -> None:
        # Paths are absolute from here on, whoever built these settings (see `absolute`).
        object.__setattr__(self, "home", absolute(self.home))
        if self.content_sources is not None:
            object.__setattr__(self, "content_sources", absolute(self.content_sources))
        object.__setattr__(self, "inventory_location", _location(self.inventory_location))
        object.__setattr__(self, "catalog_metadata", _catalog_metadata(self.catalog_metadata))
        if self.catalog_data:
            data = _location(self.catalog_data) or ""
            object.__setattr__(self, "catalog_data", data if data.endswith("/") else data + "/")
        if self.catalog_data and urlsplit(self.catalog_data).scheme.lower() == "s3" and (
                urlsplit(self.catalog_data).netloc == self.bucket):
            # Everything in the media bucket is catalogued, so the catalog's own Parquet files
            # would be files a user may delete and a purge remove.
            raise SettingsError(
                f"MEDIA_PIPELINE_CATALOG_DATA ({self.catalog_data}) is in the media bucket "
                f"{self.bucket!r}: put the catalog's data files in another bucket")
        if self.executor not in EXECUTORS:
            raise SettingsError(f"MEDIA_PIPELINE_EXECUTOR must be one of {', '.join(EXECUTORS)}, "
                                f"got {self.executor!r}")
        if self.celery_queue is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,200}",
                                                              self.celery_queue):
            raise SettingsError("MEDIA_PIPELINE_CELERY_QUEUE must be 1-200 letters, digits or "
                                f"'_.:-', got {self.celery_queue!r}")
        if self.purge_share_floor < 0:
            raise SettingsError("MEDIA_PIPELINE_PURGE_SHARE_FLOOR must not be negative")
        if self.purge_min_age_seconds != 0 and self.purge_min_age_seconds < 30:
            raise SettingsError(
                "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS must be 0 (nothing else writes to the "
                "catalog) or at least 30: an application write may take 15 s to commit")
        if self.purge_min_age_seconds > MAX_PURGE_DAYS * 86_400:
            raise SettingsError(f"MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS must be at most "
                                f"{MAX_PURGE_DAYS * 86_400} ({MAX_PURGE_DAYS} days)")
        if self.max_file_size <= 0:
            raise SettingsError("MAX_FILE_SIZE must be positive")
        if not 0 <= self.near_duplicate_distance <= 11:
            raise SettingsError("MEDIA_PIPELINE_NEAR_DUPLICATE_DISTANCE must be between 0 and 11")
        if self.fingerprint_workers < 1:
            raise SettingsError("MEDIA_PIPELINE_FINGERPRINT_WORKERS must be at least 1")
        if self.purge_versions not in set(PurgeVersions):
            raise SettingsError("MEDIA_PIPELINE_PURGE_VERSIONS must be 'marker' or 'all'")
        if not 0 <= self.scan_max_drop <= 0.10:
            # The environment may only tighten; a looser share is a reviewed per-source
            # max_drop in the sources file.
            raise SettingsError("MEDIA_PIPELINE_SCAN_MAX_DROP must be in [0, 0.10] (it can "
                                "only tighten; loosen one source with max_drop in the "
                                "sources file)")
        if not 0 < self.purge_max_share <= 1:
            raise SettingsError("MEDIA_PIPELINE_PURGE_MAX_SHARE must be in (0, 1]")
        if self.purge_batch_size < 1 or self.purge_batch_size > 1000:
            raise SettingsError(
                "MEDIA_PIPELINE_PURGE_BATCH_SIZE must be between 1 and 1000 "
                "(S3 DeleteObjects takes at most 1,000 keys)")
        if self.max_frames < 1:
            raise SettingsError("MEDIA_PIPELINE_MAX_FRAMES must be at least 1")
        if self.max_decode_bytes < 1024 * 1024:
            raise SettingsError("MEDIA_PIPELINE_MAX_DECODE_BYTES must be at least 1MiB")
        if self.query_timeout <= 0:
            raise SettingsError("MEDIA_PIPELINE_QUERY_TIMEOUT must be a positive number of "
                                "seconds")
        if self.query_memory < 64 * 1024 * 1024:
            raise SettingsError("MEDIA_PIPELINE_QUERY_MEMORY must be at least 64MiB")
        if self.query_threads < 1:
            raise SettingsError("MEDIA_PIPELINE_QUERY_THREADS must be at least 1")
        if self.retention_days < 0:
            raise SettingsError("MEDIA_PIPELINE_RETENTION_DAYS must not be negative")
        if self.retention_days > MAX_PURGE_DAYS:
            raise SettingsError(
                f"MEDIA_PIPELINE_RETENTION_DAYS must be at most {MAX_PURGE_DAYS} (100 years)")
        if self.catalog_snapshot_retention_days < 1:
            raise SettingsError("MEDIA_PIPELINE_CATALOG_SNAPSHOT_RETENTION_DAYS must be at least 1")
        if self.purge_snapshot_retention_days < 0:
            raise SettingsError("MEDIA_PIPELINE_PURGE_SNAPSHOT_RETENTION_DAYS must not be negative")
        if not 1 <= self.signed_url_max_expiry <= 7 * 24 * 3600:
            raise SettingsError(
                "MEDIA_PIPELINE_SIGNED_URL_MAX_EXPIRY must be between 1 and 604800 seconds "
                "(SigV4 presigned URLs last at most 7 days)")

    @property
    def catalog_location(self) -> LakeLocation:
        """Where the catalog lives (``MEDIA_PIPELINE_CATALOG_METADATA``, ``_DATA``); by default
        a SQLite metadata file and the data files under ``home``."""
        default = LakeLocation.embedded(self.home)
        return LakeLocation(
            metadata=self.catalog_metadata or default.metadata,
            data=self.catalog_data or default.data,
            s3_endpoint_url=self.endpoint_url,
            s3_region=self.region,
            s3_access_key_id=self.access_key_id,
            s3_secret_access_key=self.secret_access_key,
            s3_session_token=self.session_token,
        )


    @property
    def legacy_catalog_path(self) -> Path:
        """The single DuckDB file catalogs were before the DuckLake (for `catalog migrate`)."""
        return self.home / "catalog.duckdb"

    @property
    def work_dir(self) -> Path:
        """Parquet fragments written by heavy stages, merged by the committer."""
        return self.home / "work"

    @property
    def allowed_mime_types(self) -> frozenset[str]:
        return frozenset(m for types in self.allowed_file_types.values() for m in types)

    @property
    def uses_embedded_s3(self) -> bool:
        """An S3 endpoint on this machine with no credentials: the embedded server (or another
        local test server), which accepts any credentials."""
        if not self.endpoint_url or self.access_key_id:
            return False
        host = urlsplit(self.endpoint_url).hostname or ""
        return host in {"127.0.0.1", "localhost", "::1"}

    def redacted(self) -> dict[str, Any]:
        """A dict safe to log or show: secrets replaced by '***'."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "***" if value else None
            elif f.name == "catalog_metadata" and value:
                value = self.catalog_location.describe().split(", data ")[0].removeprefix(
                    "metadata ")
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out
