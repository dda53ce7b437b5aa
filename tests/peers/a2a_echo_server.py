"""An A2A agent on the Python a2a-sdk (v1.0 with v0.3 compatibility), for the tests to reach
from agenthost: it answers every message with an artifact "echo: <text>".

Usage: python3 a2a_echo_server.py PORT [SKILL_ID]   (binds 127.0.0.1; skill id default "echo")
Its card is at http://127.0.0.1:PORT/.well-known/agent-card.json.
"""

import sys

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette

PORT = int(sys.argv[1])
SKILL = sys.argv[2] if len(sys.argv) > 2 else "echo"
BASE = f"http://127.0.0.1:{PORT}"
RPC_PATH = "/a2a/jsonrpc"


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await updater.add_artifact([new_text_part(f"echo: {text}")], name="echo", last_chunk=True)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


card = AgentCard(
    name="python-echo",
    description="Echoes text back (a2a-sdk)",
    version="1.0.0",
    supported_interfaces=[
        AgentInterface(url=BASE + RPC_PATH, protocol_binding="JSONRPC", protocol_version="1.0"),
        AgentInterface(url=BASE + RPC_PATH, protocol_binding="JSONRPC", protocol_version="0.3"),
    ],
    capabilities=AgentCapabilities(streaming=True, push_notifications=False),
    default_input_modes=["text/plain"],
    default_output_modes=["text/plain"],
    skills=[AgentSkill(id=SKILL, name="Echo", description="Echo the input", tags=["echo"])],
)
handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
app = Starlette(
    routes=create_agent_card_routes(card)
    + create_jsonrpc_routes(handler, rpc_url=RPC_PATH, enable_v0_3_compat=True)
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
