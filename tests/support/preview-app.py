"""A learner-style app for the port preview tests, standard library only (runs in python:3.11-slim).

GET  /headers          the request line's path and the headers it received, as JSON
GET  /redirect?to=URL  302 to URL
GET  /cookies          sets an app cookie (with a Domain), a forged platform cookie, origin-wide headers
GET  /big?n=N          N bytes, streamed
POST /count            how many body bytes arrived
GET  /ws (Upgrade)     a WebSocket echo: text comes back as "echo: <text>", binary as it was
"""
import base64
import hashlib
import json
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="text/plain", extra=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if url.path == "/headers":
            headers = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            return self.reply(200, json.dumps({"path": self.path, "headers": headers}), "application/json")
        if url.path == "/redirect":
            return self.reply(302, "", extra=[("Location", q["to"][0])])
        if url.path == "/cookies":
            return self.reply(200, "ok", extra=[
                ("Set-Cookie", "app=1; Path=/; Domain=localhost; HttpOnly"),
                ("Set-Cookie", "shipshape_owner=forged; Path=/"),
                ("Service-Worker-Allowed", "/"),
                ("Clear-Site-Data", '"cookies"'),
            ])
        if url.path == "/big":
            n = int(q["n"][0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            while n > 0:
                self.wfile.write(chunk[: min(n, len(chunk))])
                n -= len(chunk)
            return
        self.reply(404, "not found")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = 0
        while got < n:
            block = self.rfile.read(min(65536, n - got))
            if not block:
                break
            got += len(block)
        self.reply(200, json.dumps({"received": got}), "application/json")

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = self.rfile.read(n)
            if n:
                keystream = (mask * (n // 4 + 1))[:n]
                data = (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")
            if op == 8:
                self.frame(8, b"")
                return
            if op == 9:
                self.frame(10, data)
            elif op == 1:
                self.frame(1, b"echo: " + data)
            elif op == 2:
                self.frame(2, data)

    def frame(self, op, data):
        n = len(data)
        if n < 126:
            header = bytes([0x80 | op, n])
        elif n < 65536:
            header = bytes([0x80 | op, 126]) + struct.pack(">H", n)
        else:
            header = bytes([0x80 | op, 127]) + struct.pack(">Q", n)
        self.wfile.write(header + data)
        self.wfile.flush()


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
