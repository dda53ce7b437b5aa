// Publishing to the bus (`agenthost:agent/bus`, granted by `capabilities.publish`).
import * as bus from "agenthost:agent/bus@0.1.0";
import { checked, encodeText, toBytes } from "./index.js";

function outgoing(topic, payload, { key = null, headers = {} } = {}) {
  return {
    topic,
    key: key == null ? null : toBytes(key),
    payload: toBytes(payload),
    headers: Object.entries(headers).map(([k, v]) => ({ key: k, value: encodeText(v) })),
  };
}

/**
 * Publishes one record and waits for the bus to accept it; returns `{ topic, partition,
 * offset }`. `payload`: a Uint8Array, a string (UTF-8) or any other value (JSON). A refusal
 * throws a `reject`, an outage a `retry`, naming the topic.
 */
export function publish(topic, payload, options) {
  return checked(`publish to ${topic}`, () => bus.publish(outgoing(topic, payload, options)));
}

/**
 * Sends one record without waiting: the event is finished only once the bus accepted it
 * (the host waits), so this is as safe as `publish` and faster. Same arguments as `publish`.
 */
export function send(topic, payload, options) {
  checked(`send to ${topic}`, () => bus.send(outgoing(topic, payload, options)));
}

/** Republishes an event unchanged (payload, key and headers) to `topic`. */
export function forward(topic, event) {
  return checked(`publish to ${topic}`, () =>
    bus.publish({ topic, key: event.key, payload: event.payload, headers: event.headers }),
  );
}
