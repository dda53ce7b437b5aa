// {{name}}: for each event of `{{name}}.in.v1`, a JSON object, calls the MCP tool named in
// config (`server`, `tool`) with that object as its arguments, and publishes the tool's text
// to the topic in config `out`, keyed like the event. The host owns the connection to the
// server; the manifest grants this agent that one tool and nothing else.
import { card, eventJson, reject } from "agenthost-sdk";
import * as bus from "agenthost-sdk/bus";
import * as config from "agenthost-sdk/config";
import * as mcp from "agenthost-sdk/mcp";
import pkg from "./package.json" with { type: "json" };

const isObject = (v) =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? null : "expected a JSON object";

export const agent = {
  card() {
    return card(pkg.name, pkg.version, { description: "Calls an MCP tool for each event" });
  },

  onEvent(event) {
    const out = config.require("out");
    const server = config.require("server");
    const tool = config.require("tool");
    const args = eventJson(event, isObject);
    // Not granted: rejected (dead-lettered); the server down: retried.
    const result = mcp.callTool(server, tool, args);
    if (result.isError) {
      // The tool ran and said no: that is its answer, not a reason to retry.
      throw reject(`${server}/${tool} failed: ${result.text}`);
    }
    bus.publish(out, result.text, { key: event.key });
  },

  onMessage(_message) {
    throw reject("{{name}} works on events; it takes no messages");
  },
};
