"""Near-duplicates people recognise, end to end: evaluation-set images in the embedded S3, the
real pipeline stages and catalog, then the numbers and methods the catalog holds."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from media_pipeline import stages
from media_pipeline.catalog import Catalog
from media_pipeline.dedup import detect, evalset
from media_pipeline.dedup.features import decode, hash_features, trim_borders
from media_pipeline.fingerprint.metadata import InspectLimits
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings

# Photos whose two regions no method should confuse, and whose edits are all within reach.
PHOTOS = ("astronaut", "camera", "motorcycle")


@pytest.fixture(scope="module")
def images() -> list[evalset.EvalImage]:
    return evalset.generate(PHOTOS, graphics=0)


def key_of(image: evalset.EvalImage) -> str:
    return f"eval/{image.name}.{image.content_type.rpartition('/')[2]}"


def ingest(settings: Settings, client: Any, images: list[evalset.EvalImage]) -> Any:
    for image in images:
        client.put_object(Bucket=settings.bucket, Key=key_of(image), Body=image.data,
                          ContentType=image.content_type)
    stages.take_inventory(settings, client)
    stages.commit_inventory(settings)
    stages.fingerprint_pending(settings, client)
    stages.rebuild_duplicates(settings)
    return stages.rebuild_near_duplicates(settings, client)


def found_pairs(settings: Settings, images: list[evalset.EvalImage]
                ) -> dict[tuple[int, int], tuple[str, float]]:
    index = {media_id_for(settings.bucket, key_of(x)): k for k, x in enumerate(images)}
    with Catalog.open(settings.catalog_location) as c:
        rows = c.con.execute("SELECT media_id_a::VARCHAR, media_id_b::VARCHAR, method, "
                             "method_distance FROM near_duplicates").fetchall()
    out = {}
    for a, b, method, distance in rows:
        i, j = sorted((index[a], index[b]))
        out[(i, j)] = (method, distance)
    return out


def test_crops_mirrors_rotations_watermarks_and_letterbox_are_found(
    settings: Settings, s3_client: Any, images: list[evalset.EvalImage]
) -> None:
    settings = replace(settings, near_duplicate_embeddings=True)
    stats = ingest(settings, s3_client, images)
    assert stats.skipped == [] and stats.embedder and stats.feature_errors == 0
    assert stats.features_computed == len({x.data for x in images})  # once per content

    pairs = found_pairs(settings, images)
    scores = evalset.evaluate(images, set(pairs))
    overall = scores["all"]
    assert overall.recall >= 0.95 and overall.precision >= 0.98, overall
    for edit in ("crop", "mirror", "rotate", "watermark", "letterbox"):
        assert scores[edit].recall >= 0.9, (edit, scores[edit])
    assert scores["negatives"].fp == 0  # the two regions of a photo are not paired

    # Each pair keeps the method that found it and a distance in that method's unit.
    by_name = {x.name: k for k, x in enumerate(images)}
    for photo in PHOTOS:
        original = by_name[f"{photo}/original"]
        mirror = tuple(sorted((original, by_name[f"{photo}/mirror"])))
        assert pairs[mirror][0] == "phash-mirror"  # type: ignore[index]
        resized = tuple(sorted((original, by_name[f"{photo}/resize-50"])))
        assert pairs[resized][0] == "phash"  # type: ignore[index]
        crop = tuple(sorted((original, by_name[f"{photo}/crop-20-centre"])))
        method, distance = pairs[crop]  # type: ignore[index]
        assert method == "embedding" and 0 <= distance <= 1 - detect.MIN_COSINE

    # A second run reads no picture again: features are kept per content hash.
    again = stages.rebuild_near_duplicates(settings, s3_client)
    assert again.features_computed == 0 and again.pairs == stats.pairs


def test_distinct_graphics_of_one_style_are_not_paired_but_their_copies_are(
    settings: Settings, s3_client: Any
) -> None:
    """Gradients with flat shapes (like the demo's pictures, UI art, banners) all embed alike;
    two different ones, even with the same background or the same banner style, are not the same
    picture, while a resized, recompressed, cropped or mirrored copy of one is."""
    settings = replace(settings, near_duplicate_embeddings=True)
    images = evalset.generate((), graphics=8)  # two each: noisy, sibling, flat, banner
    stats = ingest(settings, s3_client, images)
    assert stats.skipped == [] and stats.feature_errors == 0

    pairs = found_pairs(settings, images)
    across = [(images[i].name, images[j].name, method) for (i, j), (method, _) in pairs.items()
              if images[i].origin != images[j].origin]
    assert across == []
    by_name = {x.name: k for k, x in enumerate(images)}
    for k in range(8):
        original = by_name[f"graphic-{k:02d}/original"]
        resized = tuple(sorted((original, by_name[f"graphic-{k:02d}/resize-50"])))
        assert resized in pairs, images[original].name
    scores = evalset.evaluate(images, set(pairs))
    assert scores["graphic"].recall >= 0.9 and scores["graphic-negatives"].fp == 0, scores


def test_colour_distance_is_a_perceptual_difference_either_way_round() -> None:
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    half = red.copy()
    half.paste((30, 30, 200), (0, 0, 32, 64))  # left half blue
    colours = np.stack([hash_features(im).colours
                        for im in (red, half, ImageOps.mirror(half), red.convert("L"))])
    i, j = np.array([0, 1, 0]), np.array([1, 2, 3])
    distance = detect.colour_distances(colours, i, j)
    assert distance[1] < 1e-3  # a mirror image has the same colours, mirrored
    assert distance[0] > 2 * detect.MAX_COLOUR  # half the picture changed from red to blue
    assert distance[2] > detect.MAX_COLOUR  # a greyscale copy: the hashes' business
    assert list(detect.colours_agree(colours, i, j)) == [False, True, False]


def test_the_catalog_hash_search_finds_what_brute_force_finds(
    settings: Settings, s3_client: Any, images: list[evalset.EvalImage]
) -> None:
    """Banded SQL search (hash methods only, as without the ai-vision extra) against the same
    rule applied to every pair in numpy."""
    stats = ingest(settings, s3_client, images)  # embeddings off in this fixture
    assert stats.by_method["embedding"] == 0
    assert any("embedding" in reason and "turned off" in reason for reason in stats.skipped)

    limits = InspectLimits()
    with Catalog.open(settings.catalog_location) as c:
        stored = dict(c.con.execute("SELECT key, phash FROM media_files").fetchall())
    phash = np.array([stored[key_of(x)] for x in images], dtype=np.uint64)
    features = [hash_features(decode(x.data, limits)) for x in images]
    expected = detect.hash_pairs(phash, np.array([f.trimmed for f in features], np.uint64),
                                 np.array([f.mirrored for f in features], np.uint64),
                                 settings.near_duplicate_distance)
    found = found_pairs(settings, images)
    assert {k: v[0] for k, v in found.items()} == {
        (i, j): v[0] for (i, j), v in expected.items()
        if images[i].data != images[j].data}  # identical files are duplicate_groups' business
    # The hash methods alone: mirrors and letterboxes, not most crops and rotations.
    scores = evalset.evaluate(images, set(found))
    assert scores["mirror"].recall == 1.0 and scores["letterbox"].recall >= 0.5
    assert scores["all"].precision == 1.0


def test_without_the_ai_extra_the_hash_methods_run_and_say_what_was_skipped(
    settings: Settings, s3_client: Any
) -> None:
    """A process where torch cannot be imported (the extra is not installed)."""
    photo = Image.open(io.BytesIO(evalset.generate(("coffee",))[0].data))
    for key, image in (("a.jpg", photo), ("b.jpg", ImageOps.mirror(photo))):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=out.getvalue())
    code = f"""
import sys
sys.modules["torch"] = None  # what a missing package looks like to an import
from media_pipeline import stages
from media_pipeline.settings import Settings
s = Settings(endpoint_url={settings.endpoint_url!r}, access_key_id="testing",
             secret_access_key="testing", bucket={settings.bucket!r},
             home=__import__("pathlib").Path({str(settings.home)!r}))
from media_pipeline.storage import make_client
client = make_client(s)
stages.take_inventory(s, client); stages.commit_inventory(s)
stages.fingerprint_pending(s, client); stages.rebuild_duplicates(s)
stats = stages.rebuild_near_duplicates(s, client)
print(stats.by_method["phash-mirror"], "|", "; ".join(stats.skipped))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    mirrors, _, skipped = done.stdout.strip().rpartition("\n")[2].partition(" | ")
    assert mirrors == "1"
    assert skipped.startswith("embedding (crops, rotations, watermarks)") and "ai-vision" in skipped


def test_trim_borders_undoes_letterbox_bars() -> None:
    photo = Image.open(io.BytesIO(evalset.generate(("chelsea",))[0].data)).convert("RGB")
    barred = Image.new("RGB", (photo.width, photo.height + 120), (0, 0, 0))
    barred.paste(photo, (0, 60))
    trimmed = trim_borders(barred)
    assert abs(trimmed.height - photo.height) <= 2 and trimmed.width == photo.width
    flat = Image.new("RGB", (50, 40), (200, 200, 200))
    assert trim_borders(flat).size == flat.size  # nothing left to keep: not trimmed


def test_embedding_search_inverted_file_agrees_with_exact() -> None:
    rng = np.random.default_rng(3)
    base = np.abs(rng.normal(size=(3000, 64))).astype(np.float32)
    near = base[:300] + 0.2 * np.abs(rng.normal(size=(300, 64))).astype(np.float32)
    vectors = np.concatenate([base, near])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = detect._exact(vectors, np.arange(len(vectors)), 0.97)
    inverted = detect._inverted_file(vectors, 0.97)
    want = set(zip(exact[0].tolist(), exact[1].tolist(), strict=True))
    got = set(zip(inverted[0].tolist(), inverted[1].tolist(), strict=True))
    assert want and got <= want
    assert len(got & want) / len(want) >= 0.95


def test_pictures_matching_everything_are_left_out() -> None:
    """Sixty near-identical blank frames would be 1,770 pairs that say nothing."""
    i = np.array([a for a in range(60) for b in range(a + 1, 60)] + [60])
    j = np.array([b for a in range(60) for b in range(a + 1, 60)] + [61])
    dropped = detect.crowded(i, j, 62)
    assert dropped[:-1].all() and not dropped[-1]


def test_unrelated_photos_give_no_pairs_and_no_failure(settings: Settings, s3_client: Any
                                                        ) -> None:
    """Two ordinary photos with embeddings on: no candidate pair at all is zero pairs, not a
    failed asset (the layout and colour checks over an empty candidate list)."""
    settings = replace(settings, near_duplicate_embeddings=True)
    originals = [x for x in evalset.generate(("astronaut", "coffee"), graphics=0)
                 if x.name.endswith("/original")]
    assert len(originals) == 2
    stats = ingest(settings, s3_client, originals)
    assert stats.feature_errors == 0 and stats.pairs == 0 and found_pairs(settings, originals) == {}


def test_an_object_s3_cannot_give_now_is_tried_again_next_run(
    settings: Settings, s3_client: Any
) -> None:
    """A read error (the object gone for a moment, a 503) is not remembered like a picture that
    cannot be decoded: the next run computes its features and thumbnail."""
    image = [x for x in evalset.generate(("camera",), graphics=0)
             if x.name.endswith("/original")][0]
    key = key_of(image)
    s3_client.put_object(Bucket=settings.bucket, Key=key, Body=image.data,
                         ContentType=image.content_type)
    stages.take_inventory(settings, s3_client)
    stages.commit_inventory(settings)
    stages.fingerprint_pending(settings, s3_client)
    s3_client.delete_object(Bucket=settings.bucket, Key=key)
    first = stages.rebuild_near_duplicates(settings, s3_client)
    assert first.feature_errors == 1 and first.features_computed == 0
    s3_client.put_object(Bucket=settings.bucket, Key=key, Body=image.data,
                         ContentType=image.content_type)
    again = stages.rebuild_near_duplicates(settings, s3_client)
    assert again.features_computed == 1 and again.feature_errors == 0
    with Catalog.open(settings.catalog_location) as c:
        rows = c.con.execute("SELECT count(*) FILTER (WHERE error IS NOT NULL), count(*) "
                             "FROM image_features").fetchone()
    assert rows == (0, 1)
