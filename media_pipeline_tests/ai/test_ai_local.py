"""The local AI backend end to end: real photographs (scikit-image's data module), a text banner
and a PDF, stored in the embedded S3, catalogued, analysed and applied to the catalog."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

skdata = pytest.importorskip("skimage.data")
pytest.importorskip("torch")
pytest.importorskip("rapidocr")

from PIL import Image  # noqa: E402

from media_pipeline.ai.runner import analyze_batch  # noqa: E402
from media_pipeline.ai.service import MediaAIService  # noqa: E402
from media_pipeline.catalog import Catalog, open_catalog  # noqa: E402
from media_pipeline.corpus import BANNER_TEXTS, banner, pdf_document  # noqa: E402
from media_pipeline.settings import Settings  # noqa: E402
from media_pipeline.stages import (  # noqa: E402
    commit_inventory,
    fingerprint_pending,
    take_inventory,
)


def jpeg(array: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def service() -> MediaAIService:
    return MediaAIService(Settings())  # local backend: no AI_SERVICE_URL


def test_photos_banner_and_pdf_get_tags_titles_and_text(
    settings: Settings, s3_client: Any, service: MediaAIService
) -> None:
    import numpy as np

    files = {
        "site/cat.jpg": jpeg(skdata.chelsea()),
        "site/coffee.jpg": jpeg(skdata.coffee()),
        "site/cat-copy.jpg": jpeg(skdata.chelsea()),
        "blog/banner.jpg": jpeg(np.asarray(banner(np.random.default_rng(1), BANNER_TEXTS[0]))),
        "shop/terms.pdf": pdf_document([["Terms of delivery", "Parcels ship within two days"]]),
    }
    for key, data in files.items():
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=data)
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    fingerprint_pending(settings, s3_client)

    stats = analyze_batch(settings, s3_client, service, lambda: open_catalog(settings))
    assert stats.analysed == 4  # the copy of the cat shares its content hash
    assert stats.failed == 0 and stats.deferred == 0
    with Catalog.open(settings.catalog_location) as c:
        rows = {r[0]: r[1:] for r in c.con.execute(
            "SELECT key, ai_title, ai_generated_tags::VARCHAR, ai_extracted_text, "
            "ai_labels::VARCHAR, ai_scores::VARCHAR FROM media_files").fetchall()}

    title, tags, text, labels, scores = rows["site/cat.jpg"]
    assert "cat" in json.loads(tags)
    assert any("cat" in label["name"] for label in json.loads(labels))
    top_label = max(json.loads(labels), key=lambda label: label["confidence"])["name"]
    assert title is not None and title.lower() == top_label.lower()  # the rule's fallback
    assert rows["site/cat-copy.jpg"][:2] == (title, tags)
    assert json.loads(scores)["moderation"]["nsfw"] < 0.2

    coffee_tags = json.loads(rows["site/coffee.jpg"][1])
    assert {"coffee", "drink", "cup"} & set(coffee_tags), coffee_tags

    title, tags, text, *_ = rows["blog/banner.jpg"]
    assert text is not None and BANNER_TEXTS[0] in text.upper()
    assert title is not None and title.upper() == BANNER_TEXTS[0]

    title, tags, text, *_ = rows["shop/terms.pdf"]
    assert text is not None and "Parcels ship within two days" in text


def test_the_complete_workflow_reports_each_finding_with_its_confidence(
    service: MediaAIService,
) -> None:
    result = service.analyze_file_complete_workflow(jpeg(skdata.astronaut()), "astronaut.jpg",
                                                    "site")
    assert result["namespace_id"] == "site"
    assert result["faces"] and all(0 < f["confidence"] <= 1 for f in result["faces"])
    cat_result = service.analyze_file_complete_workflow(jpeg(skdata.chelsea()), "cat.jpg")
    assert cat_result["tags"] and all(0 < t["confidence"] <= 1 for t in cat_result["tags"])
    assert cat_result["title_detail"]["confidence"] > 0
    assert set(result["moderation"]) >= {"nsfw"}

    strict = MediaAIService(Settings(), backend=service.backend,
                            thresholds=type(service.thresholds)(0.7, {"efficientnet-lite0": 0.99,
                                                                      "minilm-tags": 0.99}))
    cat = strict.analyze_file_complete_workflow(jpeg(skdata.chelsea()), "cat.jpg")
    assert cat["tags"] == [] and cat["labels"]  # raw labels kept, nothing passes 0.99


def test_a_corrupt_image_is_reported_not_crashed_on(service: MediaAIService) -> None:
    data = jpeg(skdata.chelsea())
    result = service.analyze_file_complete_workflow(data[: len(data) // 3], "broken.jpg")
    assert result["errors"]
    assert result["tags"] == [] and result["title"] is None
