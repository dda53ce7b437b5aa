"""The a2a-sdk (Python) client driving an agenthost-served agent, as the A2A tests need it.

Usage: python3 a2a_client.py ECHO_BASE SPIN_BASE MODE [BEARER]
  ECHO_BASE  base URL of an agent that answers with the text it gets (echo)
  SPIN_BASE  base URL of an agent that keeps working until canceled (faulty, "loop")
  MODE       1.0 or 0.3 (0.3: only the card's 0.3 interface is kept, so the SDK's v0.3
             transport is used)
  BEARER     a token for agents whose card asks for one

Prints one JSON object per line: {"step": ..., ...}. Exits non-zero on an unexpected error.
"""

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import (
    A2ACardResolver,
    AuthInterceptor,
    ClientConfig,
    ClientFactory,
    CredentialService,
)
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)

ECHO, SPIN, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
BEARER = sys.argv[4] if len(sys.argv) > 4 else None


class Token(CredentialService):
    async def get_credentials(self, security_scheme_name, context):
        return BEARER


def out(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def text_msg(text):
    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)])


def state(task):
    return TaskState.Name(task.status.state)


def text_of(task):
    texts = [p.text for p in task.status.message.parts if p.text] if task.HasField("status") else []
    for artifact in task.artifacts:
        texts += [p.text for p in artifact.parts if p.text]
    return " ".join(texts)


async def client_for(http, base, streaming):
    card = await A2ACardResolver(http, base).get_agent_card()
    if MODE == "0.3":
        keep = [i for i in card.supported_interfaces if i.protocol_version.startswith("0.3")]
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(keep)
    interceptors = [AuthInterceptor(Token())] if BEARER else []
    client = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(card, interceptors)
    return card, client


async def main():
    async with httpx.AsyncClient(timeout=60) as http:
        card, blocking = await client_for(http, ECHO, streaming=False)
        out("card", name=card.name, skills=[s.id for s in card.skills],
            interfaces=[[i.url, i.protocol_binding, i.protocol_version] for i in card.supported_interfaces],
            transport=type(blocking._transport).__name__)

        task = None
        async for event in blocking.send_message(SendMessageRequest(message=text_msg("hello over a2a"))):
            task = event.task
        out("send", state=state(task), text=text_of(task), id=task.id)

        _, streaming = await client_for(http, ECHO, streaming=True)
        kinds, last = [], None
        async for event in streaming.send_message(SendMessageRequest(message=text_msg("streamed"))):
            kind = event.WhichOneof("payload")
            kinds.append(kind)
            if kind == "task":
                last = event.task
            elif kind == "status_update":
                last.status.CopyFrom(event.status_update.status)
        out("stream", kinds=kinds, state=state(last), text=text_of(last))

        got = await blocking.get_task(GetTaskRequest(id=task.id, history_length=1))
        out("get", state=state(got), history=len(got.history), text=text_of(got))

        try:
            listed = await blocking.list_tasks(ListTasksRequest(page_size=1))
            out("list", count=len(listed.tasks), total=listed.total_size, next=bool(listed.next_page_token))
        except NotImplementedError:
            out("list", unsupported=True)

        try:
            await blocking.get_task(GetTaskRequest(id="no-such-task"))
            out("unknown-task", raised=None)
        except Exception as error:  # the SDK maps -32001 to TaskNotFoundError
            out("unknown-task", raised=type(error).__name__)

        _, spin = await client_for(http, SPIN, streaming=False)
        running = None
        async for event in spin.send_message(SendMessageRequest(
                message=text_msg("loop"),
                configuration=SendMessageConfiguration(return_immediately=True))):
            running = event.task
        await asyncio.sleep(0.5)
        canceled = await spin.cancel_task(CancelTaskRequest(id=running.id))
        out("cancel", before=state(running), after=state(canceled))
        try:
            await spin.cancel_task(CancelTaskRequest(id=running.id))
            out("cancel-again", raised=None)
        except Exception as error:
            out("cancel-again", raised=type(error).__name__)


asyncio.run(main())
