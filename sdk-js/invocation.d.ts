/**
 * The id of the card skill the caller addressed: the skill behind an MCP tool call. Null for
 * bus records and A2A messages.
 */
export function skill(): string | null;
