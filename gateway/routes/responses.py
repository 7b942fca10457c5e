"""OpenAI's Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter
from litestar.response import Stream

from gateway.auth import caller, require_key
from gateway.chat import Chat
from gateway.config import Settings
from gateway.doors import responses
from gateway.doors.response_events import ResponsesFramer
from gateway.doors.responses import CreateResponse
from gateway.errors import NotFound
from gateway.identity import named_user, valid_id
from gateway.protocol import ChatMessage
from gateway.records import StoredResponse
from gateway.routes.docs import error_responses, example
from gateway.routes.stream import streamed

CHAIN = 100  # stored responses a continued conversation reaches back through
NOT_FOUND = error_responses(401, 404)
ResponseId = Annotated[str, Parameter(examples=[Example(value="resp_6f1c2a9e0b7d4e3f8a5c1d2e9b0f7a6c")])]
RESPONSE_EXAMPLE = {"model": "qwen3:4b", "instructions": "Be brief.", "input": "Where do I live?"}


class ResponsesController(Controller):
    path = "/v1/responses"
    tags = ("OpenAI",)
    guards = (require_key,)

    @post(
        "/",
        status_code=200,
        summary="Create a response (streamed as SSE events when `stream` is true); memory as for chat",
        responses={
            200: ResponseSpec(data_container=dict[str, Any], description="A response object, or its events"),
            **error_responses(400, 401, 404, 413, 502, 503, 504),
        },
    )
    async def create(
        self, data: Annotated[CreateResponse, example(RESPONSE_EXAMPLE)], chat: Chat, request: Request[Any, Any, Any]
    ) -> Response[dict[str, Any]] | Stream:
        user = caller(request)
        added = responses.input_messages(data)
        history, conversation = await _before(data, chat, request)
        asked = responses.as_chat(data, history, added)
        who = chat.identify(asked, request.headers, user)
        if conversation is not None:  # the conversation the previous response was part of
            who = msgspec.structs.replace(who, conversation=conversation)
        shell = responses.shell(data, chat.model_for(asked))

        async def keep(response: dict[str, Any] | None) -> None:
            if data.store and response is not None:
                kept = [*added, *responses.added_messages(response)]
                stored = StoredResponse(
                    shell.id,
                    who.user,
                    who.conversation,
                    data.previous_response_id,
                    time.time(),
                    responses.encode_messages(kept),
                    json.dumps(response),
                )
                await chat.memory.journal.responses.put(stored)

        if data.stream:
            framer = ResponsesFramer(shell)
            return streamed(
                await chat.stream(
                    asked, request.headers, user, framer=framer, who=who, then=lambda: keep(framer.response)
                )
            )
        answer, ready = await chat.answer(asked, request.headers, user, who=who)
        body = responses.answered(shell, answer)
        await keep(body)
        return Response(body, headers=ready.headers())

    @get("/{response_id:str}", summary="A stored response", responses=NOT_FOUND)
    async def retrieve(
        self, response_id: ResponseId, chat: Chat, settings: Settings, request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        stored = await chat.memory.journal.responses.get(_user(request, settings), response_id)
        if stored is None:
            raise NotFound(f"No response {response_id!r} is stored for this user.", param="response_id")
        body: dict[str, Any] = json.loads(stored.body)
        return body

    @delete(
        "/{response_id:str}", status_code=200, summary="Delete a stored response", responses=error_responses(401, 404)
    )
    async def remove(
        self, response_id: ResponseId, chat: Chat, settings: Settings, request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        if not await chat.memory.journal.responses.delete(_user(request, settings), response_id):
            raise NotFound(f"No response {response_id!r} is stored for this user.", param="response_id")
        return {"id": response_id, "object": "response", "deleted": True}


async def _before(
    data: CreateResponse, chat: Chat, request: Request[Any, Any, Any]
) -> tuple[list[ChatMessage], str | None]:
    """The conversation before this request (from `previous_response_id`), and its id."""
    if not data.previous_response_id:
        return [], None
    user = _user(request, request.app.state.settings, data.user)
    chain = await chat.memory.journal.responses.chain(user, data.previous_response_id, CHAIN)
    if not chain:
        raise NotFound(
            f"No response {data.previous_response_id!r} is stored for this user (was it sent with store: false?).",
            param="previous_response_id",
        )
    history = [message for stored in chain for message in responses.decode_messages(stored.messages)]
    return history, chain[-1].conversation


def _user(request: Request[Any, Any, Any], settings: Settings, body_user: str | None = None) -> str:
    """Whose stored responses, as for chat: the key's user, else an identity header's, else the body's `user`,
    else the default."""
    named = named_user(request.headers, settings.identity.user_headers)
    return valid_id(caller(request) or named or body_user or settings.identity.default_user)
