"""Asset checks on the fingerprinted objects, shown red/green in the UI."""


import dagster as dg

from media_pipeline import health
from media_pipeline.defs.fingerprints.assets import fingerprints
from media_pipeline.defs.resources import MediaPipelineResource

MAX_KEYS_SHOWN = 50


@dg.asset_check(asset=fingerprints, description="Bytes and files per namespace and type.")
def storage_usage(media: MediaPipelineResource) -> dg.AssetCheckResult:
    rows = health.storage_usage(media.settings())
    metadata: dict[str, dg.MetadataValue | int] = {
        "files": sum(r["files"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
    }
    table = "| namespace | type | files | bytes |\n|---|---|---|---|\n" + "\n".join(
        f"| {r['namespace']} | {r['content_type']} | {r['files']} | {r['bytes']} |" for r in rows
    )
    metadata["by_namespace_and_type"] = dg.MetadataValue.md(table)
    # Numbers per namespace and per type, so the UI plots each over time.
    for field, key in (("namespace", "namespace"), ("type", "content_type")):
        for value in sorted({r[key] for r in rows}):
            group = [r for r in rows if r[key] == value]
            metadata[f"bytes/{field}/{value}"] = sum(r["bytes"] for r in group)
            metadata[f"files/{field}/{value}"] = sum(r["files"] for r in group)
    return dg.AssetCheckResult(passed=True, metadata=metadata)


@dg.asset_check(
    asset=fingerprints,
    description="Quarantined and non-public objects must not be readable by anyone: an object "
                "public in S3 but not in the catalog fails it.",
)
def public_exposure(media: MediaPipelineResource) -> dg.AssetCheckResult:
    report = health.check_public_exposure(media.settings(), media.s3_client())
    shown = report.exposed[:MAX_KEYS_SHOWN]
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={"checked": report.checked, "exposed": len(report.exposed),
                  "errors": len(report.errors), "exposed_keys": dg.MetadataValue.json(shown)},
        description=None if report.ok else
        f"{len(report.exposed)} public in S3 but not in the catalog: " + ", ".join(shown[:10]),
    )
