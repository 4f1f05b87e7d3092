"""A webhook receiver for the tests, run as its own process on 127.0.0.1.

It verifies every request with the ``standardwebhooks`` reference library (the secret comes
from the variable named by ``--secret-env``), records it as one JSON line in ``--out`` (headers,
whether it verified, the payload) and answers:

- the status given by ``--fail-status`` to the first ``--fail`` requests (with
  ``Retry-After: 0`` for 429), or holds the first ``--hang`` requests open until it is stopped;
- 401 to a request whose signature does not verify;
- 204 otherwise.

With ``--pause-on TYPE`` it holds its answer to the first verified event of that type: it
creates ``<out>.paused`` and answers once ``<out>.resume`` exists (at most 60 s later), so a test
can act while the sender is at that point of its run.

With ``--tls-cert`` and ``--tls-key`` it speaks HTTPS. It prints its port on the first line of
standard output once it listens.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "host", "user-agent")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret-env", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--hang", type=int, default=0)
    parser.add_argument("--pause-on")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    verifier = Webhook(os.environ[args.secret_env])
    lock = threading.Lock()
    seen = [0]
    never = threading.Event()
    paused = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                seen[0] += 1
                n = seen[0]
            record = {"n": n, "headers": {h: headers.get(h) for h in SIGNED_HEADERS}}
            try:
                record["payload"] = verifier.verify(body, headers)
                record["verified"] = True
            except Exception as exc:
                record["verified"], record["error"] = False, repr(exc)
            with lock, open(args.out, "a") as f:
                f.write(json.dumps(record) + "\n")
            event_type = (record.get("payload") or {}).get("type")
            if args.pause_on and event_type == args.pause_on and not paused.is_set():
                paused.set()
                _pause(args.out)
            if n <= args.hang:
                never.wait(120)  # held open: the sender's timeout ends the attempt
                return
            if n <= args.fail:
                status, extra = args.fail_status, {"Retry-After": "0"}
            else:
                status, extra = (204 if record["verified"] else 401), {}
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


def _pause(out: str) -> None:
    """Mark the pause, then wait for the test to allow the answer."""
    open(out + ".paused", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(out + ".resume") and time.monotonic() < deadline:
        time.sleep(0.02)


if __name__ == "__main__":
    main()
