#!/usr/bin/env python3
"""A tiny OpenAI-style upstream for the deployment scripts (package check, reverse-proxy test).

Listens on 127.0.0.1 on an ephemeral port and writes the port to PORT_FILE once it accepts connections.
Standard library only (Debian's python3).

  POST .../chat/completions with "stream": true
      an SSE stream: "data: 1" at once, then waits until GET /_mock/release is called (at most 30 s), then
      "data: 2" and "data: [DONE]". A client can so prove it got the first event before the stream ended.
  any other request
      200 {"object":"mock","path":...}
  GET /_mock/release
      lets a held stream finish.

Every request's Authorization header is appended to AUTH_LOG (one line each), so the caller can check which
key was used without anyone printing it.

Usage: mock_upstream.py PORT_FILE AUTH_LOG
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = threading.Event()
HOLD_SECONDS = 30


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep stderr quiet; the caller checks results, not logs
        pass

    def _record_authorization(self):
        with open(AUTH_LOG, "a", encoding="utf-8") as log:
            log.write(self.headers.get("Authorization", "") + "\n")

    def _send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/_mock/release":
            RELEASE.set()
            self._send_json(200, {"released": True})
            return
        self._record_authorization()
        self._send_json(200, {"object": "mock", "path": self.path})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length > 0 else b""
        self._record_authorization()
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        if not (self.path.endswith("/chat/completions") and request.get("stream") is True):
            self._send_json(200, {"object": "mock", "path": self.path})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b"data: 1\n\n")
        released = RELEASE.wait(HOLD_SECONDS)
        RELEASE.clear()
        self._chunk(b"data: 2\n\n" if released else b"data: timeout\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mock_upstream.py PORT_FILE AUTH_LOG")
    PORT_FILE, AUTH_LOG = sys.argv[1], sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(PORT_FILE + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(PORT_FILE + ".tmp", PORT_FILE)  # the caller never reads a half-written port
    server.serve_forever()
