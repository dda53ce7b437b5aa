"""{{name}}: republishes every event of `{{name}}.in.v1` to the topic in config `out`,
unchanged — payload, key and headers — and answers A2A messages with their own text."""

from agenthost_sdk import card, handled, message_text, skill, text_reply, types
from agenthost_sdk import bus, config
from wit_world import exports


class Agent(exports.Agent):
    def card(self) -> types.Card:
        return card(
            "{{name}}",
            "0.1.0",
            description="Republishes every event unchanged",
            skills=[skill("{{name}}.echo", "Echo", description="Answers with the text it got")],
        )

    @handled
    def on_event(self, event: types.Event) -> None:
        # A missing key rejects the event, naming it: it is dead-lettered with that reason.
        out = config.require("out")
        # The host commits the event's offset only once this returns.
        bus.forward(out, event)

    @handled
    def on_message(self, message: types.Message) -> types.Reply:
        return text_reply(message_text(message))
