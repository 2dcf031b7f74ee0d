"""The application API and a pipeline run at once, from separate processes (issue 13's
concurrency harness, ``benchmarks/concurrency.py``, at a small scale): nothing fails and every
acknowledged write is there afterwards. No timings are asserted; the benchmark prints them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks import concurrency
from media_pipeline.library import MediaLibrary
from media_pipeline.settings import Settings

ADMIN = "admin@concurrency"


def test_two_applications_a_pipeline_and_an_analyst_lose_nothing(
        settings: Settings, tmp_path: Path) -> None:
    settings = replace(settings, admins=frozenset({ADMIN}), fingerprint_workers=2)
    # At least 16 calls each, however long they take on a busy machine: with these seeds
    # references, tags and a delete are among them.
    report = concurrency.run(settings, admin=ADMIN, seconds=4, apps=2, files_per_app=5,
                             work=tmp_path / "outcomes", min_actions=16)
    assert report.errors == []
    assert report.pipeline_errors == []
    assert report.analyst_errors == []
    assert report.lost_writes == []
    # The scenario really ran: writes by both sides, each checked afterwards.
    assert report.pipeline_runs >= 1
    assert {"add_reference", "add_tag"} & set(report.actions)
    assert report.checked_writes > 2 * 5
    assert report.analyst_seconds


def test_the_check_finds_a_write_that_is_not_there(settings: Settings, tmp_path: Path) -> None:
    settings = replace(settings, admins=frozenset({ADMIN}))
    [media_id] = concurrency.prepare(settings, ADMIN, apps=1, files_per_app=1)[0]
    report = concurrency.ConcurrencyReport(seconds=0)
    library = MediaLibrary(settings)
    user = concurrency.app_user(0)
    library.add_reference(media_id, concurrency.CONTENT_TYPE, "kept", user)

    concurrency._check_file(report, library, user, media_id,
                            {"refs": ["kept"], "tags": [], "deleted": False})
    assert report.lost_writes == []
    concurrency._check_file(report, library, user, media_id,
                            {"refs": ["kept", "acknowledged-but-absent"], "tags": ["t"],
                             "deleted": True})
    assert len(report.lost_writes) == 3
    assert "acknowledged-but-absent" in " ".join(report.lost_writes)
