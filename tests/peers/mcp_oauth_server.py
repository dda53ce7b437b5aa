"""An MCP server behind OAuth 2.1 whose authorization server rotates refresh tokens, on the
official Python SDK (`MCPServer` with its authorization-server routes: RFC 9728 protected-resource
metadata, RFC 8414 metadata, the token endpoint with client authentication, bearer checks).

One pre-registered public client, `agenthost` (token endpoint authentication `none`: this SDK's
authorization server wants `client_id` in the form even beside Basic credentials, which RFC 6749
§2.3.1 clients do not send), holds one refresh token issued beforehand, `seed-1`. Every refresh revokes the token spent and issues a new one (OAuth
2.1 §4.3.1), so a spent token is refused with `invalid_grant`. Access tokens live
`ACCESS_TTL` seconds and are bound to the MCP endpoint (RFC 8707). A refresh that does not name
the endpoint as `resource` is refused with `invalid_target`. Each token request is appended to
LOG as one JSON line: grant type, the refresh token presented, resource, and the outcome.

usage: mcp_oauth_server.py PORT LOG
"""

import json
import secrets
import sys
import time
import urllib.parse

from mcp.server.auth.provider import AccessToken, RefreshToken, TokenError
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

PORT = int(sys.argv[1])
LOG = sys.argv[2]
ISSUER = f"http://127.0.0.1:{PORT}"
RESOURCE = f"{ISSUER}/mcp"
ACCESS_TTL = 33
CLIENT = OAuthClientInformationFull(
    client_id="agenthost",
    token_endpoint_auth_method="none",
    grant_types=["refresh_token"],
    redirect_uris=None,
)


def log(entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


class RotatingProvider:
    """Refresh tokens that work once; access tokens that expire."""

    def __init__(self):
        self.refresh_tokens = {
            "seed-1": RefreshToken(token="seed-1", client_id="agenthost", scopes=["tools"], resource=RESOURCE)
        }
        self.access_tokens = {}

    async def get_client(self, client_id):
        return CLIENT if client_id == CLIENT.client_id else None

    async def register_client(self, client_info):
        raise NotImplementedError

    async def authorize(self, client, params):
        raise NotImplementedError

    async def load_authorization_code(self, client, code):
        return None

    async def exchange_authorization_code(self, client, code):
        raise NotImplementedError

    async def load_refresh_token(self, client, refresh_token):
        return self.refresh_tokens.get(refresh_token)

    async def exchange_refresh_token(self, client, refresh_token, scopes):
        if self.refresh_tokens.pop(refresh_token.token, None) is None:
            raise TokenError("invalid_grant", "refresh token already spent")
        access = "at-" + secrets.token_hex(8)
        rotated = "rt-" + secrets.token_hex(8)
        self.access_tokens[access] = AccessToken(
            token=access,
            client_id=client.client_id,
            scopes=scopes,
            expires_at=int(time.time()) + ACCESS_TTL,
            resource=RESOURCE,
        )
        self.refresh_tokens[rotated] = RefreshToken(
            token=rotated, client_id=client.client_id, scopes=scopes, resource=RESOURCE
        )
        log({"issued": rotated, "spent": refresh_token.token})
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=ACCESS_TTL,
            refresh_token=rotated,
            scope=" ".join(scopes),
        )

    async def load_access_token(self, token):
        access = self.access_tokens.get(token)
        if access is None or (access.expires_at and access.expires_at < time.time()):
            return None
        return access

    async def revoke_token(self, token):
        self.access_tokens.pop(token.token, None)
        self.refresh_tokens.pop(token.token, None)


server = MCPServer(
    "rotating",
    version="1.0.0",
    log_level="WARNING",
    auth_server_provider=RotatingProvider(),
    auth=AuthSettings(
        issuer_url=ISSUER,
        resource_server_url=RESOURCE,
        validate_token_resource=True,
        required_scopes=["tools"],
    ),
)


@server.tool()
def echo(text: str) -> str:
    """Answers with the text it was sent."""
    return text


def token_requests_logged(app):
    """Logs each token request and refuses a refresh without this server as `resource`."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/token":
            return await app(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        entry = {
            "grant_type": form.get("grant_type"),
            "refresh_token": form.get("refresh_token"),
            "resource": form.get("resource"),
            "scope": form.get("scope"),
        }
        log(entry)
        if form.get("grant_type") == "refresh_token" and form.get("resource") != RESOURCE:
            payload = json.dumps({"error": "invalid_target", "error_description": "resource must be " + RESOURCE})
            await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload.encode()})
            return

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return wrapped


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(token_requests_logged(server.streamable_http_app()), host="127.0.0.1", port=PORT, log_level="warning")
