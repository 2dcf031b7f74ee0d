"""A small HTTP reverse proxy that waits ``--latency-ms`` before forwarding each request: put in
front of the embedded S3 server (moto), it gives what S3's first byte costs (20-40 ms a request)
to every client alike — boto3, rclone, our pipeline.

Each client connection gets its own thread and its own kept-alive connection to the upstream;
method, path, query, headers (Host and Authorization as the client sent them: SigV4 signs the
Host) and bodies go through unchanged, and the response is streamed back.

    .venv/bin/python -m benchmarks.latency_proxy --upstream http://127.0.0.1:5000 \
        --port 5001 --latency-ms 20
"""

from __future__ import annotations

import argparse
import http.client
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers of one hop (RFC 9110 7.6.1): not forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade"}
CHUNK = 64 * 1024


def make_handler(upstream: str, latency_s: float) -> type[BaseHTTPRequestHandler]:
    parts = urlsplit(upstream)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive to the client, as S3 does
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stall
        upstream_conn: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def _forward(self) -> None:
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            time.sleep(latency_s)
            for attempt in range(2):
                conn = self.upstream_conn or http.client.HTTPConnection(host, port, timeout=300)
                self.upstream_conn = conn
                try:
                    # Host is in the headers, so http.client sends it as the client did.
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    break
                except (http.client.HTTPException, ConnectionError):
                    # A kept-alive connection the upstream closed: once more on a new one.
                    conn.close()
                    self.upstream_conn = None
                    if attempt:
                        raise
            self.send_response_only(response.status, response.reason)
            length = response.getheader("Content-Length")
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            if self.command == "HEAD" or response.status in (204, 304) or length is not None:
                self.end_headers()
                while chunk := response.read(CHUNK):
                    self.wfile.write(chunk)
            else:  # no length from the upstream: relay it chunked
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := response.read(CHUNK):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            response.close()
            if response.will_close:
                conn.close()
                self.upstream_conn = None

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _forward

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: many clients connect at once


def serve(upstream: str, port: int, latency_ms: float, host: str = "127.0.0.1") -> None:
    Server((host, port), make_handler(upstream, latency_ms / 1000)).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream", required=True, help="the server's URL, http://host:port")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    serve(args.upstream, args.port, args.latency_ms)


if __name__ == "__main__":
    main()
