"""Sample content for the demo: a small website that uses some of the corpus files.

It refers to files the ways real content does — CDN URLs in HTML ``src`` and ``srcset``, S3
virtual-hosted and path-style URLs, ``s3://`` URIs in JSON with escaped slashes, Markdown images,
percent-encoded keys, media-id shortcodes — spread over two content sources: a folder of pages and
a SQLite database standing in for a CMS. Everything else in the corpus is unused, so the demo can
show both a refused delete and a purge.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from media_pipeline.corpus import CorpusFile
from media_pipeline.records import media_id_for

DEMO_CDN = "https://cdn.example.com"


@dataclass(frozen=True)
class DemoContent:
    sources_file: Path
    referenced_keys: frozenset[str]


def _photos(files: Sequence[CorpusFile]) -> list[str]:
    return [f.key for f in files if f.kind == "photo"]


def write_demo_content(root: Path, files: Sequence[CorpusFile], bucket: str,
                       endpoint_url: str) -> DemoContent:
    """Write the pages, the CMS database and ``sources.yaml`` under ``root``."""
    photos = _photos(files)
    used = photos[:12]
    root.mkdir(parents=True, exist_ok=True)
    pages = root / "pages"
    pages.mkdir(exist_ok=True)

    def cdn(key: str) -> str:
        return f"{DEMO_CDN}/{quote(key)}"

    (pages / "index.html").write_text(
        "<!doctype html><html><head><title>Home</title>"
        f"<style>.hero {{ background: url('{cdn(used[0])}') }}</style></head><body>"
        f'<img src="{cdn(used[1])}" alt="summer">'
        f'<img srcset="{cdn(used[2])} 480w, {cdn(used[3])} 800w" alt="responsive">'
        f'<a href="https://{bucket}.s3.amazonaws.com/{quote(used[4])}?X-Amz-Expires=3600'
        '&amp;X-Amz-Signature=abc">download</a>'
        "</body></html>\n",
        encoding="utf-8",
    )
    (pages / "about.md").write_text(
        "# About us\n\n"
        f"![team photo]({endpoint_url.rstrip('/')}/{bucket}/{quote(used[5])})\n\n"
        f"See [the brochure](https://s3.eu-west-1.amazonaws.com/{bucket}/{quote(used[6])}).\n",
        encoding="utf-8",
    )
    (pages / "products.json").write_text(
        json.dumps({"products": [
            {"sku": "A-1", "image": f"{DEMO_CDN}/{quote(used[7])}"},
            {"sku": "B-2", "image": f"s3://{bucket}/{used[8]}"},
        ]}).replace("/", "\\/"),
        encoding="utf-8",
    )

    cms = root / "cms.sqlite"
    cms.unlink(missing_ok=True)
    with sqlite3.connect(cms) as db:
        db.execute("CREATE TABLE blog_posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        db.executemany("INSERT INTO blog_posts VALUES (?, ?, ?)", [
            (101, "Hello", f'<p>Our first post.</p><img src="{cdn(used[9])}">'),
            (102, "Gallery", f'[media id="{media_id_for(bucket, used[10])}"] and '
                             f'<img data-src="{cdn(used[11])}">'),
            (103, "Plain", "No pictures in this one."),
        ])
    db.close()

    sources = root / "sources.yaml"
    sources.write_text(
        "# The demo's content sources: a folder of pages and a CMS database.\n"
        "sources:\n"
        "  - name: website\n"
        "    type: files\n"
        f"    root: {json.dumps(str(pages))}\n"
        '    globs: ["**/*.html", "**/*.md", "**/*.json"]\n'
        "    content_type: webpage\n"
        "  - name: cms\n"
        "    type: sql\n"
        f"    url: {json.dumps('sqlite:///' + str(cms))}\n"
        "    table: blog_posts\n"
        "    columns: {content_id: id, text: [title, body]}\n"
        "    content_type: blog_post\n",
        encoding="utf-8",
    )
    return DemoContent(sources, frozenset(used))
