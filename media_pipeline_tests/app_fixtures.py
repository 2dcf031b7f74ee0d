"""Helpers for the application API tests: real file contents, bucket listings, catalog counts."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image
from pypdf import PdfWriter

from media_pipeline.catalog import Catalog
from media_pipeline.settings import Settings

# Tables an application call may change; a refused call must leave every count as it was.
APP_TABLES = ("media_files", "audit_log", "media_tags", "tags", "collections",
              "collection_items", "namespaces", "namespace_members")


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata([((x * 4 + seed) % 256, (y * 5 + seed * 3) % 256, (x * y + seed) % 256)
                   for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(seed: int = 0) -> bytes:
    image = Image.frombytes("RGB", (40, 30), bytes((i * 7 + seed) % 256 for i in range(3600)))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def pdf_bytes(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SCRIPT_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
              b'<script>alert(1)</script></svg>')
# A parameter entity that declares an entity holding a <script> element.
ENTITY_SCRIPT_SVG = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY % a "<!ENTITY s \'&#60;script&#62;'
    b'alert(document.domain)&#60;/script&#62;\'>"> %a;]>'
    b'<svg xmlns="http://www.w3.org/2000/svg">&s;</svg>')
SPLIT_JAVASCRIPT_SVG = (
    b'<!DOCTYPE svg [<!ENTITY j "java"><!ENTITY s "script">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    b'<a xlink:href="&j;&s;:alert(1)"><rect width="9" height="9"/></a></svg>')
CLEAN_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="20">'
             b'<rect width="10" height="20" fill="red"/></svg>')


def bucket_keys(client: Any, bucket: str) -> list[str]:
    response = client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in response.get("Contents", []))


def catalog_counts(settings: Settings) -> dict[str, int]:
    with Catalog.open(settings.catalog_location) as catalog:
        out = {}
        for table in APP_TABLES:
            row = catalog.con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
        return out


def audit_rows(settings: Settings) -> list[dict[str, Any]]:
    with Catalog.open(settings.catalog_location) as catalog:
        rows = catalog.con.execute(
            "SELECT actor, action, media_id::VARCHAR, details::VARCHAR FROM audit_log "
            "ORDER BY ts, rowid").fetchall()
    return [{"actor": a, "action": b, "media_id": m, "details": json.loads(d or "{}")}
            for a, b, m, d in rows]


def catalog_text(settings: Settings) -> str:
    """Every value in every table of the catalog, as text (to look for secrets in)."""
    parts: list[str] = []
    with Catalog.open(settings.catalog_location) as catalog:
        tables = [r[0] for r in catalog.con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE'").fetchall()]
        for table in tables:
            for row in catalog.con.execute(f'SELECT * FROM "{table}"').fetchall():
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


ACL_REFUSAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessControlListNotSupported'
               b'</Code><Message>The bucket does not allow ACLs</Message></Error>')


class NoAclProxy:
    """An HTTP proxy in front of the S3 server that answers like a bucket with ACLs disabled
    (Object Ownership "bucket owner enforced"): any request that sets an ACL other than
    private gets S3's 400 AccessControlListNotSupported. moto does not enforce that setting."""

    def __init__(self, upstream: str) -> None:
        import httpx

        from media_pipeline_tests.http_server import Request, Response, TestServer

        client = httpx.Client(base_url=upstream, timeout=30)

        def forward(request: Request) -> Response:
            canned = request.headers.get("x-amz-acl")
            grants_all = b"AllUsers" in request.body and "?acl" in request.path
            if (canned is not None and canned != "private") or grants_all:
                return Response(400, ACL_REFUSAL, {"Content-Type": "application/xml"})
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() not in ("host", "content-length", "connection")}
            response = client.request(request.method, request.path, content=request.body,
                                      headers=headers)
            return Response(response.status_code, response.content, [
                (k, v) for k, v in response.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                     "content-encoding")])

        self.server = TestServer(forward)
        self.url = self.server.url
        self._client = client

    def close(self) -> None:
        self.server.close()
        self._client.close()
