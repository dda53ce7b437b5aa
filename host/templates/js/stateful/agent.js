// {{name}}: counts the events of `{{name}}.in.v1` per key in its state, and publishes each new
// count to the topic in config `out` as `{"key": "…", "count": N}`, keyed like the event.
// State survives restarts and new versions of the agent; `capabilities.state` is its quota.
import { card, eventKey, reject } from "agenthost-sdk";
import * as bus from "agenthost-sdk/bus";
import * as config from "agenthost-sdk/config";
import * as state from "agenthost-sdk/state";
import pkg from "./package.json" with { type: "json" };

export const agent = {
  card() {
    return card(pkg.name, pkg.version, { description: "Counts events per key" });
  },

  onEvent(event) {
    const out = config.require("out");
    const key = eventKey(event) ?? "(no key)";
    const stored = state.getJson(`count/${key}`);
    const count = { key, count: (stored?.count ?? 0) + 1 };
    state.set(`count/${key}`, count);
    // A retried event counts again: at-least-once delivery. Keep the offsets of counted events
    // in state too if a count must be exact.
    bus.publish(out, count, { key: event.key });
  },

  onMessage(_message) {
    throw reject("{{name}} counts events; it takes no messages");
  },
};
