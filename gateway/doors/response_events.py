"""A streamed Responses API answer: the server-sent events the SDKs read, from Ollama's chunks.

`response.created` and `response.in_progress`; then each output item in turn (reasoning, the message, each
function call) opened with `response.output_item.added`, filled with its deltas, and closed with its `.done`
events; then `response.completed` (or `response.incomplete` when cut by `max_output_tokens`, or
`response.failed` when Ollama fails midway) with the whole response. The OpenAI SDK's stream helper and the
Agents SDK each need every one of these (tests/test_e2e_responses.py runs them).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.doors.responses import (
    Shell,
    function_call_item,
    item_id,
    message_item,
    output_text,
    reasoning_item,
    status_of,
    translate_calls,
)
from gateway.ollama import OllamaChatChunk

_encode = msgspec.json.Encoder().encode


class ResponsesFramer:
    media_type = "text/event-stream"

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.response: dict[str, Any] | None = None  # the whole response, once the answer is complete
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._open: tuple[str, str] | None = None  # the kind ("reasoning", "message") and id of the open item
        self._said: list[str] = []

    def opening(self) -> list[bytes]:
        started = self.shell.response("in_progress", [])
        return [
            self._event("response.created", response=started),
            self._event("response.in_progress", response=started),
        ]

    def frames(self, chunk: OllamaChatChunk) -> list[bytes]:
        frames: list[bytes] = []
        message = chunk.message
        if message and message.thinking:
            frames += self._delta("reasoning", message.thinking)
        if message and message.content:
            frames += self._delta("message", message.content)
        calls = translate_calls(chunk)
        if calls or chunk.done:
            frames += self._close()
        for call in calls:
            frames += self._call(call)
        if chunk.done:
            status = status_of(chunk)
            self.response = self.shell.response(status, self._output, chunk)
            frames.append(self._event(f"response.{status}", response=self.response))
        return frames

    def failed(self, envelope: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        failed = self.shell.response("failed", self._output)
        failed["error"] = {"code": "server_error", "message": str(envelope["error"]["message"])}
        return [*frames, self._event("response.failed", response=failed)]

    def closing(self) -> list[bytes]:
        return []

    def _delta(self, kind: str, text: str) -> list[bytes]:
        frames = self._close() if self._open and self._open[0] != kind else []
        if self._open is None:
            frames += self._begin(kind)
        assert self._open is not None
        self._said.append(text)
        where = self._where()
        if kind == "reasoning":
            return [*frames, self._event("response.reasoning_text.delta", **where, delta=text)]
        return [*frames, self._event("response.output_text.delta", **where, delta=text, logprobs=[])]

    def _begin(self, kind: str) -> list[bytes]:
        id = item_id("rs" if kind == "reasoning" else "msg")
        self._open, self._said = (kind, id), []
        index = len(self._output)
        if kind == "reasoning":
            return [
                self._event(
                    "response.output_item.added", output_index=index, item=reasoning_item(id, "", "in_progress")
                )
            ]
        return [
            self._event("response.output_item.added", output_index=index, item=message_item(id, None, "in_progress")),
            self._event("response.content_part.added", **self._where(), part=output_text("")),
        ]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        (kind, id), text, where = self._open, "".join(self._said), self._where()
        self._open = None
        if kind == "reasoning":
            item = reasoning_item(id, text)
            frames = [self._event("response.reasoning_text.done", **where, text=text)]
        else:
            item = message_item(id, text)
            frames = [
                self._event("response.output_text.done", **where, text=text, logprobs=[]),
                self._event("response.content_part.done", **where, part=output_text(text)),
            ]
        self._output.append(item)
        return [*frames, self._event("response.output_item.done", output_index=where["output_index"], item=item)]

    def _call(self, call: Any) -> list[bytes]:
        id, index = item_id("fc"), len(self._output)
        item = function_call_item(id, call)
        self._output.append(item)
        where = {"item_id": id, "output_index": index}
        return [
            self._event(
                "response.output_item.added", output_index=index, item=function_call_item(id, call, "", "in_progress")
            ),
            self._event("response.function_call_arguments.delta", **where, delta=call.function.arguments),
            self._event(
                "response.function_call_arguments.done",
                **where,
                name=call.function.name,
                arguments=call.function.arguments,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open[1], "output_index": len(self._output), "content_index": 0}

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(event) + b"\n\n"
