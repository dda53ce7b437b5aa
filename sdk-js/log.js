// The host's log (`agenthost:agent/log`, always granted), tagged with the agent and the
// correlation id of what is being handled. There is no console in the component.
import * as log from "agenthost:agent/log@0.1.0";

export const trace = (message) => log.log("trace", String(message));
export const debug = (message) => log.log("debug", String(message));
export const info = (message) => log.log("info", String(message));
export const warn = (message) => log.log("warn", String(message));
export const error = (message) => log.log("error", String(message));
