"""ingest_keys: catalog and fingerprint just the named keys, against the moto server and a real
DuckDB catalog."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from media_pipeline import stages
from media_pipeline.catalog import Catalog
from media_pipeline.corpus import encode, hostile_file, photo
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_s3 import upload


def png(seed: int) -> bytes:
    import numpy as np

    return encode(photo(np.random.default_rng(seed), 64, 48), "PNG")


def files(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every media_files row by key (the live catalog: no writer is open between steps)."""
    with Catalog.open(settings.catalog_location) as catalog:
        cursor = catalog.con.execute("SELECT * FROM media_files ORDER BY key")
        names = [d[0] for d in cursor.description or []]
        return {row[names.index("key")]: dict(zip(names, row, strict=True))
                for row in cursor.fetchall()}


def inventory_runs(settings: Settings) -> list[tuple[Any, ...]]:
    with Catalog.open(settings.catalog_location) as catalog:
        return catalog.con.execute(
            "SELECT source, rows, new, changed, missing, run_id FROM inventory_runs "
            "ORDER BY started").fetchall()


def nightly(settings: Settings, client: Any) -> None:
    """What the nightly reconciliation does: list, commit, fingerprint."""
    stages.take_inventory(settings, client)
    stages.commit_inventory(settings)
    stages.fingerprint_pending(settings, client)


def test_new_keys_are_cataloged_and_fingerprinted_and_nothing_else_is_touched(
    settings: Settings, s3_client: Any
) -> None:
    upload(s3_client, settings, "site/a.png", png(1), "image/png")
    upload(s3_client, settings, "site/b.png", png(2), "image/png")
    nightly(settings, s3_client)
    before = files(settings)
    # b vanishes from the bucket without an event for it: only a listing may call it missing.
    s3_client.delete_object(Bucket=settings.bucket, Key="site/b.png")
    new_png = png(3)
    upload(s3_client, settings, "blog/new photo.png", new_png, "image/png")
    pdf_as_jpg = hostile_file("pdf-as-jpg")
    upload(s3_client, settings, pdf_as_jpg.key, pdf_as_jpg.data, pdf_as_jpg.content_type)

    result = stages.ingest_keys(
        settings, ["blog/new photo.png", pdf_as_jpg.key], client=s3_client, run_id="run-1")

    assert (result.keys, result.new, result.changed, result.missing) == (2, 2, 0, 0)
    assert (result.fingerprinted, result.active, result.quarantined) == (2, 1, 1)
    assert result.ok and result.head_errors == {}
    after = files(settings)
    new = after["blog/new photo.png"]
    assert new["status"] == "active"
    assert new["media_id"].hex == media_id_for(settings.bucket, "blog/new photo.png").replace(
        "-", "")
    assert new["namespace"] == "blog" and new["original_filename"] == "new photo.png"
    assert new["file_hash"] == hashlib.sha256(new_png).hexdigest()
    assert new["content_type"] == "image/png" and (new["width"], new["height"]) == (64, 48)
    assert new["storage_class"] == "STANDARD"
    bad = after[pdf_as_jpg.key]
    assert bad["status"] == "quarantined"
    assert bad["quarantine_reason"] == "extension .jpg but content is application/pdf"
    # The others are exactly as the nightly run left them, b included.
    for key in ("site/a.png", "site/b.png"):
        assert after[key] == before[key]
    assert inventory_runs(settings)[-1] == ("keys", 2, 2, 0, 0, "run-1")


def test_a_second_ingest_of_the_same_keys_changes_nothing(
    settings: Settings, s3_client: Any
) -> None:
    upload(s3_client, settings, "x/one.png", png(4), "image/png")
    svg = hostile_file("svg-script")
    upload(s3_client, settings, svg.key, svg.data, svg.content_type)
    keys = ["x/one.png", svg.key, "x/never-existed.png"]
    first = stages.ingest_keys(settings, keys, client=s3_client)
    assert (first.new, first.fingerprinted, first.quarantined, first.gone) == (2, 2, 1, 1)
    state, runs = files(settings), inventory_runs(settings)
    assert state[svg.key]["quarantine_reason"] == "SVG contains <script>"
    assert "x/never-existed.png" not in state  # a 404 the catalog never knew is ignored

    second = stages.ingest_keys(settings, list(reversed(keys)) + keys, client=s3_client)

    assert (second.keys, second.new, second.changed, second.unchanged) == (3, 0, 0, 2)
    assert (second.fingerprinted, second.missing, second.gone) == (0, 0, 1)
    assert files(settings) == state
    assert inventory_runs(settings) == runs


def test_a_key_that_answers_404_becomes_missing_and_comes_back_when_uploaded_again(
    settings: Settings, s3_client: Any
) -> None:
    data = png(5)
    upload(s3_client, settings, "g/gone.png", data, "image/png")
    stages.ingest_keys(settings, ["g/gone.png"], client=s3_client)
    s3_client.delete_object(Bucket=settings.bucket, Key="g/gone.png")

    result = stages.ingest_keys(settings, ["g/gone.png"], client=s3_client)
    assert (result.gone, result.missing, result.fingerprinted) == (1, 1, 0)
    row = files(settings)["g/gone.png"]
    assert row["status"] == "missing" and row["missing_since"] is not None

    upload(s3_client, settings, "g/gone.png", data, "image/png")  # the same bytes again
    back = stages.ingest_keys(settings, ["g/gone.png"], client=s3_client)
    assert (back.reappeared, back.fingerprinted) == (1, 0)  # same ETag: the old fingerprint holds
    row = files(settings)["g/gone.png"]
    assert row["status"] == "active" and row["missing_since"] is None


def test_an_overwritten_object_is_fingerprinted_again(
    settings: Settings, s3_client: Any
) -> None:
    upload(s3_client, settings, "c/pic.png", png(6), "image/png")
    upload(s3_client, settings, "c/other.png", png(9), "image/png")
    stages.ingest_keys(settings, ["c/pic.png", "c/other.png"], client=s3_client)
    other = files(settings)["c/other.png"]
    replacement = png(7)
    upload(s3_client, settings, "c/pic.png", replacement, "image/png")

    result = stages.ingest_keys(settings, ["c/pic.png"], client=s3_client)

    assert (result.new, result.changed, result.fingerprinted, result.active) == (0, 1, 1, 1)
    after = files(settings)
    assert after["c/pic.png"]["file_hash"] == hashlib.sha256(replacement).hexdigest()
    assert after["c/pic.png"]["last_seen"] > after["c/pic.png"]["first_seen"]
    assert after["c/other.png"] == other


def test_keys_with_spaces_unicode_and_plus_are_real_keys(
    settings: Settings, s3_client: Any
) -> None:
    keys = ["u/Grüße aus Köln.png", "u/a+b=c.png", "u/100% 😀.png"]
    for i, key in enumerate(keys):
        upload(s3_client, settings, key, png(10 + i), "image/png")
    result = stages.ingest_keys(settings, keys, client=s3_client)
    assert (result.new, result.active) == (3, 3)
    assert set(files(settings)) == set(keys)


@pytest.mark.parametrize("keys", [[""], ["ok.png", 42], ["k" * 1025], "one-string.png"])
def test_bad_keys_are_refused_before_anything_is_done(
    settings: Settings, s3_client: Any, keys: Any
) -> None:
    with pytest.raises((ValueError, TypeError), match="keys"):
        stages.ingest_keys(settings, keys, client=s3_client)
    assert not Path(settings.catalog_location.metadata).exists()


def test_a_wrong_bucket_is_an_error_not_a_catalog_full_of_missing_objects(
    settings: Settings, s3_client: Any
) -> None:
    upload(s3_client, settings, "w/file.png", png(8), "image/png")
    stages.ingest_keys(settings, ["w/file.png"], client=s3_client)
    wrong = Settings(**{**settings.__dict__, "bucket": settings.bucket + "-nope"})
    with pytest.raises(RuntimeError, match="cannot be read"):
        stages.ingest_keys(wrong, ["w/file.png"], client=s3_client)
    assert files(settings)["w/file.png"]["status"] == "active"


def test_an_empty_list_does_nothing(settings: Settings, s3_client: Any) -> None:
    result = stages.ingest_keys(settings, [], client=s3_client)
    assert (result.keys, result.new, result.fingerprinted) == (0, 0, 0)
    assert files(settings) == {}
