#!/bin/sh
# The host's MCP client under the MCP conformance suite's client scenarios: the suite runs
# `sh conformance_client.sh URL` with MCP_CONFORMANCE_SCENARIO (and, for the OAuth scenarios,
# MCP_CONFORMANCE_CONTEXT: the client's registration) set; this runs `agenthost mcp-probe`
# ($AGENTHOST) against the suite's server, calling the tool each scenario expects.
set -eu
url="$1"
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  tools_call) exec "$AGENTHOST" mcp-probe --url "$url" --tool add_numbers --args '{"a": 1, "b": 2}' ;;
  sse-retry) exec "$AGENTHOST" mcp-probe --url "$url" --tool test_reconnection --args '{}' ;;
  auth/client-credentials-basic | auth/resource-mismatch | auth/offline-access-not-supported)
    # The registration goes where an operator puts it: a host config naming the variable that
    # holds the secret.
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    client_id=$(python3 -c 'import json, os; print(json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}").get("client_id", "agenthost"))')
    PROBE_CLIENT_SECRET=$(python3 -c 'import json, os; print(json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}").get("client_secret", "unregistered"))')
    export PROBE_CLIENT_SECRET
    cat > "$dir/agenthost.toml" <<TOML
[mcp.servers.probe]
url = "$url"

[mcp.servers.probe.oauth]
client_id = "$client_id"
client_secret_env = "PROBE_CLIENT_SECRET"
TOML
    "$AGENTHOST" mcp-probe probe --config "$dir/agenthost.toml"
    ;;
  *) exec "$AGENTHOST" mcp-probe --url "$url" ;;
esac
