"""Health of the catalog against the bucket: the one list of checks (``CHECKS``) that the
Dagster asset checks and `media-pipeline health` both report. Attaches the live catalog
read-only, so it never waits for a writer.

A check is a name, the asset it checks, a description and a function over the settings and an S3
client that returns a :class:`CheckOutcome`: passed or not, the line `health` prints, the text
the asset check shows on failure, and metadata (numbers the Dagster UI plots). Adding a check is
adding one :class:`Check` to ``CHECKS``; ``defs/health`` and :func:`run_checks` pick it up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

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
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        return catalog.reports.storage_usage()


def check_accessibility(settings: Settings, client: Any, sample_size: int = 50
                        ) -> AccessibilityReport:
    """HEAD a random sample of present objects; objects the catalog marks missing, and sampled
    ones that are gone now, are reported by key."""
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        rows = catalog.reports.accessibility_sample(sample_size)
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
    """What the reference checks find, in the catalog."""

    dangling: list[dict[str, Any]] = field(default_factory=list)
    to_gone_files: list[dict[str, Any]] = field(default_factory=list)
    inconsistencies: list[dict[str, Any]] = field(default_factory=list)


def reference_health(settings: Settings, limit: int = 50) -> ReferenceHealth:
    """reference_integrity (dangling references, references to purged or missing files) and
    catalog_consistency (one row per file, no facts about unknown files), as the asset checks
    compute them."""
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        return ReferenceHealth(
            dangling=catalog.references.dangling_references(limit=limit),
            to_gone_files=catalog.references.references_to_gone_files(limit=limit),
            inconsistencies=catalog.references.catalog_inconsistencies(limit=limit),
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
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        rows = catalog.reports.exposure_candidates(sample_size)

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
    from media_pipeline.lifecycle.sources import (
        SourcesUnavailable,
        disabled_source_names,
        enabled_source_names,
    )

    try:
        configured = enabled_source_names(settings)
        disabled = disabled_source_names(settings)
    except SourcesUnavailable as exc:  # purges refuse too: the check says why
        return [{"source": str(settings.content_sources), "stale": True, "reason": str(exc),
                 "state": None, "last_ok_started": None, "latest_started": None}]
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        references = catalog.references
        return references.source_scan_status(references.required_sources(configured, disabled))


# -- the checks -----------------------------------------------------------------------------

MAX_SHOWN = 50
# Objects file_accessibility HEADs (`health --sample` changes it).
DEFAULT_SAMPLE = 50


class Markdown(str):
    """A metadata value to show as Markdown (the Dagster UI renders it)."""


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found.

    ``detail`` is the line `media-pipeline health` prints; ``description`` what the asset check
    shows (None: nothing to say); ``metadata`` plain values (lists and dicts become JSON,
    :class:`Markdown` is rendered); ``extra`` more fields `health --json` prints.
    """

    passed: bool
    detail: str
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One health check. ``name`` is the asset check's name; ``label`` the name `health` prints
    (the same check; two names because both are public). A ``warn`` check that fails is a
    warning: `health` prints it as passed with ``warn``, the asset check is yellow."""

    name: str
    label: str
    asset: str
    description: str
    run: Callable[[Settings, Any, int], CheckOutcome]
    severity: Literal["error", "warn"] = "error"
    needs_s3: bool = True


def _storage_usage(settings: Settings, _client: Any, _sample: int) -> CheckOutcome:
    rows = storage_usage(settings)
    files, size = sum(r["files"] for r in rows), sum(r["bytes"] for r in rows)
    metadata: dict[str, Any] = {"files": files, "bytes": size}
    metadata["by_namespace_and_type"] = Markdown(
        "| namespace | type | files | bytes |\n|---|---|---|---|\n" + "\n".join(
            f"| {r['namespace']} | {r['content_type']} | {r['files']} | {r['bytes']} |"
            for r in rows))
    # Numbers per namespace and per type, so the UI plots each over time.
    for name, key in (("namespace", "namespace"), ("type", "content_type")):
        for value in sorted({r[key] for r in rows}):
            group = [r for r in rows if r[key] == value]
            metadata[f"bytes/{name}/{value}"] = sum(r["bytes"] for r in group)
            metadata[f"files/{name}/{value}"] = sum(r["files"] for r in group)
    return CheckOutcome(passed=True, detail=f"{files} files, {size} bytes", metadata=metadata)


def _file_accessibility(settings: Settings, client: Any, sample: int) -> CheckOutcome:
    report = check_accessibility(settings, client, sample)
    missing = report.missing_keys
    shown = missing[:MAX_SHOWN]
    return CheckOutcome(
        passed=report.ok,
        detail=f"{report.checked} checked, {len(missing)} missing"
        + (": " + ", ".join(missing[:10]) if missing else "")
        + (f", {len(report.errors)} errors" if report.errors else ""),
        description=None if report.ok else f"{len(missing)} missing: " + ", ".join(shown[:10]),
        metadata={"checked": report.checked, "missing": len(missing),
                  "errors": len(report.errors), "missing_keys": shown},
    )


def _public_exposure(settings: Settings, client: Any, _sample: int) -> CheckOutcome:
    report = check_public_exposure(settings, client)
    exposed = report.exposed
    shown = exposed[:MAX_SHOWN]
    return CheckOutcome(
        passed=report.ok,
        detail=f"{report.checked} checked, {len(exposed)} public in S3 but not in the catalog"
        + (": " + ", ".join(exposed[:10]) if exposed else "")
        + (f", {len(report.errors)} errors" if report.errors else ""),
        description=None if report.ok else
        f"{len(exposed)} public in S3 but not in the catalog: " + ", ".join(shown[:10]),
        metadata={"checked": report.checked, "exposed": len(exposed),
                  "errors": len(report.errors), "exposed_keys": shown},
    )


def _jsonable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v if isinstance(v, int | float | bool | None) else str(v)
             for k, v in row.items()} for row in rows]


def _reference_integrity(settings: Settings, _client: Any, _sample: int) -> CheckOutcome:
    found = reference_health(settings, limit=MAX_SHOWN)
    dangling, gone = found.dangling, found.to_gone_files
    problems = [*dangling, *gone]
    return CheckOutcome(
        passed=not problems,
        detail=f"{len(dangling)} dangling, {len(gone)} to purged or missing files"
        + (": " + ", ".join(
            f"{r.get('key') or r.get('media_id')} in {r.get('content_type')} "
            f"{r.get('content_id')}" for r in problems[:5]) if problems else ""),
        description=None if not problems else (
            f"{len(dangling)} dangling references, {len(gone)} to purged or missing files"
            + (f" (first {MAX_SHOWN} of each listed)" if len(problems) >= MAX_SHOWN else "")),
        metadata={"dangling": len(dangling), "to_purged_or_missing": len(gone),
                  "examples": _jsonable(problems[:MAX_SHOWN])},
    )


def _catalog_consistency(settings: Settings, _client: Any, _sample: int) -> CheckOutcome:
    wrong = reference_health(settings, limit=MAX_SHOWN).inconsistencies
    return CheckOutcome(
        passed=not wrong,
        detail=f"{len(wrong)} files with duplicate rows or deletion facts but no row",
        description=None if not wrong else f"{len(wrong)} files inconsistent in the catalog",
        metadata={"inconsistencies": len(wrong), "examples": _jsonable(wrong)},
    )


def _content_sources(settings: Settings, _client: Any, _sample: int) -> CheckOutcome:
    status = source_health(settings)
    stale = [s for s in status if s["stale"]]
    reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in stale)
    return CheckOutcome(
        passed=not stale,
        detail=reasons or "every source a purge needs has a trusted latest scan",
        description=reasons or None,
        metadata={"sources": len(status), "stale": len(stale),
                  "reasons": {s["source"]: s["reason"] for s in stale}},
    )


def _purge_undo(settings: Settings, client: Any, _sample: int) -> CheckOutcome:
    from media_pipeline.lifecycle import bucket_versioning

    undo = bucket_versioning(settings, client)
    return CheckOutcome(
        passed=bool(undo["undo"]),
        detail=undo["detail"],
        description=undo["detail"],
        metadata={"versioning": str(undo["versioning"]),
                  "noncurrent_days": undo.get("noncurrent_days") or 0},
        extra={"versioning": undo["versioning"]},
    )


CHECKS: tuple[Check, ...] = (
    Check("storage_usage", "storage_usage", "fingerprints",
          "Bytes and files per namespace and type.", _storage_usage, needs_s3=False),
    Check("file_accessibility", "file_accessibility", "media_files",
          "HEAD a sample of catalogued objects; objects gone from the bucket fail it.",
          _file_accessibility),
    Check("public_exposure", "public_exposure", "fingerprints",
          "Quarantined and non-public objects must not be readable by anyone: an object "
          "public in S3 but not in the catalog fails it.", _public_exposure),
    Check("reference_integrity", "reference_integrity", "reference_index",
          "Dangling references and references to purged or missing files.",
          _reference_integrity, needs_s3=False),
    Check("catalog_consistency", "catalog_consistency", "reference_index",
          "One catalog row per file, and no deletion facts about unknown files.",
          _catalog_consistency,
          needs_s3=False),
    Check("content_sources_trusted", "content_sources", "reference_index",
          "Every source a purge needs (configured or remembered) has a trusted latest scan: "
          "not failed, not suspect.", _content_sources, needs_s3=False),
    # A warning, not a failure: permanent purges are a choice, but one to know about.
    Check("purge_undo_window", "purge_undo", "purged_files",
          "Whether a purge can be undone (versioned bucket, marker mode).", _purge_undo,
          severity="warn"),
)


def health_row(check: Check, outcome: CheckOutcome) -> dict[str, Any]:
    """One row of `media-pipeline health` (``--json`` prints these)."""
    row: dict[str, Any] = {"check": check.label}
    if check.severity == "warn":
        row.update(passed=True, warn=not outcome.passed)
    else:
        row["passed"] = outcome.passed
    return {**row, **outcome.extra, "detail": outcome.detail}


def run_checks(settings: Settings, client: Any, sample: int = DEFAULT_SAMPLE
               ) -> list[dict[str, Any]]:
    """Every check in ``CHECKS``, as the rows `media-pipeline health` prints; ``sample`` is how
    many objects file_accessibility HEADs."""
    return [health_row(check, check.run(settings, client, sample)) for check in CHECKS]
