// The agent's key-value state (`agenthost:agent/state`, granted by `capabilities.state`).
import * as state from "agenthost:agent/state@0.1.0";
import { checked, decodeText, reject, toBytes } from "./index.js";

/** The bytes stored under `key`, or null. */
export function get(key) {
  return checked(`state get ${key}`, () => state.get(key)) ?? null;
}

/** The JSON value stored under `key`, or null; a stored value that is not JSON rejects. */
export function getJson(key) {
  const bytes = get(key);
  if (bytes == null) return null;
  try {
    return JSON.parse(decodeText(bytes));
  } catch (e) {
    throw reject(`state ${key} does not hold JSON: ${e.message}`);
  }
}

/** Stores `value` under `key`: bytes as they are, a string as UTF-8, anything else as JSON. */
export function set(key, value) {
  checked(`state set ${key}`, () => state.set(key, toBytes(value)));
}

/** Deletes `key` (nothing happens when it is absent). */
export function remove(key) {
  checked(`state delete ${key}`, () => state.delete(key));
}

/** The keys starting with `prefix`, in byte order. */
export function keys(prefix = "") {
  return checked(`state list ${prefix}`, () => state.listKeys(prefix));
}
