"""`media-pipeline report`: one static HTML page to review duplicates with thumbnails.

An operator's view of the whole catalog (like ``health`` and ``query``): exact duplicate groups
with their wasted bytes and a suggested keeper, near-duplicate pairs side by side with distance
and method, quarantined files with their reason, storage by namespace and type as a chart, and
where each file is used. No server: thumbnails are embedded as ``data:`` URIs, the page has no
script and forbids any by its Content-Security-Policy.

Keys, namespaces and reference ids are chosen by whoever uploads or writes content, so every value
goes through Jinja2's autoescaping (attributes included); the page prints no setting, credential
or endpoint. Thumbnails come from the catalog's cache (made from decoded pixels, once per content
hash); quarantined files get a placeholder and their reason, never a picture.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment

from media_pipeline.settings import Settings

MAX_GROUPS = 200
MAX_PAIRS = 200
MAX_QUARANTINED = 500
MAX_CHART_BARS = 24


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    groups: int
    near_pairs: int
    quarantined: int
    thumbnails: int
    thumbnails_made: int


def suggested_keeper(members: list[dict[str, Any]]) -> int:
    """Index of the member to keep: the most referenced, then the largest, then the one with the
    most EXIF fields; on a tie the first (the canonical member comes first). Never a quarantined
    member; -1 when every member is quarantined."""
    best = -1
    for k, m in enumerate(members):
        if m.get("status") == "quarantined":
            continue
        score = (m["reference_count"], m.get("file_size", 0), m["exif_fields"])
        top = members[best] if best >= 0 else None
        if top is None or score > (top["reference_count"], top.get("file_size", 0),
                                   top["exif_fields"]):
            best = k
    return best


def gather(catalog: Any) -> dict[str, Any]:
    """Everything the page shows, read from the catalog (no S3 access)."""
    groups = catalog.dedup.top_duplicate_groups(MAX_GROUPS)
    for g in groups:
        for m in g["members"]:
            m["file_size"] = g["file_size"]
        g["keeper"] = suggested_keeper(g["members"])
    # Pairs are between files; copies of one content would repeat a card: one per content pair.
    by_content: dict[frozenset[str], dict[str, Any]] = {}
    for pair in catalog.dedup.top_near_duplicates(MAX_PAIRS * 4):
        content = frozenset((pair["a"]["file_hash"], pair["b"]["file_hash"]))
        if content in by_content:
            by_content[content]["more"] += 1
        elif len(by_content) < MAX_PAIRS:
            by_content[content] = {**pair, "more": 0}
    pairs = list(by_content.values())
    return {
        "counts": catalog.dedup.duplicate_counts(),
        "groups": groups,
        "pairs": pairs,
        "quarantined": catalog.reports.quarantined_files(MAX_QUARANTINED),
        "usage": catalog.reports.storage_usage(),
    }


def shown_hashes(data: dict[str, Any]) -> set[str]:
    hashes = {g["file_hash"] for g in data["groups"]}
    for p in data["pairs"]:
        hashes |= {p["a"]["file_hash"], p["b"]["file_hash"]}
    return {h for h in hashes if h}


# Bidirectional controls in a key (U+202E ...) would make "invoice_\u202egnp.exe" read as a .png:
# every printed value shows them as escapes instead.
_BIDI = {cp: f"\\u{cp:04x}" for cp in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                      *range(0x2066, 0x206A))}


def _visible_controls(value: Any) -> Any:
    return value.translate(_BIDI) if isinstance(value, str) else value


def render(data: dict[str, Any], thumbnails: dict[str, bytes], *, bucket: str,
           generated: datetime | None = None) -> str:
    """The page as a string; ``thumbnails`` maps content hash → JPEG bytes."""
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                      finalize=_visible_controls)
    env.filters["size"] = _size
    env.filters["uses"] = _uses
    urls = {h: "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
            for h, jpeg in thumbnails.items()}
    return env.from_string(_TEMPLATE).render(
        bucket=bucket, generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        thumb=urls, chart=_chart(data["usage"]), **data)


def write_report(settings: Settings, out: Path, client: Any,
                 open_catalog: Callable[[Settings], Any]) -> ReportSummary:
    """Make the thumbnails the page needs (cached in the catalog), then write ``out``
    atomically, readable by its owner only (it lists every tenant's files)."""
    from media_pipeline.dedup.stage import ensure_thumbnails

    with open_catalog(settings) as catalog:
        data = gather(catalog)
    made = ensure_thumbnails(settings, client, open_catalog, shown_hashes(data))
    with open_catalog(settings) as catalog:
        thumbnails = catalog.dedup.thumbnails_for(sorted(shown_hashes(data)))
    page = render(data, thumbnails, bucket=settings.bucket)
    out = out.expanduser().absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ReportSummary(path=out, groups=len(data["groups"]), near_pairs=len(data["pairs"]),
                         quarantined=len(data["quarantined"]), thumbnails=len(thumbnails),
                         thumbnails_made=made)


def _size(value: int | float) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _uses(referenced_in: Any) -> list[str]:
    """``{"webpage": ["123"]}`` → ``["webpage 123"]`` (plain strings: escaped by the page)."""
    if not isinstance(referenced_in, dict):
        return []
    out = []
    for content_type, ids in sorted(referenced_in.items()):
        ids = ids if isinstance(ids, list) else [ids]
        out.append(f"{content_type} " + ", ".join(str(i) for i in ids[:20])
                   + (f" (+{len(ids) - 20})" if len(ids) > 20 else ""))
    return out


def _chart(usage: list[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars: bytes per (namespace, type), largest first; geometry for the SVG."""
    rows = sorted(usage, key=lambda r: -r["bytes"])[:MAX_CHART_BARS]
    top = max((r["bytes"] for r in rows), default=0) or 1
    bars = [{"label": f"{r['namespace']} · {r['content_type']}", "files": r["files"],
             "bytes": r["bytes"], "y": 8 + 26 * k, "width": max(2, round(560 * r["bytes"] / top))}
            for k, r in enumerate(rows)]
    return {"bars": bars, "height": 16 + 26 * len(bars), "more": max(0, len(usage) - len(rows))}


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>media-pipeline: duplicates report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
.summary span { display: inline-block; margin-right: 24px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px; width: 360px; }
.pair { display: flex; gap: 10px; }
.side { flex: 1; min-width: 0; }
.thumb { width: 160px; height: 160px; object-fit: contain; background: #f4f4f4; display: block; }
.none { width: 160px; height: 160px; background: #eee; color: #777; display: flex;
        align-items: center; justify-content: center; text-align: center; font-size: 12px; }
.key { font-family: ui-monospace, monospace; font-size: 12px; overflow-wrap: anywhere; }
.keeper { color: #060; font-weight: 600; }
.uses { color: #555; font-size: 12px; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee;
text-align: left; vertical-align: top; }
.method { background: #eef; border-radius: 4px; padding: 0 4px; }
</style>
</head>
<body>
<h1>Duplicates report</h1>
<p class="summary">
  <span>bucket <b class="key">{{ bucket }}</b></span>
  <span>generated {{ generated }}</span>
  <span id="count-groups">{{ counts.groups }} exact duplicate groups</span>
  <span>{{ counts.wasted_bytes|size }} wasted</span>
  <span id="count-pairs">{{ counts.near_pairs }} near-duplicate pairs</span>
  <span id="count-quarantined">{{ counts.quarantined }} quarantined</span>
</p>

<h2 id="groups">Exact duplicates</h2>
{% if counts.groups > groups|length %}<p>The {{ groups|length }} groups wasting most bytes of
{{ counts.groups }}.</p>{% endif %}
<div class="cards">
{% for g in groups %}
  <div class="card group" data-group="{{ g.group_id }}">
    {% if g.file_hash in thumb %}<img class="thumb" alt="thumbnail" src="{{ thumb[g.file_hash] }}">
    {% else %}<div class="none">no preview</div>{% endif %}
    <div>{{ g.member_count }} copies of {{ g.file_size|size }} · <b>{{ g.wasted_bytes|size }}
      wasted</b></div>
    <ul>
    {% for m in g.members %}
      <li><span class="key">{{ m.key }}</span>
        {% if loop.index0 == g.keeper %}<span class="keeper">keep</span>{% endif %}
        <div class="uses">{{ m.reference_count }} reference(s){% for u in m.referenced_in|uses %}
          · {{ u }}{% endfor %}{% if m.exif_fields %} · {{ m.exif_fields }} EXIF fields{% endif %}
          {% if m.status != 'active' %} · {{ m.status }}{% endif %}</div></li>
    {% endfor %}
    </ul>
  </div>
{% else %}
  <p>No exact duplicates.</p>
{% endfor %}
</div>

<h2 id="near">Near-duplicates</h2>
<p>{{ pairs|length }} picture pairs shown (closest first), {{ counts.near_pairs }} file pairs
in the catalog.</p>
<div class="cards">
{% for p in pairs %}
  <div class="card near">
    <div><span class="method">{{ p.method }}</span>
      {% if p.method == 'embedding' %}cosine distance {{ '%.3f'|format(p.method_distance) }}
      {% else %}{{ p.method_distance|int }} bits apart{% endif %}
      (pHash {{ p.distance }} bits){% if p.more %} · and {{ p.more }} more pair(s) between
      exact copies of these two{% endif %}</div>
    <div class="pair">
    {% for s in (p.a, p.b) %}
      <div class="side">
        {% if s.file_hash in thumb %}
        <img class="thumb" alt="thumbnail" src="{{ thumb[s.file_hash] }}">
        {% else %}<div class="none">no preview</div>{% endif %}
        <div class="key">{{ s.key }}</div>
        <div class="uses">{{ s.file_size|size }}{% for u in s.referenced_in|uses %} · {{ u }}
          {% else %} · not referenced{% endfor %}</div>
      </div>
    {% endfor %}
    </div>
  </div>
{% else %}
  <p>No near-duplicates.</p>
{% endfor %}
</div>

<h2 id="quarantine">Quarantined files</h2>
{% if quarantined %}
<table>
  <tr><th>preview</th><th>file</th><th>type</th><th>size</th><th>reason</th></tr>
  {% for q in quarantined %}
  <tr class="quarantined"><td><div class="none">quarantined: no preview</div></td>
    <td class="key">{{ q.key }}</td><td>{{ q.content_type or '' }}</td>
    <td>{{ q.file_size|size }}</td><td>{{ q.reason or '' }}</td></tr>
  {% endfor %}
</table>
{% else %}<p>No quarantined files.</p>{% endif %}

<h2 id="storage">Storage by namespace and type</h2>
<svg width="900" height="{{ chart.height }}" role="img" aria-label="storage by namespace and type">
{% for b in chart.bars %}
  <text x="0" y="{{ b.y + 14 }}" font-size="12">{{ b.label|truncate(40, True) }}</text>
  <rect x="300" y="{{ b.y }}" width="{{ b.width }}" height="18" fill="#4a7bd0"></rect>
  <text x="{{ 306 + b.width }}" y="{{ b.y + 14 }}" font-size="12">{{ b.bytes|size }}
    ({{ b.files }} files)</text>
{% endfor %}
</svg>
{% if chart.more %}<p>{{ chart.more }} smaller namespace/type rows not drawn.</p>{% endif %}
</body>
</html>
"""
