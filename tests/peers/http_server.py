"""An HTTP origin for the `capabilities.http` tests, on Python's standard http.server.

GET /redirect?to=URL answers 302 to URL; any other GET answers 200 with
"hello from PORT PATH". Every request is logged to stderr as one "request ..." line, so a
test can prove that a server was never reached.

Usage: python3 http_server.py PORT
"""

import http.server
import sys
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/redirect":
            target = urllib.parse.parse_qs(url.query).get("to", ["/"])[0]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"hello from {self.server.server_port} {url.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("request " + (format % args) + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    port = int(sys.argv[1])
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
