"""Health of the catalog against the bucket: what the asset checks and `media-pipeline health`
report. Reads the published snapshot, so it never waits for a writer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from media_pipeline.catalog import Catalog
from media_pipeline.settings import Settings
from media_pipeline.storage.s3 import grants_are_public, is_not_found


@dataclass
class AccessibilityReport:
    checked: int = 0
    missing_keys: list[str] = field(default_factory=list)  # gone from the bucket
    errors: dict[str, str] = field(default_factory=dict)  # key → error other than not found

    @property
    def ok(self) -> bool:
        return not self.missing_keys and not self.errors


def storage_usage(settings: Settings) -> list[dict[str, Any]]:
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        return catalog.storage_usage()


def check_accessibility(settings: Settings, client: Any, sample_size: int = 50
                        ) -> AccessibilityReport:
    """HEAD a random sample of present objects; objects the catalog marks missing, and sampled
    ones that are gone now, are reported by key."""
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        rows = catalog.accessibility_sample(sample_size)
    report = AccessibilityReport()
    to_head = []
    for _media_id, bucket, key, status in rows:
        if status == "missing":
            report.missing_keys.append(key)
        else:
            to_head.append((bucket, key))

    def head(item: tuple[str, str]) -> tuple[str, str | None]:
        bucket, key = item
        try:
            client.head_object(Bucket=bucket, Key=key)
            return key, None
        except ClientError as exc:
            return key, "not found" if is_not_found(exc) else str(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for key, error in pool.map(head, to_head):
            report.checked += 1
            if error == "not found":
                report.missing_keys.append(key)
            elif error is not None:
                report.errors[key] = error
    report.missing_keys.sort()
    return report


@dataclass
class ReferenceHealth:
    """What the reference checks find, on the published snapshot."""

    dangling: list[dict[str, Any]] = field(default_factory=list)
    to_gone_files: list[dict[str, Any]] = field(default_factory=list)
    count_mismatches: list[dict[str, Any]] = field(default_factory=list)


def reference_health(settings: Settings, limit: int = 50) -> ReferenceHealth:
    """reference_integrity (dangling references, references to purged or missing files) and
    catalog_consistency (counters vs the index), as the asset checks compute them."""
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        return ReferenceHealth(
            dangling=catalog.dangling_references(limit=limit),
            to_gone_files=catalog.references_to_gone_files(limit=limit),
            count_mismatches=catalog.reference_count_mismatches(limit=limit),
        )


@dataclass
class ExposureReport:
    checked: int = 0
    exposed: list[str] = field(default_factory=list)  # public in S3, not public in the catalog
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.exposed


def check_public_exposure(settings: Settings, client: Any, sample_size: int = 200
                          ) -> ExposureReport:
    """Read the ACL of every quarantined object and of a sample of non-public ones; objects
    anyone may read although the catalog says they are not public are reported by key."""
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        rows = catalog.exposure_candidates(sample_size)

    def acl(row: tuple[str, str, str]) -> tuple[str, bool | None, str | None]:
        bucket, key, _status = row
        try:
            grants = client.get_object_acl(Bucket=bucket, Key=key).get("Grants", [])
        except ClientError as exc:
            if is_not_found(exc):
                return key, None, None
            return key, None, str(exc.response.get("Error", {}).get("Code") or exc)
        return key, grants_are_public(grants), None

    report = ExposureReport()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for key, public, error in pool.map(acl, rows):
            report.checked += 1
            if public:
                report.exposed.append(key)
            elif error is not None:
                report.errors[key] = error
    report.exposed.sort()
    return report


def source_health(settings: Settings) -> list[dict[str, Any]]:
    """The scan state of every source a purge needs (configured today, or ever scanned and not
    retired); a stale one blocks purges and auto soft-delete."""
    from media_pipeline.lifecycle.sources import SourcesUnavailable, enabled_source_names

    try:
        configured = enabled_source_names(settings)
    except SourcesUnavailable as exc:  # purges refuse too: the check says why
        return [{"source": str(settings.content_sources), "stale": True, "reason": str(exc),
                 "state": None, "last_ok_started": None, "latest_started": None}]
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        return catalog.source_scan_status(catalog.required_sources(configured))
