"""{{name}}: counts the events of `{{name}}.in.v1` per key in its state, and publishes each new
count to the topic in config `out` as `{"key": "…", "count": N}`, keyed like the event. State
survives restarts and new versions of the agent; `capabilities.state` is its quota."""

from agenthost_sdk import card, event_key, handled, reject, types
from agenthost_sdk import bus, config, state
from wit_world import exports


class Agent(exports.Agent):
    def card(self) -> types.Card:
        return card("{{name}}", "0.1.0", description="Counts events per key")

    @handled
    def on_event(self, event: types.Event) -> None:
        out = config.require("out")
        key = event_key(event) or "(no key)"
        stored = state.get_json(f"count/{key}") or {}
        count = {"key": key, "count": stored.get("count", 0) + 1}
        state.set(f"count/{key}", count)
        # A retried event counts again: at-least-once delivery. Keep the offsets of counted
        # events in state too if a count must be exact.
        bus.publish(out, count, key=event.key)

    @handled
    def on_message(self, message: types.Message) -> types.Reply:
        raise reject("{{name}} counts events; it takes no messages")
