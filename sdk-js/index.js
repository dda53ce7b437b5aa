// agenthost-sdk: the parts of writing an agent that need no import, so they work in any world —
// text and JSON from the bytes the host hands over, the failures a handler throws, the errors
// an import throws, cards and replies. One module per import (`agenthost-sdk/bus`, `/state`,
// `/mcp`, `/a2a`, `/config`, `/log`, `/invocation`) wraps that import; an agent imports only
// what its manifest grants, because its component imports every interface its bundle uses.
//
// Conventions of the component runtime (componentize-qjs): a `result` export returns its ok
// value or throws its err value, so a handler fails by `throw reject("why")`; a `result` import
// returns its ok value or throws an Error whose `payload` is the err value (`{ tag: "denied" |
// "failed", val }`). QuickJS has no TextDecoder or TextEncoder: use `decodeText`/`encodeText`.

/** A permanent failure: the record is dead-lettered now, the A2A task fails. Throw it. */
export function reject(reason) {
  return { tag: "reject", val: String(reason) };
}

/** A transient failure: the record is delivered again after backoff. Throw it. */
export function retry(reason) {
  return { tag: "retry", val: String(reason) };
}

/** Whether `value` is a failure made by `reject` or `retry` (what a handler may throw). */
export function isFailure(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    (value.tag === "reject" || value.tag === "retry") &&
    typeof value.val === "string"
  );
}

/**
 * An import's thrown error as the handler's failure: a refusal by policy (`denied`) will not
 * change by retrying, so it rejects; an outage (`failed`) may, so it retries. `what` names the
 * call in the reason. Anything else (a bug) is rethrown.
 */
export function failureOf(error, what) {
  const err = error?.payload;
  if (err?.tag === "denied") return reject(`${what} denied: ${err.val}`);
  if (err?.tag === "failed") return retry(`${what} failed: ${err.val}`);
  throw error;
}

/** Calls `call()`, turning an import's error into the failure `failureOf` gives. */
export function checked(what, call) {
  try {
    return call();
  } catch (e) {
    throw failureOf(e, what);
  }
}

/** Strict UTF-8 decoding of a Uint8Array (or array of bytes); throws an Error naming the byte. */
export function decodeText(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp;
    let extra;
    let min;
    if (b < 0x80) {
      cp = b;
      extra = 0;
      min = 0;
    } else if (b >= 0xc2 && b < 0xe0) {
      cp = b & 0x1f;
      extra = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b < 0xf0) {
      cp = b & 0x0f;
      extra = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b < 0xf5) {
      cp = b & 0x07;
      extra = 3;
      min = 0x10000;
    } else {
      throw new Error(`invalid UTF-8 at byte ${i}`);
    }
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined) throw new Error(`truncated UTF-8 at byte ${i}`);
      if ((c & 0xc0) !== 0x80) throw new Error(`invalid UTF-8 at byte ${i + k}`);
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      throw new Error(`invalid UTF-8 at byte ${i}`);
    }
    out += String.fromCodePoint(cp);
    i += extra + 1;
  }
  return out;
}

/** UTF-8 encoding of a string into a Uint8Array. */
export function encodeText(text) {
  const bytes = [];
  for (const ch of String(text)) {
    let cp = ch.codePointAt(0);
    // A lone surrogate is not encodable: U+FFFD, as TextEncoder does.
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    if (cp < 0x80) {
      bytes.push(cp);
    } else if (cp < 0x800) {
      bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    } else {
      bytes.push(
        0xf0 | (cp >> 18),
        0x80 | ((cp >> 12) & 0x3f),
        0x80 | ((cp >> 6) & 0x3f),
        0x80 | (cp & 0x3f),
      );
    }
  }
  return new Uint8Array(bytes);
}

/** Bytes for a payload: a Uint8Array as is, a string as UTF-8, anything else as JSON. */
export function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return encodeText(value);
  return encodeText(JSON.stringify(value));
}

/** Where an event came from, as the host's logs and audit write it: `topic[partition]@offset`. */
export function position(event) {
  return `${event.topic}[${event.partition}]@${event.offset}`;
}

/** An event's payload as text; a payload that is not UTF-8 rejects the event, naming it. */
export function eventText(event) {
  try {
    return decodeText(event.payload);
  } catch (e) {
    throw reject(`${position(event)}: payload is not UTF-8 text: ${e.message}`);
  }
}

/**
 * An event's payload parsed as JSON. A payload that is not JSON rejects the event saying so;
 * `check(value)`, when given, returns an error text for JSON of the wrong shape (or nothing),
 * which rejects the event as "JSON that does not match".
 */
export function eventJson(event, check) {
  const text = eventText(event);
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw reject(`${position(event)}: payload is not JSON: ${e.message}`);
  }
  const problem = check ? check(value) : undefined;
  if (problem) throw reject(`${position(event)}: payload does not match: ${problem}`);
  return value;
}

/** An event's key as text, or null when it has none (or it is not UTF-8). */
export function eventKey(event) {
  if (event.key == null) return null;
  try {
    return decodeText(event.key);
  } catch {
    return null;
  }
}

/** The value of an event's header `name` as text, or null. */
export function eventHeader(event, name) {
  const header = event.headers.find((h) => h.key === name);
  if (!header) return null;
  try {
    return decodeText(header.value);
  } catch {
    return null;
  }
}

/** The text parts of an A2A message, joined by newlines. */
export function messageText(message) {
  return message.parts
    .filter((p) => p.tag === "text")
    .map((p) => p.val)
    .join("\n");
}

/** The first data part of an A2A message, parsed, or null; a part that is not JSON rejects. */
export function messageData(message) {
  const part = message.parts.find((p) => p.tag === "data");
  if (!part) return null;
  try {
    return JSON.parse(part.val);
  } catch (e) {
    throw reject(`the message's data part is not JSON: ${e.message}`);
  }
}

/**
 * A completed reply whose message is `text` (and a data part for `data`, when given). Its
 * message id is left empty: the host gives it a unique one.
 */
export function textReply(text, data) {
  const parts = [{ tag: "text", val: String(text) }];
  if (data !== undefined) parts.push({ tag: "data", val: JSON.stringify(data) });
  return {
    message: {
      messageId: "",
      role: "agent",
      parts,
      taskId: null,
      contextId: null,
    },
    artifacts: [],
    state: "completed",
  };
}

/** An agent card. `skills` are `skill(...)` values. */
export function card(name, version, { description = "", skills = [] } = {}) {
  return { name, description, version, skills };
}

/**
 * The tag prefix that carries a skill's input schema: the WIT `skill` record (contract 0.1.0)
 * has no field for it, and the host takes this tag out of the card it shows.
 */
export const INPUT_SCHEMA_TAG = "agenthost:input-schema=";

/**
 * A skill of a card. `inputSchema` (a JSON Schema of `type: "object"`) declares what the skill
 * takes as an MCP tool: the host refuses arguments that fail it, and the agent receives them as
 * one data part (`messageData`). Without one, the tool takes `{ text }` and the agent a text part.
 */
export function skill(
  id,
  name,
  { description = "", tags = [], examples = [], inputSchema = undefined } = {},
) {
  const allTags = tags.filter((t) => !t.startsWith(INPUT_SCHEMA_TAG));
  if (inputSchema !== undefined) {
    if (inputSchema === null || typeof inputSchema !== "object" || inputSchema.type !== "object") {
      throw new TypeError(`skill ${id}: inputSchema must be a JSON Schema with type "object"`);
    }
    allTags.push(INPUT_SCHEMA_TAG + JSON.stringify(inputSchema));
  }
  return { id, name, description, tags: allTags, examples };
}
