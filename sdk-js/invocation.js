// What the invocation in progress was asked for (`agenthost:agent/invocation`, always granted).
import * as invocation from "agenthost:agent/invocation@0.1.0";

/**
 * The id of the card skill the caller addressed: the skill behind an MCP tool call, so an
 * agent offering several skills as tools knows which one was called. Null for bus records and
 * A2A messages.
 */
export function skill() {
  return invocation.skill() ?? null;
}
