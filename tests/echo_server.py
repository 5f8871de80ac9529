"""A real HTTP endpoint that echoes the request's ``Authorization`` header back, and helpers to look for a key's
bytes: shared by the judge-secret unit tests and the fault suite's probe."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def leaks(key: str, blob: bytes) -> bool:
    """Whether any 12-character piece of the key is in the bytes (a truncated echo counts as a leak)."""
    raw = key.encode()
    return any(raw[i : i + 12] in blob for i in range(len(raw) - 11))


def dir_bytes(folder: Path) -> bytes:
    """Every file's bytes under ``folder`` (the cache, its WAL, anything else written there)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


class EchoServer:
    """Answers by the requested model: ``html`` (200, HTML body), ``echo-json`` / ``echo-text`` (200, a valid
    chat completion whose answer quotes the header), ``e500`` (500); every body echoes ``Authorization``, placed
    so that the key straddles the judge's truncation of error bodies (200 and 300 characters)."""

    def __init__(self) -> None:
        self.seen_auth: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                auth = self.headers.get("Authorization", "")
                outer.seen_auth.append(auth)
                key = auth.removeprefix("Bearer ")
                model = request.get("model")
                status, ctype = 200, "application/json"
                if model == "html":
                    # the bare key (no header name) across character 200, where the error text is cut
                    data = "<html><body>" + "x" * 175 + f" echo {key} {auth}</body></html>"
                    ctype = "text/html"
                elif model == "e500":
                    status, data = 500, "upstream error " + "y" * 270 + f" echo {key} / Authorization: {auth}"
                else:
                    quote = f"You sent Authorization: {auth} and the key {key}."
                    content = (
                        json.dumps({"verdict": "A", "rationale": quote}) if model == "echo-json" else f"A. {quote}"
                    )
                    data = json.dumps(
                        {
                            "choices": [
                                {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                            ],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                        }
                    )
                body = data.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
