"""`media-pipeline report`: the duplicates page from a real catalog, with hostile keys, checked
as HTML and rendered in a real browser (Debian's chromium, headless)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from media_pipeline.catalog import Catalog
from media_pipeline.cli import main as cli
from media_pipeline.dedup import evalset
from media_pipeline.defs.execution import run_assets
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket, make_client
from media_pipeline_tests.fixtures_s3 import dagster_resources, env_for

# Keys are chosen by whoever uploads: markup, quotes and ampersands must come out as text.
SCRIPT_KEY = 'site/<script>alert("k")</script>.jpg'
QUOTE_KEY = "site/copy \"quoted\" 'x' onmouseover=alert(1).jpg"
KEEPER_KEY = "blog/a&b <b>kept</b>.jpg"
MIRROR_KEY = "site/mirror-<img src=x onerror=alert(2)>.jpg"
SVG_KEY = "evil/<svg onload=alert(3)>.svg"
HOSTILE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(4)</script></svg>'
REFERENCE_ID = '"><script>alert(5)</script>'


@dataclass
class Page(HTMLParser):
    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def of(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag
                and (cls is None or cls in (a.get("class") or "").split())]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def case(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A catalog with one exact group (three copies, one referenced), a mirror image of it and a
    quarantined SVG, all under hostile keys; the report written by the CLI."""
    tmp = tmp_path_factory.mktemp("report")
    settings = Settings(endpoint_url=s3_endpoint, access_key_id="testing",
                        secret_access_key="testing", bucket=f"test-{uuid.uuid4().hex[:16]}",
                        home=tmp / "home", fingerprint_workers=4,
                        near_duplicate_embeddings=False)
    client = make_client(settings)
    ensure_bucket(client, settings.bucket, settings.region)
    photo = evalset.generate(("coffee",))[0].data
    mirror = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(photo))).save(mirror, "JPEG", quality=90)
    for key, data, ctype in ((SCRIPT_KEY, photo, "image/jpeg"), (QUOTE_KEY, photo, "image/jpeg"),
                             (KEEPER_KEY, photo, "image/jpeg"),
                             (MIRROR_KEY, mirror.getvalue(), "image/jpeg"),
                             (SVG_KEY, HOSTILE_SVG, "image/svg+xml")):
        client.put_object(Bucket=settings.bucket, Key=key, Body=data, ContentType=ctype)
    run = run_assets(instance=dg.DagsterInstance.ephemeral(),
                     resources=dagster_resources(settings))
    assert run.success, run.failure
    with Catalog.open(settings.catalog_location) as c:
        c.references.add_reference(media_id_for(settings.bucket, KEEPER_KEY), "webpage",
                                   REFERENCE_ID, "ops")
    out = tmp / "out" / "report.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out)], env=env_for(settings))
    assert result.exit_code == 0, result.output
    yield {"settings": settings, "client": client, "run": run, "out": out,
           "output": result.output, "tmp": tmp}


def test_the_report_shows_groups_pairs_and_quarantine_with_every_key_escaped(
    case: dict[str, Any]
) -> None:
    out: Path = case["out"]
    assert f"report written to {out}" in " ".join(case["output"].split())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # every tenant's keys: the owner only
    html = out.read_text(encoding="utf-8")
    page = parse(html)

    # No markup from a key, a reference id or the SVG reached the page as markup.
    assert "script" not in [t for t, _ in page.tags]
    assert [t for t, _ in page.tags].count("svg") == 1  # the storage chart, ours
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    for raw in ('<script>alert("k")</script>', "<img src=x", "<b>kept</b>", "<svg onload"):
        assert raw not in html
    text = "".join(page.text)
    for key in (SCRIPT_KEY, QUOTE_KEY, KEEPER_KEY, MIRROR_KEY, SVG_KEY, REFERENCE_ID):
        assert key.rpartition("/")[2] in text, key
    assert "testing" not in html and case["settings"].endpoint_url not in html  # no settings

    # One exact group: three copies, the referenced one suggested as the keeper.
    groups = page.of("div", "group")
    assert len(groups) == 1
    start = html.index('class="card group"')
    group_html = html[start:html.index("</ul>", start)]
    keeper_line = group_html[group_html.index("keep</span>") - 300:group_html.index("keep</span>")]
    assert "a&amp;b &lt;b&gt;kept&lt;/b&gt;.jpg" in keeper_line
    # One near pair (the mirror, found by the mirror hash), side by side, once for the three
    # copies it pairs with.
    near = page.of("div", "near")
    assert len(near) == 1 and "phash-mirror" in text and "and 2 more pair(s)" in text
    # Thumbnails: one for the group, two for the pair; all data: JPEGs, nothing for the SVG.
    images = page.of("img", "thumb")
    assert len(images) == 3
    assert all((a["src"] or "").startswith("data:image/jpeg;base64,") for a in images)
    quarantined = html[html.index('id="quarantine"'):html.index('id="storage"')]
    assert "quarantined: no preview" in quarantined and "<img" not in quarantined
    assert "script" in quarantined.lower()  # the reason names what was found
    # The Content-Security-Policy forbids scripts even if something slipped through.
    csp = [a for a in page.of("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


def test_thumbnails_are_made_once_and_the_dagster_previews_list_the_top_rows(
    case: dict[str, Any]
) -> None:
    settings: Settings = case["settings"]
    with Catalog.open(settings.catalog_location) as c:
        made = c.con.execute("SELECT count(*), count(jpeg) FROM thumbnails").fetchone()
    assert made == (2, 2)  # per content hash: the photo and its mirror
    again = CliRunner().invoke(cli, ["report", "--out", str(case["tmp"] / "again.html"),
                                     "--json"], env=env_for(settings))
    assert again.exit_code == 0, again.output
    assert '"thumbnails_made": 0' in again.output and '"thumbnails": 2' in again.output

    meta = case["run"].materialized
    groups = meta["duplicate_groups"]["top_groups"]
    assert [r.data["copies"] for r in groups.records] == [3]
    assert {col.name for col in groups.schema.columns} >= {"canonical_key", "wasted_bytes"}
    pairs = meta["near_duplicates"]["top_pairs"]
    assert len(pairs.records) == 3  # the mirror with each copy
    for record in pairs.records:
        row = record.data
        assert row["method"] == "phash-mirror" and MIRROR_KEY in (row["key_a"], row["key_b"])
    assert "embedding" in meta["near_duplicates"]["skipped"]


def test_report_failure_is_one_line(tmp_path: Path, case: dict[str, Any]) -> None:
    settings: Settings = case["settings"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["report", "--out", str(blocker / "r.html")],
                                env=env_for(settings))
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (sudo when not root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (no apt-get, "
                    "not root and no sudo)")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(prefix + command, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            pytest.skip(f"could not install chromium: {' '.join(command)}: "
                        f"{(done.stderr or done.stdout).strip()[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no chromium command is on PATH")
    return found


def test_a_real_browser_renders_the_groups_and_thumbnails(
    case: dict[str, Any], chromium: str, tmp_path: Path
) -> None:
    url = case["out"].as_uri()
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = parse(dom.stdout)
    assert len(page.of("div", "group")) == 1 and len(page.of("div", "near")) == 1
    assert len(page.of("img", "thumb")) == 3
    assert not [t for t, _ in page.tags if t == "script"]

    shot = tmp_path / "report.png"
    done = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1600,1000", url],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1600, 1000)
    # The photos' thumbnails were decoded and painted: a page of text and flat boxes has a
    # few hundred colours at most; three photo thumbnails bring thousands.
    colours = image.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 2000, len(colours)


def test_the_suggested_keeper_is_never_a_quarantined_copy() -> None:
    from media_pipeline.report.html import suggested_keeper

    def member(refs: int, status: str) -> dict[str, Any]:
        return {"reference_count": refs, "file_size": 10, "exif_fields": 0, "status": status}

    assert suggested_keeper([member(0, "quarantined"), member(0, "active")]) == 1
    assert suggested_keeper([member(5, "quarantined"), member(1, "active"),
                             member(2, "active")]) == 2
    assert suggested_keeper([member(1, "quarantined")]) == -1


def test_bidirectional_controls_in_a_key_are_shown_not_obeyed() -> None:
    from media_pipeline.report.html import _visible_controls

    shown = _visible_controls("acme/invoice_\u202egnp.exe")
    assert "\u202e" not in shown and shown == "acme/invoice_\\u202egnp.exe"
    assert _visible_controls("blog/café.png") == "blog/café.png" and _visible_controls(3) == 3
