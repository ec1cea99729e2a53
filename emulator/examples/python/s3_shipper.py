#!/usr/bin/env python3
"""A Lambda extension in plain Python (standard library only) that ships the function's logs to S3.

It exists to show how to test an extension written in any language with lambda-emulator:

    lambda-emulator run --extension emulator/examples/python/s3_shipper.py \
        --bucket logs --env SHIPPER_BUCKET=logs --invocations 20

It registers under its file name, subscribes to the Telemetry API, keeps every delivered record,
writes what it holds as one NDJSON object at each INVOKE (the records of earlier invokes) and at
SHUTDOWN (after 100 ms without deliveries), and exits 0. S3 requests are signed with SigV4 by hand,
so it runs against real S3 as well as the emulator's endpoint (AWS_ENDPOINT_URL_S3).
"""

import datetime
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])
BUCKET = os.environ["SHIPPER_BUCKET"]
PORT = int(os.environ.get("SHIPPER_PORT", "4243"))
REGION = os.environ.get("AWS_REGION", "us-east-1")
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_S3", f"https://s3.{REGION}.amazonaws.com")

records = []
lock = threading.Lock()
last_delivery = time.monotonic()


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{API}{path}", data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as resp:
        return resp.status, resp.headers, resp.read()  # headers: case-insensitive


class Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global last_delivery
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            batch = json.loads(body)
        except ValueError:
            batch = []  # answered 200 anyway: Lambda would redeliver a refused body forever
        with lock:
            records.extend(json.dumps(r, separators=(",", ":")) for r in batch)
            last_delivery = time.monotonic()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass  # never log per delivery: with "extension" subscribed, our lines come back


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def put_object(key, body):
    """PutObject, path-style, signed with SigV4 (the AWS General Reference's algorithm)."""
    url = urllib.parse.urlsplit(ENDPOINT)
    path = "/" + BUCKET + "/" + urllib.parse.quote(key)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": url.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    token = os.environ.get("AWS_SESSION_TOKEN")
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["PUT", path, "", "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                           signed, payload_hash])
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = sign(("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode(), day)
    k = sign(sign(sign(k, REGION), "s3"), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    req = urllib.request.Request(f"{url.scheme}://{url.netloc}{path}", data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(req) as resp:
        return resp.status


def ship():
    """Writes what is held as one object; keeps it when S3 refuses (retried at the next chance)."""
    with lock:
        held = list(records)
    if not held:
        return
    try:
        put_object(f"python-example/{uuid.uuid4()}.ndjson", ("\n".join(held) + "\n").encode())
    except Exception as e:  # noqa: BLE001 — any failure keeps the records
        print(f"ship failed, kept {len(held)} records: {e}", file=sys.stderr)
        return
    with lock:
        del records[: len(held)]


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _, headers, _ = call("POST", "/2020-01-01/extension/register",
                         json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
                         {"Lambda-Extension-Name": NAME})
    ext_id = headers["Lambda-Extension-Identifier"]
    subscription = {
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{PORT}"},
    }
    call("PUT", "/2022-07-01/telemetry", json.dumps(subscription).encode(),
         {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"})
    while True:
        _, _, body = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
        event = json.loads(body)
        if event["eventType"] == "SHUTDOWN":
            # What Lambda still holds (the last report) comes after SHUTDOWN: wait for a quiet moment.
            deadline = event["deadlineMs"] / 1000 - 0.3
            while time.time() < deadline and time.monotonic() - last_delivery < 0.1:
                time.sleep(0.01)
            ship()
            sys.exit(0)
        ship()


if __name__ == "__main__":
    main()
