"""uvicorn's HTTP protocol, answering a request it cannot parse in the OpenAI error envelope.

uvicorn answers bytes that are not HTTP itself, before any ASGI app sees them, with a plain-text 400; a
client that reads every error as `{"error": {...}}` would fail on that too.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.errors import error_envelope


class HttpProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        problem = f"Could not parse the HTTP request: {msg.rstrip('.').lower()}."
        body = json.dumps(error_envelope(problem, "invalid_request_error")).encode()
        lines = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            lines.extend([name, b": ", value, b"\r\n"])
        lines.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(lines))
        self.transport.close()
