"""The scan drift guard and remembered sources, on the real catalog (no CLI): what a suspect scan
changes (nothing), what it blocks, how the share is configured, and what a purge requires."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from media_pipeline.access import PermissionDenied
from media_pipeline.catalog import Catalog
from media_pipeline.lifecycle import auto_soft_delete, delete, purge
from media_pipeline.references.index import scan_sources
from media_pipeline.references.sources import load_sources
from media_pipeline.settings import Settings, SettingsError
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    audit,
    catalog_files,
    key_ref,
    row,
    scan,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def files(settings: Settings, s3_client: Any) -> dict[str, str]:
    return catalog_files(settings, s3_client, [f"blog/{i}.txt" for i in range(20)])


def refs(settings: Settings, n: int, first: int = 0) -> list[dict[str, str | None]]:
    return [key_ref(settings, "webpage", str(i), f"blog/{i}.txt") for i in range(first, n)]


def test_growth_is_never_suspect(settings: Settings, files: dict[str, str]) -> None:
    assert scan(settings, "cms", refs(settings, 2), started=T0)["state"] == "trusted"
    assert scan(settings, "cms", refs(settings, 10), started=T0 + timedelta(1))["state"] \
        == "trusted"


def test_a_first_scan_of_an_empty_root_is_suspect_until_accepted(
        settings: Settings, files: dict[str, str], tmp_path: Path) -> None:
    # a source renamed onto an empty folder (typo, unmounted volume) must not count as trusted
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "s.yaml"
    config.write_text(f"sources:\n  - {{name: site2, type: files, root: {empty}, "
                      "content_type: page}\n")
    s = replace(settings, content_sources=config, admins=frozenset({ADMIN}))
    [outcome] = scan_sources(s, workers=1)
    assert outcome.state == "suspect"
    assert outcome.reasons == ["first scan returned nothing (0 documents)"]
    with Catalog.open(s.catalog_location) as catalog:
        [status] = catalog.references.source_scan_status(["site2"])
    assert status["stale"]
    [outcome] = scan_sources(s, accepted_by=ADMIN, workers=1)
    assert outcome.state == "accepted"
    # an accepted empty baseline does not switch the guard off: once it grew, a drop counts
    later = datetime.now(UTC) + timedelta(hours=1)  # after the accepted scan
    assert scan(s, "site2", refs(s, 10), started=later)["state"] == "trusted"
    assert scan(s, "site2", [], started=later + timedelta(1))["state"] == "suspect"


def test_small_drops_add_up_against_the_baseline(
        settings: Settings, files: dict[str, str]) -> None:
    scan(settings, "cms", refs(settings, 20), started=T0)
    # 20 → 19 → 18: within 10 % of the 20 the baseline remembers
    for day, n in ((1, 19), (2, 18)):
        assert scan(settings, "cms", refs(settings, n), started=T0 + timedelta(day))["state"] \
            == "trusted"
    result = scan(settings, "cms", refs(settings, 17), started=T0 + timedelta(3))
    assert result["state"] == "suspect"
    assert "documents 20 → 17 (−15%)" in result["drift"]["reasons"]
    # an accepted drop starts a new baseline
    assert scan(settings, "cms", refs(settings, 17), started=T0 + timedelta(4),
                accepted_by=ADMIN)["state"] == "accepted"
    assert scan(settings, "cms", refs(settings, 16), started=T0 + timedelta(5))["state"] \
        == "trusted"
    # and a baseline older than 90 days is forgotten (the last trusted scan stands in)
    late = T0 + timedelta(days=200)
    assert scan(settings, "cms", refs(settings, 15), started=late)["state"] == "trusted"


@pytest.mark.parametrize("kept,state", [(9, "suspect"), (10, "trusted")])
def test_a_drop_over_the_share_is_suspect_and_changes_nothing(
        settings: Settings, files: dict[str, str], kept: int, state: str) -> None:
    scan(settings, "cms", refs(settings, 10), started=T0)
    # 9 of 10 documents is a 10 % drop (not over); 8 of 10 with 9 references is over
    result = scan(settings, "cms", refs(settings, kept - 1 if kept == 9 else kept),
                  started=T0 + timedelta(1))
    assert result["state"] == state
    if state == "suspect":
        assert any("documents 10 → 8" in r for r in result["drift"]["reasons"])
        assert row(settings, files["blog/9.txt"])["reference_count"] == 1  # old rows kept
        with Catalog.open(settings.catalog_location) as catalog:
            [status] = catalog.references.source_scan_status(["cms"])
            drift = catalog.con.execute(
                "SELECT details FROM audit_log WHERE action = 'references.scan_suspect'"
            ).fetchone()
        assert status["stale"] and "--accept-drop" in status["reason"]
        assert drift is not None and json.loads(drift[0])["baseline"]["documents"] == 10


def test_references_dropping_alone_is_suspect(settings: Settings, files: dict[str, str]) -> None:
    scan(settings, "cms", refs(settings, 10), started=T0)
    # the same ten pages, but only two still refer to files
    result = scan(settings, "cms", refs(settings, 2), started=T0 + timedelta(1), documents=10)
    assert result["state"] == "suspect"
    assert result["drift"]["reasons"] == ["refs 10 → 2 (−80%)"]


def test_a_suspect_scan_blocks_purge_and_auto_soft_delete_until_accepted(
        settings: Settings, s3_client: Any, files: dict[str, str]) -> None:
    s = replace(settings, retention_days=0, purge_max_share=1.0, admins=frozenset({ADMIN}),
                auto_delete_days={"blog": 1})
    scan(s, "cms", refs(s, 10), started=T0)
    with Catalog.open(s.catalog_location) as catalog:
        assert delete(catalog, s, files["blog/3.txt"], ADMIN, force=True, now=T0).deleted
    assert scan(s, "cms", [], started=T0 + timedelta(1))["state"] == "suspect"
    later = T0 + timedelta(days=5)
    report = purge(s, s3_client, enabled_sources=["cms"], now=later)
    assert report.refused and "documents 10 → 0 (returned nothing)" in str(report.refused_reason)
    with Catalog.open(s.catalog_location) as catalog:
        auto = auto_soft_delete(catalog, s, later + timedelta(days=30), enabled_sources=[])
    assert auto.refused_reason and "cms" in auto.refused_reason and auto.total == 0
    assert "blog/3.txt" in {o["Key"] for o in s3_client.list_objects_v2(
        Bucket=s.bucket)["Contents"]}

    assert scan(s, "cms", refs(s, 3), started=T0 + timedelta(2),
                accepted_by=ADMIN)["state"] == "accepted"
    report = purge(s, s3_client, enabled_sources=["cms"], now=later)
    assert not report.refused and report.purged == 1  # blog/3.txt is no longer referenced


def test_mention_rows_are_left_out_of_the_comparison(
        settings: Settings, files: dict[str, str]) -> None:
    mentions = [{**r, "form": "mention"} for r in refs(settings, 10, first=2)]
    scan(settings, "cms", refs(settings, 2) + mentions, started=T0, documents=10)
    # the soft-deleted files were restored: their mentions go, the proper references stay
    assert scan(settings, "cms", refs(settings, 2), started=T0 + timedelta(1),
                documents=10)["state"] == "trusted"


def test_max_drop_per_source_and_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("sources:\n  - {name: a, type: files, root: ., content_type: p, "
                    "max_drop: 0.5}\n  - {name: b, type: files, root: ., content_type: p, "
                    "max_drop: 1.5}\n")
    with pytest.raises(ValueError, match="'b'.*field 'max_drop': must be at least 0 and below 1"):
        load_sources(path)
    path.write_text("sources:\n  - {name: a, type: files, root: ., content_type: p, "
                    "max_drop: 0.5}\n")
    assert load_sources(path)[0].max_drop == 0.5
    # the environment can only tighten: loosening is a reviewed per-source max_drop
    assert Settings.from_env({"MEDIA_PIPELINE_SCAN_MAX_DROP": "0.05"}).scan_max_drop == 0.05
    for loose in ("0.3", "0.99", "1"):
        with pytest.raises(SettingsError, match="MEDIA_PIPELINE_SCAN_MAX_DROP.*only tighten"):
            Settings.from_env({"MEDIA_PIPELINE_SCAN_MAX_DROP": loose})


def test_scan_sources_honours_the_source_share_and_only_admins_accept(
        settings: Settings, files: dict[str, str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for i in range(10):
        (site / f"{i}.html").write_text(f"<p>page {i}</p>")
    config = tmp_path / "s.yaml"
    config.write_text(f"sources:\n  - {{name: site, type: files, root: {site}, "
                      "content_type: page, max_drop: 0.5}\n")
    s = replace(settings, content_sources=config, scan_max_drop=0.0)
    assert [o.state for o in scan_sources(s, workers=1)] == ["trusted"]
    for i in range(4):  # 40 % fewer pages: over the setting, within the source's 50 %
        (site / f"{i}.html").unlink()
    assert [o.state for o in scan_sources(s, workers=1)] == ["trusted"]
    # applied under the looser share: the threshold, its origin and the drop are on record
    [allowed] = audit(s, "references.scan_drop_allowed")
    details = allowed["details"] if isinstance(allowed["details"], dict) \
        else json.loads(allowed["details"])
    assert details["max_drop"] == 0.5 and details["max_drop_origin"] == "sources file"
    assert "documents 10 → 6 (−40%)" in details["over_default"]
    with Catalog.open(s.catalog_location) as catalog:
        last = catalog.con.execute("SELECT drift FROM source_scans WHERE source = 'site' "
                                   "ORDER BY started DESC LIMIT 1").fetchone()
    assert last is not None and json.loads(last[0])["max_drop_origin"] == "sources file"
    with pytest.raises(PermissionDenied):
        scan_sources(s, accepted_by="mallory", workers=1)


def test_remembered_sources_backfill_require_and_reactivate(
        settings: Settings, s3_client: Any, files: dict[str, str]) -> None:
    s = replace(settings, retention_days=0, purge_max_share=1.0, admins=frozenset({ADMIN}))
    scan(s, "old", refs(s, 1), started=T0)
    with Catalog.open(s.catalog_location) as catalog:
        assert delete(catalog, s, files["blog/5.txt"], ADMIN, force=True, now=T0).deleted
        catalog.references.record_source_failure("old", T0 + timedelta(1), "connection refused")
    report = purge(s, s3_client, enabled_sources=[], now=T0 + timedelta(2))
    assert report.refused and report.sources == ["old"]
    assert "old (remembered; not in today's configuration" in str(report.refused_reason)

    with Catalog.open(s.catalog_location) as catalog:
        catalog.references.retire_source("old", ADMIN, "moved")
        assert catalog.references.required_sources([]) == []
        assert row(s, files["blog/0.txt"])["reference_count"] == 0
    scan(s, "old", refs(s, 1), started=T0 + timedelta(3))  # scanned again: required again
    with Catalog.open(s.catalog_location) as catalog:
        assert catalog.references.required_sources([]) == ["old"]
        actions = [a for (a,) in catalog.con.execute(
            "SELECT action FROM audit_log WHERE action LIKE 'source.%' ORDER BY ts").fetchall()]
    assert actions == ["source.retire", "source.reactivated"]


def test_a_broken_sources_file_makes_the_source_check_red(settings: Settings,
                                                          tmp_path: Path) -> None:
    from media_pipeline.health import source_health

    broken = tmp_path / "broken.yaml"
    broken.write_text("sources: [")
    scan(settings, "cms", [], started=T0, documents=1)  # a catalog to read
    [status] = source_health(replace(settings, content_sources=broken))
    assert status["stale"] and "cannot read content sources" in status["reason"]


def test_a_source_named_api_is_refused_when_the_file_is_loaded(
        settings: Settings, files: dict[str, str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "1.html").write_text("<p>x</p>")
    config = tmp_path / "s.yaml"
    config.write_text(f"sources:\n  - {{name: api, type: files, root: {site}, "
                      "content_type: page}\n")
    with pytest.raises(ValueError, match="field 'name': 'api' is reserved"):
        load_sources(config)
    with pytest.raises(ValueError, match="reserved"):
        scan_sources(replace(settings, content_sources=config), workers=1)
    with Catalog.open(settings.catalog_location) as catalog:  # never remembered
        assert "api" not in {s["source"] for s in catalog.references.remembered_sources(True)}
        with pytest.raises(ValueError, match="reserved"):
            catalog.references.record_source_failure("api", T0, "boom")
        assert "api" not in {s["source"] for s in catalog.references.remembered_sources(True)}
