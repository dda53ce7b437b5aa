#!/bin/sh
# The host's MCP client under the MCP conformance suite's client scenarios: the suite runs
# `sh conformance_client.sh URL` with MCP_CONFORMANCE_SCENARIO set; this runs
# `agenthost mcp-probe` ($AGENTHOST) against the suite's server, calling the tool each scenario
# expects.
set -eu
url="$1"
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  tools_call) exec "$AGENTHOST" mcp-probe --url "$url" --tool add_numbers --args '{"a": 1, "b": 2}' ;;
  sse-retry) exec "$AGENTHOST" mcp-probe --url "$url" --tool test_reconnection --args '{}' ;;
  *) exec "$AGENTHOST" mcp-probe --url "$url" ;;
esac
