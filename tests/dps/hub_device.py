"""A device app on the hub of `iotca dps serve`, through the real Azure IoT
Python device SDK (azure-iot-device 2.14): IoTHubDeviceClient over MQTT
with an X.509 certificate, connecting to the gateway host "localhost".

    python tests/dps/hub_device.py --hub HUB --device-id ID --cert FULLCHAIN \
        --key KEY --trust CA.pem [--port PORT]

Reads commands from stdin, one a line, and answers each with one JSON line
on stdout:
    send BODY      sends BODY (content type application/json, encoding
                   utf-8, custom property "seq") -> {"ok": true} or
                   {"ok": false, "error": "<exception class>", "message": "..."}
    connected      -> {"ok": true, "connected": <the SDK's client.connected>}
    quit           shuts the client down and exits
The first line printed is the answer to connect().

The SDK always connects to port 8883; --port patches paho's
Client.connect (as tests/dps/register.py does).
"""

import argparse
import json
import sys
import time

import paho.mqtt.client as mqtt
from azure.iot.device import IoTHubDeviceClient, Message, X509


def patch_port(port):
    original = mqtt.Client.connect

    def connect(self, *args, **kwargs):
        if "port" in kwargs:
            kwargs["port"] = port
        elif len(args) >= 2:
            args = (args[0], port) + tuple(args[2:])
        else:
            kwargs["port"] = port
        return original(self, *args, **kwargs)

    mqtt.Client.connect = connect


def cause_chain(e):
    parts = []
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        parts.append("{}: {}".format(type(e).__name__, e))
        e = e.__cause__ or e.__context__
    return " <- ".join(parts)


def answer(fn):
    try:
        fn()
        out = {"ok": True}
    except Exception as e:  # noqa: BLE001 - the test reads every failure
        out = {"ok": False, "error": type(e).__name__, "message": cause_chain(e)}
    print(json.dumps(out), flush=True)


def send(client, m):
    """Sends m. A send racing the SDK's own handling of a connection the
    server just closed fails with NoConnectionError before the SDK has
    noticed; the device's next attempt (the SDK reconnects by itself) is
    the answer the hub gives it, so try once more after a moment."""
    from azure.iot.device.exceptions import NoConnectionError

    try:
        return client.send_message(m)
    except NoConnectionError:
        time.sleep(1)
        return client.send_message(m)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hub", required=True)
    p.add_argument("--device-id", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--trust", required=True)
    p.add_argument("--port", type=int)
    args = p.parse_args()
    if args.port:
        patch_port(args.port)
    with open(args.trust) as f:
        trust = f.read()
    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file=args.cert, key_file=args.key),
        hostname=args.hub,
        device_id=args.device_id,
        server_verification_cert=trust,
        gateway_hostname="localhost",
        connection_retry=False,
    )
    answer(client.connect)
    seq = 0
    for line in sys.stdin:
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "send":
            seq += 1
            m = Message(rest)
            m.content_type = "application/json"
            m.content_encoding = "utf-8"
            m.custom_properties["seq"] = str(seq)
            answer(lambda: send(client, m))
        elif cmd == "connected":
            print(json.dumps({"ok": True, "connected": client.connected}), flush=True)
        elif cmd == "quit":
            break
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001 - a refused device cannot shut down cleanly
        pass


if __name__ == "__main__":
    main()
