"""{{name}}: an agent other agents and A2A clients talk to. It serves its card and a JSON-RPC
endpoint through the host (`[a2a] expose = true` in its manifest) and answers each message with
what it counted in the message's text. It subscribes to no topic."""

from agenthost_sdk import card, handled, message_text, reject, skill, text_reply, types
from wit_world import exports


def answer(text: str) -> str:
    """What the agent answers for `text`."""
    return f"{len(text.split())} words, {len(text)} characters"


class Agent(exports.Agent):
    def card(self) -> types.Card:
        return card(
            "{{name}}",
            "0.1.0",
            description="Counts the words and characters of a text",
            skills=[
                skill(
                    "{{name}}.count",
                    "Count",
                    description="Answers with the number of words and characters of the text",
                    tags=["text"],
                    examples=["the quick brown fox"],
                )
            ],
        )

    @handled
    def on_event(self, event: types.Event) -> None:
        raise reject("{{name}} answers messages; it subscribes to no topic")

    @handled
    def on_message(self, message: types.Message) -> types.Reply:
        text = message_text(message)
        # Rejected: the caller gets the task failed with this reason.
        if not text.strip():
            raise reject("send a text to count")
        return text_reply(answer(text))
