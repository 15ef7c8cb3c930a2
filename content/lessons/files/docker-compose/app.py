"""A page that counts its visitors in Redis. Standard library only: a tiny Redis client over a socket."""
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = os.environ.get("GREETING", "Hello")
REDIS_HOST = os.environ.get("REDIS_HOST", "cache")  # the service's name in compose.yaml


def redis(*args: str) -> str:
    """Sends one command in Redis's wire protocol and returns the first line of the answer."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((REDIS_HOST, 6379), timeout=2) as conn:
        conn.sendall(request.encode())
        answer = conn.makefile("rb").readline().decode().strip()
    if answer.startswith("-"):
        raise RuntimeError(answer[1:])
    return answer[1:]


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            hits = int(redis("INCR", "hits"))
            status, text = 200, f"{GREETING}! This page has been seen {hits} time{'' if hits == 1 else 's'}.\n"
        except OSError as e:  # the cache is not there (yet)
            status, text = 503, f"Cannot reach the cache at {REDIS_HOST}:6379 ({e}).\n"
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    print(f"counter: listening on port 8000, cache at {REDIS_HOST}:6379", flush=True)
    ThreadingHTTPServer(("", 8000), Page).serve_forever()
