// An MCP client on the official TypeScript SDK (2025-11-25 sessions), for the tests of the
// host's MCP server, over streamable HTTP or, with a URL of `stdio:`, through a command it
// launches (the rest of the arguments after `--`).
//
// usage: node mcp_tool_client.mjs URL OPS_JSON [KEY=VALUE header ...] [-- COMMAND ARGS...]
//
// Each operation answers one JSON line on stdout:
// - {"op": "list"} -> {"protocol", "tools": [{name, title, description, inputSchema}]}
// - {"op": "call", "name", "arguments"} -> {"is_error", "content", "structured", "meta"}
//   or {"error": {"code", "message"}}
// - {"op": "call", ..., "progress": true} adds "progress": [the progress values received]
// - {"op": "call", ..., "cancel_after_ms": N} aborts the call after N ms (the SDK sends
//   notifications/cancelled) -> {"canceled": true} once it is aborted
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, opsJson, ...rest] = process.argv.slice(2);
const dash = rest.indexOf("--");
const headerArgs = dash < 0 ? rest : rest.slice(0, dash);
const command = dash < 0 ? [] : rest.slice(dash + 1);
const headers = Object.fromEntries(
  headerArgs.map((h) => [h.slice(0, h.indexOf("=")), h.slice(h.indexOf("=") + 1)]),
);

const transport =
  url === "stdio:"
    ? new StdioClientTransport({ command: command[0], args: command.slice(1), stderr: "inherit" })
    : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "agenthost-tests", version: "1.0.0" });
await client.connect(transport);
const protocol = transport.protocolVersion ?? null;

for (const op of JSON.parse(opsJson)) {
  console.log(JSON.stringify(await one(op)));
}
await client.close();

async function one(op) {
  try {
    if (op.op === "list") {
      const tools = [];
      let cursor;
      do {
        const page = await client.listTools(cursor ? { cursor } : undefined);
        tools.push(
          ...page.tools.map((t) => ({
            name: t.name,
            title: t.title ?? null,
            description: t.description ?? null,
            inputSchema: t.inputSchema,
          })),
        );
        cursor = page.nextCursor;
      } while (cursor);
      return { protocol, tools };
    }
    const progress = [];
    const abort = new AbortController();
    const options = { signal: abort.signal, timeout: 60_000 };
    if (op.progress) {
      options.onprogress = (p) => progress.push(p.progress);
    }
    if (op.cancel_after_ms !== undefined) {
      setTimeout(() => abort.abort("the test gave up"), op.cancel_after_ms);
    }
    const result = await client.callTool(
      { name: op.name, arguments: op.arguments },
      CallToolResultSchema,
      options,
    );
    const out = {
      is_error: Boolean(result.isError),
      content: result.content,
      structured: result.structuredContent ?? null,
      meta: result._meta ?? null,
    };
    if (op.progress) out.progress = progress;
    return out;
  } catch (e) {
    if (op.cancel_after_ms !== undefined && e?.name === "AbortError") return { canceled: true };
    if (op.cancel_after_ms !== undefined && String(e).includes("the test gave up")) {
      return { canceled: true };
    }
    return { error: { code: e?.code ?? null, message: String(e?.message ?? e) } };
  }
}
