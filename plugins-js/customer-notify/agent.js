// customer-notify: tells the customers watching a product when its price changes or it is being
// restocked. Handles `ecommerce.order-updated.v1` records and sends one notification per record
// through the `send_notification` tool of an MCP server the host connects to.
//
// Conventions of componentize-qjs (the QuickJS engine; see wit/world.wit for the imports):
// - WIT names are camelCase in JS (`on-event` → `onEvent`, `structured-content` →
//   `structuredContent`); a variant is `{ tag, val }`; an option is the value or `null`.
// - A `result` export returns its ok value, or throws its err value: `throw { tag: "reject", val }`.
// - A `result` import returns its ok value, or throws an Error whose `payload` is the err value:
//   `{ tag: "denied" | "failed", val: reason }`.
// - `list<u8>` is a Uint8Array, u64 a number. There is no TextDecoder/TextEncoder and no console:
//   text is decoded below, and logging goes through the `log` import.
// - Any other exception traps the instance: the host retries the record, then dead-letters it.

import * as mcp from "agenthost:agent/mcp@0.1.0";
import * as config from "agenthost:agent/config@0.1.0";
import * as log from "agenthost:agent/log@0.1.0";
import pkg from "./package.json" with { type: "json" };

const TOOL = "send_notification";

export const agent = {
  card() {
    return {
      name: pkg.name,
      description: pkg.description,
      version: pkg.version,
      skills: [
        {
          id: "notify-watchers",
          name: "Notify watchers",
          description:
            "Tells the customers watching a product about its new price or its restock, from ecommerce.order-updated.v1 events",
          tags: ["notifications", "ecommerce"],
          examples: [],
        },
      ],
    };
  },

  onEvent(event) {
    const where = `${event.topic}[${event.partition}]@${event.offset}`;
    const update = parseUpdate(event.payload, where);
    const { subject, body } = compose(update, where);
    const server = config.get("notifier") ?? "notifier";
    const args = { audience: `watchers:${update.product}`, subject, body };

    let result;
    try {
      result = mcp.callTool(server, TOOL, JSON.stringify(args));
    } catch (e) {
      throw importFailure(e, `${TOOL} on ${server}`);
    }
    if (result.isError) {
      // The tool ran and said no (its relay is down, say): worth another attempt.
      throw retry(`${TOOL} on ${server} failed: ${text(result) || "no reason given"}`);
    }
    const sent = structured(result);
    log.log(
      "info",
      `notified ${sent.recipients ?? "?"} watchers of ${update.product} (${sent.id ?? "no id"})`,
    );
  },

  onMessage(_message) {
    return {
      message: {
        messageId: `customer-notify-${Date.now()}`,
        role: "agent",
        parts: [
          {
            tag: "text",
            val: "I work on ecommerce.order-updated.v1 events: for each reprice or restock I notify the customers watching the product. I do not take requests by message.",
          },
        ],
        taskId: null,
        contextId: null,
      },
      artifacts: [],
      state: "completed",
    };
  },
};

/// The order update in a record's payload, or a `reject` naming what is wrong with it.
function parseUpdate(payload, where) {
  let update;
  try {
    update = JSON.parse(utf8(payload));
  } catch (e) {
    throw reject(`${where}: payload is not JSON: ${e.message}`);
  }
  if (update === null || typeof update !== "object" || Array.isArray(update)) {
    throw reject(`${where}: payload must be a JSON object`);
  }
  if (typeof update.product !== "string" || update.product === "") {
    throw reject(`${where}: "product" is missing or not a non-empty string`);
  }
  return update;
}

/// Subject and body of the notification for an update.
function compose(update, where) {
  const { product, action } = update;
  switch (action) {
    case "reprice": {
      if (typeof update.price !== "number" || !Number.isFinite(update.price)) {
        throw reject(`${where}: a reprice needs a numeric "price"`);
      }
      if (update.currency != null && typeof update.currency !== "string") {
        throw reject(`${where}: "currency" must be a string`);
      }
      const currency = update.currency ? ` ${update.currency}` : "";
      return {
        subject: `New price for ${product}`,
        body: `${product} now costs ${update.price}${currency}`,
      };
    }
    case "restock":
      if (!Number.isInteger(update.incoming)) {
        throw reject(`${where}: a restock needs an integer "incoming"`);
      }
      return {
        subject: `${product} is being restocked`,
        body: `${update.incoming} units are on order`,
      };
    case undefined:
      throw reject(`${where}: "action" is missing (expected "reprice" or "restock")`);
    default:
      throw reject(
        `${where}: unknown action ${JSON.stringify(action)} (expected "reprice" or "restock")`,
      );
  }
}

/// The tool's structured content, or the JSON in its first text item.
function structured(result) {
  for (const candidate of [result.structuredContent, text(result)]) {
    if (!candidate) continue;
    try {
      const value = JSON.parse(candidate);
      if (value && typeof value === "object") return value;
    } catch {
      // not JSON: try the next
    }
  }
  return {};
}

/// The text items of a tool result, joined.
function text(result) {
  return result.content
    .filter((c) => c.tag === "text")
    .map((c) => c.val)
    .join("\n");
}

function reject(reason) {
  return { tag: "reject", val: reason };
}

function retry(reason) {
  return { tag: "retry", val: reason };
}

/// An import's error as this agent's failure: a policy refusal will not change by retrying, an
/// outage may.
function importFailure(e, what) {
  const error = e?.payload;
  if (error?.tag === "denied") return reject(`${what} denied: ${error.val}`);
  if (error?.tag === "failed") return retry(`${what} failed: ${error.val}`);
  throw e;
}

/// Strict UTF-8 decoding (QuickJS has no TextDecoder); throws on malformed input.
function utf8(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp;
    let extra;
    if (b < 0x80) {
      cp = b;
      extra = 0;
    } else if (b >= 0xc2 && b < 0xe0) {
      cp = b & 0x1f;
      extra = 1;
    } else if (b >= 0xe0 && b < 0xf0) {
      cp = b & 0x0f;
      extra = 2;
    } else if (b >= 0xf0 && b < 0xf5) {
      cp = b & 0x07;
      extra = 3;
    } else {
      throw new Error(`invalid UTF-8 at byte ${i}`);
    }
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined) throw new Error(`truncated UTF-8 at byte ${i}`);
      if ((c & 0xc0) !== 0x80) throw new Error(`invalid UTF-8 at byte ${i + k}`);
      cp = (cp << 6) | (c & 0x3f);
    }
    if (
      (extra === 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
      (extra === 3 && (cp < 0x10000 || cp > 0x10ffff))
    ) {
      throw new Error(`invalid UTF-8 at byte ${i}`);
    }
    out += String.fromCodePoint(cp);
    i += extra + 1;
  }
  return out;
}
