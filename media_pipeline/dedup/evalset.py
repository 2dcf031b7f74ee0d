"""The near-duplicate evaluation set, generated from real photos that ship in scikit-image.

Every photo is an *original*; each gets the edits people make in a media library (resize,
recompress, format change, brightness/contrast, greyscale, crops of 5–20 %, mirror, rotations of
2–10°, a text or logo watermark, letterbox padding), each encoded to a file as a CMS would store
it. Negatives are the other photos and two disjoint *regions* of each photo (its left and right
40 %): the two regions of one photo are different pictures even though they share colours and
subject. Labelled pairs:

- positive: an original and one of its edits;
- negative: two images of different origins, and the two regions of one photo.

Pairs of two edits of one original, and of a region with its own photo, are left unlabelled
(a 60 % crop is arguably a derived picture): they count neither way.

Beside the photos, *graphics* like the demo corpus's and like UI art, icons and banners
(gradients, a glow and flat shapes, made with :func:`media_pipeline.corpus.photo`): with sensor
noise, without it (flat), a *sibling* of each noisy one (the same gradient and glow, other
shapes), and text banners. All are negatives against each other and against the photos; each
gets five edits (resize, recompress, two crops, mirror), edit type ``graphic``, as positives.

scikit-image is a dev dependency; importing it is deferred to :func:`generate`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

# Photographs only: textures (grass, brick) and drawings have no "other region" that a person
# would call a different picture.
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina", "moon", "coins", "page", "text", "clock", "cell",
          "motorcycle")

EDIT_TYPES = ("resize", "recompress", "format", "brightness", "greyscale", "crop", "mirror",
              "rotate", "watermark", "letterbox", "graphic")
GRAPHICS = 24  # graphics: a quarter each noisy, siblings of those, flat, text banners
BANNERS = ("SUMMER SALE", "NEW ARRIVALS", "FREE SHIPPING", "BLACK FRIDAY", "BOOK NOW",
           "JOIN US", "LAST CHANCE", "HELLO SPRING")
_GRAPHICS_SEED = 2026  # not the demo corpus's seed (7): the demo stays an unseen check


@dataclass(frozen=True)
class EvalImage:
    name: str       # unique, e.g. "coffee/crop-10"
    origin: str     # the photo (or photo#region) it comes from
    role: str       # "original", "edit" or "region"
    edit: str | None  # one of EDIT_TYPES for edits
    data: bytes     # the encoded file
    content_type: str


def _photo(name: str) -> Image.Image:
    from skimage import data  # dev dependency

    array = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    if array.dtype != np.uint8:
        array = (array * 255).astype(np.uint8) if array.dtype == bool else array.astype(np.uint8)
    image = Image.fromarray(array)
    return image.convert("RGB") if image.mode not in ("RGB", "L") else image


def _encode(image: Image.Image, fmt: str = "JPEG", quality: int = 92) -> tuple[bytes, str]:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB" if image.mode != "L" else "L").save(out, "JPEG", quality=quality)
        return out.getvalue(), "image/jpeg"
    if fmt == "WEBP":
        image.save(out, "WEBP", quality=80)
        return out.getvalue(), "image/webp"
    image.save(out, "PNG")
    return out.getvalue(), "image/png"


def _crop(image: Image.Image, fraction: float, anchor: str) -> Image.Image:
    """Remove ``fraction`` of the area: trimmed from one side, or evenly around the centre."""
    w, h = image.size
    if anchor == "centre":
        keep = (1 - fraction) ** 0.5
        cw, ch = round(w * keep), round(h * keep)
        left, top = (w - cw) // 2, (h - ch) // 2
        return image.crop((left, top, left + cw, top + ch))
    cut_w, cut_h = round(w * fraction), round(h * fraction)
    box = {"left": (cut_w, 0, w, h), "right": (0, 0, w - cut_w, h),
           "top": (0, cut_h, w, h), "bottom": (0, 0, w, h - cut_h)}[anchor]
    return image.crop(box)


def _rotate(image: Image.Image, degrees: float, straighten: bool) -> Image.Image:
    """Rotate about the centre; ``straighten`` crops to the largest upright rectangle inside (what
    photo editors do), otherwise the corners are filled with black."""
    rotated = image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    if not straighten:
        return rotated
    w, h = image.size
    a = np.radians(abs(degrees))
    # Inscribed rectangle of the same aspect ratio inside the rotated frame.
    scale = 1 / (np.cos(a) + max(w / h, h / w) * np.sin(a))
    cw, ch = int(w * scale), int(h * scale)
    left, top = (w - cw) // 2, (h - ch) // 2
    return rotated.crop((left, top, left + cw, top + ch))


def _watermark_text(image: Image.Image) -> Image.Image:
    out = image.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(12, out.width // 12)
    font = ImageFont.load_default(size=size)
    text = "© Example Studio 2026"
    x, y = out.width // 20, out.height - size * 2
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 170), stroke_width=2,
              stroke_fill=(0, 0, 0, 120))
    return Image.alpha_composite(out, layer).convert("RGB")


def _watermark_logo(image: Image.Image, logo: Image.Image) -> Image.Image:
    out = image.convert("RGBA")
    side = max(16, min(out.size) // 5)
    mark = logo.convert("RGBA").resize((side, side), Image.Resampling.LANCZOS)
    alpha = mark.getchannel("A").point(lambda v: v * 3 // 4)
    mark.putalpha(alpha)
    out.alpha_composite(mark, (out.width - side - side // 4, side // 4))
    return out.convert("RGB")


def _letterbox(image: Image.Image, ratio: float, colour: tuple[int, int, int]) -> Image.Image:
    """Pad to ``ratio`` (width / height) with bars of ``colour``, as video frames and social
    media tiles do."""
    w, h = image.size
    size = (round(h * ratio), h) if w / h < ratio else (w, round(w / ratio))
    canvas = Image.new("RGB", size, colour)
    canvas.paste(image.convert("RGB"), ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


def _edits(image: Image.Image, logo: Image.Image) -> Iterator[tuple[str, str, Image.Image, str]]:
    """(edit type, label, image, format) for every edit of one photo."""
    w, h = image.size
    yield "resize", "resize-50", image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "JPEG"
    yield "resize", "resize-30", image.resize((max(1, w * 3 // 10), max(1, h * 3 // 10)),
                                              Image.Resampling.BILINEAR), "JPEG"
    for quality in (30, 60, 90):
        yield "recompress", f"quality-{quality}", image, f"JPEG:{quality}"
    yield "format", "png", image, "PNG"
    yield "format", "webp", image, "WEBP"
    yield "brightness", "brighter", ImageEnhance.Brightness(image).enhance(1.3), "JPEG"
    yield "brightness", "darker", ImageEnhance.Brightness(image).enhance(0.75), "JPEG"
    yield "brightness", "contrast", ImageEnhance.Contrast(image).enhance(1.4), "JPEG"
    yield "greyscale", "greyscale", ImageOps.grayscale(image), "JPEG"
    for fraction, anchor in ((0.05, "left"), (0.10, "centre"), (0.15, "bottom"),
                             (0.20, "centre")):
        yield "crop", f"crop-{round(fraction * 100)}-{anchor}", _crop(image, fraction, anchor), \
            "JPEG"
    yield "mirror", "mirror", ImageOps.mirror(image), "JPEG"
    for degrees, straighten in ((2, False), (-4, True), (6, False), (-8, True), (10, False)):
        yield "rotate", f"rotate{degrees:+d}", _rotate(image, degrees, straighten), "JPEG"
    yield "watermark", "watermark-text", _watermark_text(image), "JPEG"
    yield "watermark", "watermark-logo", _watermark_logo(image, logo), "JPEG"
    yield "letterbox", "letterbox-16x9", _letterbox(image, 16 / 9 if w / h < 16 / 9 else 1.0,
                                                    (0, 0, 0)), "JPEG"
    yield "letterbox", "letterbox-square-white", _letterbox(
        image, 1.0 if abs(w / h - 1) > 0.05 else 4 / 3, (255, 255, 255)), "JPEG"


def graphic(k: int) -> Image.Image:
    """The ``k``-th graphic of the set (deterministic): by ``k % 4`` a noisy gradient-and-shapes
    picture like the demo's, its sibling (same background, other shapes), a flat one, a banner.
    """
    from media_pipeline.corpus import banner, photo

    kind = k % 4
    if kind == 3:
        return banner(np.random.default_rng([_GRAPHICS_SEED, k]), BANNERS[k // 4 % len(BANNERS)])
    if kind == 1:  # the background of graphic k - 1, shapes of its own
        return photo(np.random.default_rng([_GRAPHICS_SEED, k - 1]),
                     shapes=np.random.default_rng([_GRAPHICS_SEED, k, 1]))
    return photo(np.random.default_rng([_GRAPHICS_SEED, k]), noise=6.0 if kind == 0 else 0.0)


def _graphic_edits(image: Image.Image) -> Iterator[tuple[str, Image.Image, str]]:
    w, h = image.size
    yield "resize-50", image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "JPEG"
    yield "quality-40", image, "JPEG:40"
    yield "crop-10-centre", _crop(image, 0.10, "centre"), "PNG"
    yield "crop-5-left", _crop(image, 0.05, "left"), "JPEG"
    yield "mirror", ImageOps.mirror(image), "PNG"


def fold(image: EvalImage) -> int:
    """Which half of the two-fold cross-validation an image belongs to (0 or 1): by photo,
    and by group of four graphics (one of each kind, so a graphic and its sibling stay in one
    half and each half has every kind)."""
    base = image.origin.partition("#")[0]
    if base.startswith("graphic-"):
        return int(base.rpartition("-")[2]) // 4 % 2
    return PHOTOS.index(base) % 2


def generate(photos: tuple[str, ...] = PHOTOS, graphics: int = GRAPHICS) -> list[EvalImage]:
    """The whole set for ``photos``: originals, their edits and two regions of each; then
    ``graphics`` graphics and their edits."""
    out: list[EvalImage] = []
    if photos:
        out.extend(_photo_images(photos))
    for k in range(graphics):
        origin = f"graphic-{k:02d}"
        picture = graphic(k)
        encoded, ctype = _encode(picture, "PNG" if k % 4 == 2 else "JPEG", 92)
        out.append(EvalImage(f"{origin}/original", origin, "original", None, encoded, ctype))
        for label, image, fmt in _graphic_edits(picture):
            kind, _, quality = fmt.partition(":")
            encoded, ctype = _encode(image, kind, int(quality) if quality else 90)
            out.append(EvalImage(f"{origin}/{label}", origin, "edit", "graphic", encoded, ctype))
    return out


def _photo_images(photos: tuple[str, ...]) -> list[EvalImage]:
    from skimage import data  # dev dependency

    logo = Image.fromarray(data.logo())
    out: list[EvalImage] = []
    for name in photos:
        photo = _photo(name)
        encoded, ctype = _encode(photo, "JPEG", 95)
        out.append(EvalImage(f"{name}/original", name, "original", None, encoded, ctype))
        for edit, label, image, fmt in _edits(photo, logo):
            kind, _, quality = fmt.partition(":")
            encoded, ctype = _encode(image, kind, int(quality) if quality else 90)
            out.append(EvalImage(f"{name}/{label}", name, "edit", edit, encoded, ctype))
        w, h = photo.size
        for side, box in (("left", (0, 0, w * 2 // 5, h)), ("right", (w * 3 // 5, 0, w, h))):
            encoded, ctype = _encode(photo.crop(box), "JPEG", 92)
            out.append(EvalImage(f"{name}/region-{side}", f"{name}#{side}", "region", None,
                                 encoded, ctype))
    return out


def label(a: EvalImage, b: EvalImage) -> bool | None:
    """True for a positive pair, False for a negative one, None when unlabelled."""
    if a.origin == b.origin:
        roles = {a.role, b.role}
        if roles == {"original", "edit"}:
            return True
        return None  # two edits of one original
    if a.origin.partition("#")[0] == b.origin.partition("#")[0]:
        # A region and its own photo (or an edit of it): a large crop, left out. Two regions
        # of one photo: different pictures.
        return False if a.role == b.role == "region" else None
    return False


NEGATIVES = ("negatives", "graphic-negatives")


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(images: list[EvalImage], found: set[tuple[int, int]]) -> dict[str, Scores]:
    """Precision, recall and F1 per edit type, for the pairs (indices into ``images``, i < j)
    that a method reported. A false pair counts against the edit type of each edit in it;
    false pairs between regions and originals count under "negatives" (photos) or
    "graphic-negatives" (when a graphic is in the pair); "all" counts each labelled pair once."""
    scores = {edit: Scores() for edit in (*EDIT_TYPES, *NEGATIVES, "all")}
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            truth = label(images[i], images[j])
            if truth is None:
                continue
            hit = (i, j) in found
            buckets = {x.edit for x in (images[i], images[j]) if x.edit} or {
                "graphic-negatives" if "graphic-" in images[i].origin + images[j].origin
                else "negatives"}
            for bucket in (*buckets, "all"):
                s = scores[bucket]
                if truth and hit:
                    s.tp += 1
                elif truth:
                    s.fn += 1
                elif hit:
                    s.fp += 1
    return scores
