// Messages to other agents (`agenthost:agent/a2a`, granted by `capabilities.a2a`).
import * as a2a from "agenthost:agent/a2a@0.1.0";
import { checked, messageText } from "./index.js";

/**
 * Sends `text` to `peer` (an agent name, a skill id or an A2A URL) and returns `{ text, state,
 * response }`: the reply's text (its message, else its artifacts'), the task state, and the raw
 * response.
 */
export function sendText(peer, text) {
  const message = {
    messageId: "",
    role: "user",
    parts: [{ tag: "text", val: String(text) }],
    taskId: null,
    contextId: null,
  };
  const response = checked(`A2A to ${peer}`, () => a2a.sendMessage(peer, message));
  const parts = response.message
    ? [response.message]
    : response.artifacts.map((a) => ({ parts: a.parts }));
  return { text: parts.map(messageText).join("\n"), state: response.state, response };
}
