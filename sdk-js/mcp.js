// MCP tools (`agenthost:agent/mcp`, granted by `capabilities.mcp`).
import * as mcp from "agenthost:agent/mcp@0.1.0";
import { checked } from "./index.js";

/**
 * Calls `tool` of `server` with `args` (an object, sent as JSON) and returns `{ text,
 * structured, isError, content }`: the text items joined, the structured content parsed (or
 * null), whether the tool says it failed, and the raw content. A refusal throws a `reject`,
 * an outage a `retry`; what a tool that ran but failed means is the agent's to decide.
 */
export function callTool(server, tool, args = {}) {
  const what = `${server}/${tool}`;
  const result = checked(`MCP ${what}`, () => mcp.callTool(server, tool, JSON.stringify(args)));
  const text = result.content
    .filter((c) => c.tag === "text")
    .map((c) => c.val)
    .join("\n");
  let structured = null;
  if (result.structuredContent != null) {
    try {
      structured = JSON.parse(result.structuredContent);
    } catch {
      structured = null;
    }
  }
  return { text, structured, isError: result.isError, content: result.content };
}

/** The granted tools of `server`. */
export function listTools(server) {
  return checked(`MCP list ${server}`, () => mcp.listTools(server));
}
