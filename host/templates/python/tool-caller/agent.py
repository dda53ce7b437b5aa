"""{{name}}: for each event of `{{name}}.in.v1`, a JSON object, calls the MCP tool named in
config (`server`, `tool`) with that object as its arguments, and publishes the tool's text to
the topic in config `out`, keyed like the event. The host owns the connection to the server;
the manifest grants this agent that one tool and nothing else."""

from agenthost_sdk import card, event_json, handled, reject, types
from agenthost_sdk import bus, config, mcp
from wit_world import exports


def _is_object(value: object):
    return None if isinstance(value, dict) else "expected a JSON object"


class Agent(exports.Agent):
    def card(self) -> types.Card:
        return card("{{name}}", "0.1.0", description="Calls an MCP tool for each event")

    @handled
    def on_event(self, event: types.Event) -> None:
        out = config.require("out")
        server = config.require("server")
        tool = config.require("tool")
        arguments = event_json(event, _is_object)
        # Not granted: rejected (dead-lettered); the server down: retried.
        result = mcp.call_tool(server, tool, arguments)
        if result.is_error:
            # The tool ran and said no: that is its answer, not a reason to retry.
            raise reject(f"{server}/{tool} failed: {result.text}")
        bus.publish(out, result.text, key=event.key)

    @handled
    def on_message(self, message: types.Message) -> types.Reply:
        raise reject("{{name}} works on events; it takes no messages")
