// {{name}}: republishes every event of `{{name}}.in.v1` to the topic in config `out`,
// unchanged — payload, key and headers — and answers A2A messages with their own text.
import { card, messageText, skill, textReply } from "agenthost-sdk";
import * as bus from "agenthost-sdk/bus";
import * as config from "agenthost-sdk/config";
import pkg from "./package.json" with { type: "json" };

export const agent = {
  card() {
    return card(pkg.name, pkg.version, {
      description: "Republishes every event unchanged",
      skills: [skill("{{name}}.echo", "Echo", { description: "Answers with the text it got" })],
    });
  },

  onEvent(event) {
    // A missing key rejects the event, naming it: it is dead-lettered with that reason.
    const out = config.require("out");
    // The host commits the event's offset only once this returns.
    bus.forward(out, event);
  },

  onMessage(message) {
    return textReply(messageText(message));
  },
};
