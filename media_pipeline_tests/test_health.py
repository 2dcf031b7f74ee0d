"""The one list of health checks: `media-pipeline health` and the Dagster asset checks report
the same checks, worded in one place (``media_pipeline.health.CHECKS``)."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
from click.testing import CliRunner

from media_pipeline import health
from media_pipeline.catalog import open_catalog
from media_pipeline.cli import main as cli
from media_pipeline.corpus import generate_corpus
from media_pipeline.defs.execution import run_assets
from media_pipeline.demo import seed_bucket
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.storage import make_client
from media_pipeline_tests.fixtures_s3 import dagster_resources, env_for


def cli_checks(settings: Settings) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["health", "--json"], env=env_for(settings))
    return list(json.loads(result.output)["checks"])


def test_health_prints_the_checks_of_the_list_in_its_order(
    settings: Settings, s3_client: Any
) -> None:
    files = generate_corpus()[:6]
    seed_bucket(s3_client, settings.bucket, files)
    summary = run_assets(instance=dg.DagsterInstance.ephemeral(),
                         resources=dagster_resources(settings))
    assert summary.success, summary.failure
    # The list's checks ran as asset checks, under their asset-check names (purged_files and
    # its check belong to the purge job).
    assert set(summary.checks) == {c.name for c in health.CHECKS} - {"purge_undo_window"}

    client = make_client(settings)
    assert health.run_checks(settings, client) == cli_checks(settings)
    assert [c["check"] for c in health.run_checks(settings, client)] == [
        c.label for c in health.CHECKS]

    # Failing checks word their details the same way too.
    with open_catalog(settings) as catalog:
        catalog.references.add_reference(media_id_for(settings.bucket, "site/nowhere.jpg"),
                                         "webpage", "42", "test")
    s3_client.delete_object(Bucket=settings.bucket, Key=files[2].key)
    rows = health.run_checks(settings, client)
    assert rows == cli_checks(settings)
    failed = {r["check"] for r in rows if not r["passed"]}
    assert failed == {"file_accessibility", "reference_integrity"}


def test_a_warning_check_is_printed_as_passed_with_warn() -> None:
    outcome = health.CheckOutcome(passed=False, detail="unversioned", extra={"versioning": None})
    [undo] = [c for c in health.CHECKS if c.severity == "warn"]
    assert health.health_row(undo, outcome) == {
        "check": "purge_undo", "passed": True, "warn": True, "versioning": None,
        "detail": "unversioned"}
