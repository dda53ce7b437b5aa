// The agent's `capabilities.config` values (`agenthost:agent/config`, always granted).
import * as config from "agenthost:agent/config@0.1.0";
import { reject } from "./index.js";

/** The value of `key`, or `fallback` (null by default). */
export function get(key, fallback = null) {
  return config.get(key) ?? fallback;
}

/** The value of `key`; its absence rejects, naming the key and where to set it. */
export function require(key) {
  const value = config.get(key);
  if (value == null) {
    throw reject(`config "${key}" is not set: add it to capabilities.config in the manifest`);
  }
  return value;
}

/** Every value, as an object. */
export function all() {
  return Object.fromEntries(config.getAll());
}
