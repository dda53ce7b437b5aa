// {{name}}: an agent other agents and A2A clients talk to. It serves its card and a JSON-RPC
// endpoint through the host (`[a2a] expose = true` in its manifest) and answers each message
// with what it counted in the message's text. It subscribes to no topic.
import { card, messageText, reject, skill, textReply } from "agenthost-sdk";
import pkg from "./package.json" with { type: "json" };

/** What the agent answers for `text`. */
export function answer(text) {
  const words = text.split(/\s+/).filter((w) => w !== "").length;
  return `${words} words, ${[...text].length} characters`;
}

export const agent = {
  card() {
    return card(pkg.name, pkg.version, {
      description: "Counts the words and characters of a text",
      skills: [
        skill("{{name}}.count", "Count", {
          description: "Answers with the number of words and characters of the text",
          tags: ["text"],
          examples: ["the quick brown fox"],
        }),
      ],
    });
  },

  onEvent(_event) {
    throw reject("{{name}} answers messages; it subscribes to no topic");
  },

  onMessage(message) {
    const text = messageText(message);
    // Rejected: the caller gets the task failed with this reason.
    if (text.trim() === "") throw reject("send a text to count");
    return textReply(answer(text));
  },
};
