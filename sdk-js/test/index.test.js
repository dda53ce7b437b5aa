// The helpers that need no import, run in Node against what the standard library says.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  INPUT_SCHEMA_TAG,
  decodeText,
  encodeText,
  eventJson,
  eventKey,
  failureOf,
  messageText,
  reject,
  retry,
  skill,
  textReply,
  toBytes,
} from "../index.js";

const samples = ["", "plain", "prix: 12,50 €", "日本語", "emoji 🦀 and ẞ", "\u0000\u007f\u0080\u07ff\u0800\uffff"];

test("text round-trips like TextEncoder/TextDecoder", () => {
  for (const s of samples) {
    const bytes = encodeText(s);
    assert.deepEqual(bytes, new TextEncoder().encode(s), s);
    assert.equal(decodeText(bytes), s);
  }
});

test("malformed UTF-8 is refused, naming the byte", () => {
  for (const [bytes, at] of [
    [[0x61, 0xff], 1],
    [[0xc0, 0x80], 0], // overlong
    [[0xed, 0xa0, 0x80], 0], // surrogate
    [[0xe2, 0x82], 0], // truncated
    [[0x61, 0xe2, 0x28, 0xa1], 2],
  ]) {
    assert.throws(() => decodeText(new Uint8Array(bytes)), new RegExp(`at byte ${at}`));
  }
});

const event = (payload, key = null) => ({
  topic: "t.in.v1",
  partition: 0,
  offset: 7,
  key: key == null ? null : encodeText(key),
  payload: encodeText(payload),
  headers: [],
  timestampMs: 0,
  correlationId: "c",
  attempt: 1,
});

test("not JSON and JSON of the wrong shape are told apart", () => {
  assert.deepEqual(eventJson(event('{"a": 1}')), { a: 1 });
  assert.throws(
    () => eventJson(event("{oops")),
    (f) => f.tag === "reject" && f.val.startsWith("t.in.v1[0]@7: payload is not JSON"),
  );
  const needsA = (v) => (typeof v?.a === "number" ? null : '"a" must be a number');
  assert.throws(
    () => eventJson(event('{"b": 1}'), needsA),
    (f) => f.tag === "reject" && f.val === 't.in.v1[0]@7: payload does not match: "a" must be a number',
  );
  assert.equal(eventKey(event("x", "k-1")), "k-1");
  assert.equal(eventKey(event("x")), null);
});

test("import errors become failures: denied rejects, failed retries", () => {
  const thrown = (tag, val) => Object.assign(new Error("import failed"), { payload: { tag, val } });
  assert.deepEqual(failureOf(thrown("denied", "not granted"), "publish to x"), reject("publish to x denied: not granted"));
  assert.deepEqual(failureOf(thrown("failed", "timeout"), "publish to x"), retry("publish to x failed: timeout"));
  const bug = new TypeError("bug");
  assert.throws(() => failureOf(bug, "x"), TypeError);
});

test("payloads, replies and message text", () => {
  assert.deepEqual(toBytes({ n: 1 }), encodeText('{"n":1}'));
  assert.deepEqual(toBytes("é"), new Uint8Array([0xc3, 0xa9]));
  const reply = textReply("hi", { n: 1 });
  assert.equal(reply.state, "completed");
  assert.equal(messageText(reply.message), "hi");
  assert.deepEqual(reply.message.parts[1], { tag: "data", val: '{"n":1}' });
});

test("a skill's input schema travels as one tag, and must describe an object", () => {
  const schema = { type: "object", properties: { sku: { type: "string" } }, required: ["sku"] };
  const s = skill("quote", "Quote", { tags: ["pricing"], inputSchema: schema });
  assert.deepEqual(s.tags, ["pricing", INPUT_SCHEMA_TAG + JSON.stringify(schema)]);
  assert.deepEqual(skill("x", "X").tags, []);
  assert.throws(() => skill("x", "X", { inputSchema: { type: "string" } }), /skill x: inputSchema/);
});
