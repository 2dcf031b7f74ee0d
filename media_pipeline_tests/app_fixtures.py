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
    with Catalog.open(settings.catalog_path) as catalog:
        out = {}
        for table in APP_TABLES:
            row = catalog.con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
        return out


def audit_rows(settings: Settings) -> list[dict[str, Any]]:
    with Catalog.open(settings.catalog_path) as catalog:
        rows = catalog.con.execute(
            "SELECT actor, action, media_id::VARCHAR, details::VARCHAR FROM audit_log "
            "ORDER BY ts, rowid").fetchall()
    return [{"actor": a, "action": b, "media_id": m, "details": json.loads(d or "{}")}
            for a, b, m, d in rows]


def catalog_text(settings: Settings) -> str:
    """Every value in every table of the catalog, as text (to look for secrets in)."""
    parts: list[str] = []
    with Catalog.open(settings.catalog_path) as catalog:
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
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        client = httpx.Client(base_url=upstream, timeout=30)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                canned = self.headers.get("x-amz-acl")
                grants_all = b"AllUsers" in body and "?acl" in self.path
                if (canned is not None and canned != "private") or grants_all:
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(ACL_REFUSAL)))
                    self.end_headers()
                    self.wfile.write(ACL_REFUSAL)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                response = client.request(self.command, self.path, content=body,
                                          headers=headers)
                self.send_response(response.status_code)
                for k, v in response.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._client = client
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()
