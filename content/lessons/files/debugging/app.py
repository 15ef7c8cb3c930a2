"""A small notes service: GET / lists the notes, POST / adds one, GET /health answers "ok".

Settings come from the environment: NOTES_DIR (where notes.txt is kept, default /data) and PORT
(default 8000). It checks its folder before it serves anything, so a wrong setting stops it at once.
"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NOTES_DIR = Path(os.environ.get("NOTES_DIR", "/data"))
PORT = int(os.environ.get("PORT", "8000"))

# Fails with PermissionError when the user this runs as may not create or write the folder.
NOTES_DIR.mkdir(parents=True, exist_ok=True)
NOTES = NOTES_DIR / "notes.txt"
NOTES.touch()
Path("/tmp/notes.pid").write_text(f"{os.getpid()}\n")
print(f"notes: keeping notes in {NOTES}, listening on port {PORT}", flush=True)


class Notes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self.answer(200, "ok\n")
            return
        lines = NOTES.read_text().splitlines()
        self.answer(200, f"notes app: {len(lines)} notes\n" + "".join(f"- {line}\n" for line in lines))

    def do_POST(self) -> None:
        text = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode().strip()
        with NOTES.open("a") as f:
            f.write(text.replace("\n", " ") + "\n")
        self.answer(201, "saved\n")

    def answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("", PORT), Notes).serve_forever()
