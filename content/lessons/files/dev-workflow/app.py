"""A small JSON API.

While developing, run it with RELOAD=1: it restarts itself whenever this file changes, so an edit on
the host shows up in the running container within a second.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = 1


class Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"message": "hello from the API", "version": VERSION}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def restart_when_changed(path: str) -> None:
    """Development only: check the file's modification time every second; when it changes,
    replace this process with a fresh Python that reads the new code."""
    seen = os.stat(path).st_mtime
    while True:
        time.sleep(1)
        try:
            changed = os.stat(path).st_mtime != seen
        except FileNotFoundError:  # an editor is saving: look again next second
            continue
        if changed:
            print(f"{os.path.basename(path)} changed, restarting", flush=True)
            os.execv(sys.executable, [sys.executable, *sys.argv])


if __name__ == "__main__":
    if os.environ.get("RELOAD") == "1":
        threading.Thread(target=restart_when_changed, args=(os.path.abspath(__file__),), daemon=True).start()
    print(f"api version {VERSION} listening on port 8000", flush=True)
    ThreadingHTTPServer(("", 8000), Api).serve_forever()
