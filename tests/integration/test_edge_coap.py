"""The CoAP connector (docs/edge.md "CoAP") against libcoap's own tools: readings POSTed with
`coap-client` in each payload format reach a real HTTP receiver; every refusal has its code
and reason; an observation of libcoap's `coap-server` turns each notification into a reading
and comes back after the server restarts; an acknowledged reading survives `kill -9`; config
errors name file and line."""

import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCALHOST, CoapServer, Gateway, Receiver, check_config, coap, coaps,  # noqa: E402
                     free_port, make_pki, openssl, wait_until)
from test_edge import TOKEN  # noqa: E402

CONFIG = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - name: field
    kind: coap
@CONNECTOR@
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 100, max_delay: 50ms }
    retry: { initial: 50ms, max: 200ms }
@QUEUE@
pipelines:
  - { name: raw, from: [ field ], to: [ uplink ] }
access_log: { enabled: false }
@EDGE@
"""


def config(sink_port, connector, queue="", edge=""):
    port, admin = free_port(), free_port()
    text = CONFIG
    for key, value in (("@HOST@", LOCALHOST), ("@PORT@", str(port)), ("@ADMIN@", str(admin)),
                       ("@TOKEN@", TOKEN), ("@SINK@", str(sink_port)), ("@CONNECTOR@", connector),
                       ("@QUEUE@", queue), ("@EDGE@", edge)):
        text = text.replace(key, value)
    return text, admin


def connector_status(gw):
    return gw.admin("GET", "/edge", token=TOKEN).json()["connectors"][0]


# A few lines of CoAP (RFC 7252 3) for what coap-client cannot send: a message again with the
# same id, repeated options, a server that answers as the test says.
CON, NON, ACK, RST = 0, 1, 2, 3


def encode(mtype, code, mid, token=b"", options=(), payload=b""):
    out = bytearray([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta, length = number - last, len(value)
        nibbles, extended = [], b""
        for n in (delta, length):  # RFC 7252 3.1: 13 and 14 say one or two bytes follow
            if n < 13:
                nibbles.append(n)
            elif n < 269:
                nibbles.append(13)
                extended += bytes([n - 13])
            else:
                nibbles.append(14)
                extended += struct.pack("!H", n - 269)
        out += bytes([(nibbles[0] << 4) | nibbles[1]]) + extended + value
        last = number
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def decode(data):
    mtype, tkl, code = (data[0] >> 4) & 3, data[0] & 15, data[1]
    mid = struct.unpack("!H", data[2:4])[0]
    token, at, number, options = data[4:4 + tkl], 4 + tkl, 0, []
    while at < len(data) and data[at] != 0xFF:
        delta, length = data[at] >> 4, data[at] & 15
        at += 1
        if delta == 13:
            delta, at = data[at] + 13, at + 1
        elif delta == 14:
            delta, at = struct.unpack("!H", data[at:at + 2])[0] + 269, at + 2
        if length == 13:
            length, at = data[at] + 13, at + 1
        elif length == 14:
            length, at = struct.unpack("!H", data[at:at + 2])[0] + 269, at + 2
        number += delta
        options.append((number, data[at:at + length]))
        at += length
    payload = data[at + 1:] if at < len(data) else b""
    return {"type": mtype, "code": "%d.%02d" % (code >> 5, code & 31), "mid": mid, "token": token,
            "options": options, "payload": payload}


def uint(v):
    return v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""


def post_raw(udp, mid, device, payload, content_format=50, extra=(), token=b"\x01\x02"):
    """A confirmable POST /readings/<device> from one socket; returns the socket and the datagram."""
    opts = [(11, b"readings"), (11, device.encode()), (12, uint(content_format))] + list(extra)
    return encode(CON, 0x02, mid, token, opts, payload.encode())


def device_socket(test, udp):
    """A device's UDP socket talking to the endpoint on `udp` (closed when `test` ends)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    test.addCleanup(sock.close)
    sock.settimeout(3)
    sock.connect((LOCALHOST, udp))
    return sock


def exchange(sock, datagram):
    sock.send(datagram)
    return decode(sock.recv(2048))


class Endpoint(unittest.TestCase):
    def test_readings_in_each_format_reach_the_sink(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                base = "coap://%s:%d" % (LOCALHOST, udp)
                t0 = int(time.time()) * 1000 - 1000
                code, body = coap("post", base + "/readings/pump-1", json.dumps({"value": 21.5, "ts": t0}), "json")
                self.assertEqual(code, "2.xx", body)
                self.assertEqual(json.loads(body), {"accepted": 1, "rejected": 0})
                code, body = coap("put", base + "/readings/pump-2?metric=flow", "3.25", 0)  # text/plain: line
                self.assertEqual(code, "4.00", body)  # protocol, which "3.25" is not
                code, body = coap("put", base + "/readings/pump-2?metric=flow", json.dumps([{"value": 3.25}]), 50)
                self.assertEqual(code, "2.xx", body)
                senml = [{"bn": "valve-7/", "bt": t0 / 1000, "n": "position", "v": 40},
                         {"n": "position", "t": 1, "v": 45}]
                self.assertEqual(coap("post", base + "/readings", json.dumps(senml), 110)[0], "2.xx")
                self.assertEqual(coap("post", base + "/readings", "power,device=meter-3 value=7.5", 0)[0], "2.xx")
                # A non-confirmable post is taken the same way.
                self.assertEqual(coap("post", base + "/readings/pump-1", "22", "json", non=True, wait=1)[0] in
                                 ("2.xx", ""), True)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 6, timeout=5), rx.records())
                got = {(r["device"], r["metric"], r["value"]) for r in rx.records()}
                self.assertEqual(got, {("pump-1", "temperature", 21.5), ("pump-2", "flow", 3.25),
                                       ("valve-7", "position", 40), ("valve-7", "position", 45),
                                       ("meter-3", "power", 7.5), ("pump-1", "temperature", 22)})
                first = [r for r in rx.records() if r["value"] == 21.5][0]
                self.assertEqual((first["source"], first["ts"], first["kind"]), ("field", t0, "reading"))
                self.assertTrue(first["id"].startswith("field-"))
                status = connector_status(gw)
                self.assertEqual((status["kind"], status["listen"]), ("coap", "%s:%d" % (LOCALHOST, udp)))
                self.assertEqual(status["readings"], 6)
                self.assertEqual(status["refused_requests"], 1)

    def test_a_connector_stopped_through_the_admin_api_closes_its_endpoint_until_started(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                sock = device_socket(self, udp)
                self.assertEqual(exchange(sock, post_raw(udp, 1, "pump-1", "1"))["code"], "2.04")
                r = gw.admin("POST", "/edge/connectors/field/stop", token=TOKEN)
                self.assertEqual(r.status, 200, r.body)
                status = connector_status(gw)
                self.assertTrue(status["stopped"])
                self.assertFalse(status["listening"])
                sock.settimeout(1)
                with self.assertRaises(OSError):  # refused (ICMP) or unanswered: nobody listens
                    exchange(sock, post_raw(udp, 2, "pump-1", "2"))
                self.assertEqual(gw.admin("POST", "/edge/connectors/field/start", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: connector_status(gw)["listening"], timeout=3))
                sock.settimeout(3)
                self.assertEqual(exchange(sock, post_raw(udp, 3, "pump-1", "3"))["code"], "2.04")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5), rx.records())
                self.assertEqual([r["value"] for r in rx.records()], [1, 3])
                self.assertFalse(connector_status(gw)["stopped"])
                self.assertEqual(connector_status(gw)["readings"], 2)  # counters kept
                # Stopped, its port may be taken by another program: a reload is not refused for it,
                # and a start does not share the port (libcoap binds with SO_REUSEADDR; so may the
                # other program): it waits until the port is free.
                self.assertEqual(gw.admin("POST", "/edge/connectors/field/stop", token=TOKEN).status, 200)
                squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.addCleanup(squatter.close)
                squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                squatter.bind((LOCALHOST, udp))
                r = gw.admin("POST", "/reload", token=TOKEN)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(gw.admin("POST", "/edge/connectors/field/start", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: "already in use" in connector_status(gw).get("last_error", ""),
                                           timeout=3), connector_status(gw))
                self.assertFalse(connector_status(gw)["listening"])
                squatter.close()
                self.assertTrue(wait_until(lambda: connector_status(gw)["listening"], timeout=3))
                self.assertNotIn("last_error", connector_status(gw))
                self.assertEqual(exchange(sock, post_raw(udp, 4, "pump-1", "4"))["code"], "2.04")

    def test_each_refusal_has_its_code_and_reason(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n    path: api/v1/readings\n"
                                 % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                base = "coap://%s:%d" % (LOCALHOST, udp)
                cases = [
                    (("post", base + "/readings/p", "1", "json"), "4.04", ""),  # no reason: nothing to reflect
                    (("post", base + "/api/v1/readings/p/extra", "1", "json"), "4.04", ""),
                    (("post", base + "/api/v1/readings/p", '{"value": ', "json"), "4.00",
                     "json payload refused: not JSON at byte"),
                    (("post", base + "/api/v1/readings/p", '{"value": "hot"}', "json"), "4.22",
                     "no reading was accepted: a 'value' that is not a number"),
                    (("post", base + "/api/v1/readings/p", "x", 60), "4.15", "send Content-Format 50 (json)"),
                    (("post", base + "/api/v1/readings", '{"value": 1}', "json"), "4.22", ""),  # no device
                ]
                for args, want_code, want_text in cases:
                    with self.subTest(args=args):
                        code, body = coap(*args)
                        self.assertEqual(code, want_code, body)
                        self.assertIn(want_text, body)
                self.assertEqual(coap("get", base + "/api/v1/readings/p")[0][0], "4")
                time.sleep(0.3)
                self.assertEqual(rx.records(), [])
                status = connector_status(gw)
                self.assertEqual(status["not_found"], 2)
                self.assertGreaterEqual(status["refused"], 4)
                # The gateway still takes good ones.
                self.assertEqual(coap("post", base + "/api/v1/readings/p", "5", "json")[0], "2.xx")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))

    def test_an_acknowledged_reading_survives_kill_9(self):
        udp = free_port(udp=True)
        data = tempfile.mkdtemp(prefix="ganglion-coap-")
        with Receiver() as rx:
            rx.status = 503  # the uplink is down: readings wait in the durable queue
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp),
                                 queue="    queue: { durable: true }\n", edge="edge: { data_dir: %s }\n" % data)
            base = "coap://%s:%d" % (LOCALHOST, udp)
            gw = Gateway(text, admin_port=admin)
            with gw:
                for i in range(20):
                    code, body = coap("post", base + "/readings/pump-1", json.dumps({"value": i}), "json")
                    self.assertEqual(code, "2.xx", body)
                os.kill(gw.proc.pid, signal.SIGKILL)
                gw.proc.wait(5)
            rx.status = 200
            with Gateway(text, admin_port=admin):
                self.assertTrue(wait_until(lambda: {r["value"] for r in rx.records()} >= set(range(20)), timeout=10),
                                sorted(r["value"] for r in rx.records()))


class Reload(unittest.TestCase):
    def test_moving_the_endpoint_to_a_taken_port_is_refused_and_the_old_one_keeps_working(self):
        udp, taken = free_port(udp=True), free_port(udp=True)
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(squatter.close)
        squatter.bind((LOCALHOST, taken))
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                gw.reload_file(text.replace(":%d\n" % udp, ":%d\n" % taken))
                r = gw.admin("POST", "/reload", token=TOKEN)
                self.assertEqual(r.status, 400, r.text)
                self.assertRegex(r.json()["error"]["message"],
                                 r"ganglion\.yaml:\d+: connector 'field': cannot listen on %s:%d \(UDP\): the address "
                                 r"is already in use" % (LOCALHOST, taken))
                code, body = coap("post", "coap://%s:%d/readings/p" % (LOCALHOST, udp), "3", "json")
                self.assertEqual(code, "2.xx", body)
                self.assertTrue(connector_status(gw)["listening"])
                # Once the port is free the same reload moves it; a second connector on one
                # address is a config error.
                squatter.close()
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: connector_status(gw).get("listen") == "%s:%d" % (LOCALHOST, taken)
                                           and connector_status(gw)["listening"], timeout=5))
                self.assertEqual(coap("post", "coap://%s:%d/readings/p" % (LOCALHOST, taken), "4", "json")[0], "2.xx")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5))
        for first, second in (("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "0.0.0.0")):
            text, _ = config(free_port(), "    listen: %s:5683\n  - name: other\n    kind: coap\n"
                                          "    listen: %s:5683\n" % (first, second))
            code, out = check_config(text)
            self.assertIn("connector 'field' listens on %s:5683 already" % first, out)

    def test_moving_the_endpoint_between_a_wildcard_and_a_narrower_address_on_one_port(self):
        """The probe tells the endpoint's own socket from a stranger's: 127.0.0.1:P to
        0.0.0.0:P and back are taken, a stranger on 127.0.0.2:P refuses the wildcard."""
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                def moved_to(host):
                    gw.reload_file(text.replace("listen: %s:%d" % (LOCALHOST, udp), "listen: %s:%d" % (host, udp)))
                    r = gw.admin("POST", "/reload", token=TOKEN)
                    self.assertEqual(r.status, 200, r.text)
                    self.assertTrue(wait_until(lambda: connector_status(gw).get("listen") == "%s:%d" % (host, udp)
                                               and connector_status(gw)["listening"], timeout=5),
                                    connector_status(gw))
                    code, body = coap("post", "coap://%s:%d/readings/p" % (LOCALHOST, udp), "1", "json")
                    self.assertEqual(code, "2.xx", body)
                moved_to("0.0.0.0")
                moved_to(LOCALHOST)
                stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.addCleanup(stranger.close)
                stranger.bind(("127.0.0.2", udp))
                gw.reload_file(text.replace("listen: %s:%d" % (LOCALHOST, udp), "listen: 0.0.0.0:%d" % udp))
                r = gw.admin("POST", "/reload", token=TOKEN)
                self.assertEqual(r.status, 400, r.text)
                self.assertIn("cannot listen on 0.0.0.0:%d (UDP): the address is already in use" % udp,
                              r.json()["error"]["message"])
                self.assertEqual(coap("post", "coap://%s:%d/readings/p" % (LOCALHOST, udp), "2", "json")[0], "2.xx")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 3, timeout=5), rx.records())

    def test_no_other_socket_can_share_the_endpoints_port(self):
        # libcoap binds with SO_REUSEADDR; another socket asking the same must still be refused
        # (it would take the endpoint's datagrams).
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin):
                intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.addCleanup(intruder.close)
                intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                with self.assertRaises(OSError):
                    intruder.bind((LOCALHOST, udp))
                self.assertEqual(coap("post", "coap://%s:%d/readings/p" % (LOCALHOST, udp), "1", "json")[0], "2.xx")


class Exchanges(unittest.TestCase):
    def test_a_message_sent_again_is_answered_again_and_taken_once(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                sock = device_socket(self, udp)
                message = post_raw(udp, 4711, "pump-1", '{"value": 1}')
                first = exchange(sock, message)
                again = exchange(sock, message)  # the ACK was lost: the device sends it again
                self.assertEqual((first["code"], first["type"], first["mid"]), ("2.04", ACK, 4711))
                self.assertEqual((again["code"], again["payload"]), ("2.04", first["payload"]))
                self.assertEqual(exchange(sock, post_raw(udp, 4712, "pump-1", '{"value": 2}'))["code"], "2.04")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5), rx.records())
                time.sleep(0.3)
                self.assertEqual(sorted(r["value"] for r in rx.records()), [1, 2])
                self.assertEqual(connector_status(gw)["duplicates"], 1)
                # A refusal is remembered the same way.
                bad = post_raw(udp, 4713, "pump-1", '{"value": ')
                self.assertEqual(exchange(sock, bad)["code"], "4.00")
                self.assertEqual(exchange(sock, bad)["code"], "4.00")
                # Options a reading post must not repeat, methods that post nothing.
                twice = post_raw(udp, 4714, "pump-1", "1", extra=[(12, uint(50))])
                self.assertEqual(exchange(sock, twice)["code"], "4.02")
                query = post_raw(udp, 4715, "pump-1", "1", extra=[(15, b"metric=a"), (15, b"metric=b")])
                self.assertEqual(exchange(sock, query)["code"], "4.00")
                named = post_raw(udp, 4716, "pump-1", "1", extra=[(15, b"device=other")])
                answer = exchange(sock, named)
                self.assertEqual(answer["code"], "4.00")
                self.assertIn(b"named twice", answer["payload"])
                delete = encode(CON, 0x04, 4717, b"\x09", [(11, b"readings"), (11, b"pump-1")])
                self.assertEqual(exchange(sock, delete)["code"], "4.05")
                # Another path: 4.04 with nothing to reflect.
                lost = encode(CON, 0x02, 4718, b"\x09", [(11, b"elsewhere")], b"1")
                answer = exchange(sock, lost)
                self.assertEqual((answer["code"], answer["payload"]), ("4.04", b""))
                self.assertEqual(len(rx.records()), 2)

    def test_a_message_sent_before_and_after_a_reload_is_taken_once(self):
        """A reload that changes the connector (another metric) keeps its memory of the
        messages it answered: the device's resend after the reload gets the same answer and
        is not taken again."""
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                sock = device_socket(self, udp)
                message = post_raw(udp, 5150, "pump-1", '{"value": 1}')
                self.assertEqual(exchange(sock, message)["code"], "2.04")
                gw.reload_file(text.replace("metric: temperature", "metric: pressure"))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                again = exchange(sock, message)  # the ACK was lost across the reload
                self.assertEqual((again["code"], again["mid"]), ("2.04", 5150))
                self.assertEqual(exchange(sock, post_raw(udp, 5151, "pump-1", '{"value": 2}'))["code"], "2.04")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5), rx.records())
                time.sleep(0.3)
                self.assertEqual(sorted((r["metric"], r["value"]) for r in rx.records()),
                                 [("pressure", 2), ("temperature", 1)])
                self.assertEqual(connector_status(gw)["duplicates"], 1)

    def test_an_endpoint_whose_port_is_taken_binds_once_it_is_free(self):
        udp = free_port(udp=True)
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(squatter.close)
        squatter.bind((LOCALHOST, udp))
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                status = connector_status(gw)
                self.assertFalse(status["listening"])
                self.assertIn("cannot listen on %s:%d" % (LOCALHOST, udp), status["last_error"])
                squatter.close()
                self.assertTrue(wait_until(lambda: connector_status(gw)["listening"], timeout=5))
                code, body = coap("post", "coap://%s:%d/readings/p" % (LOCALHOST, udp), "3", "json")
                self.assertEqual(code, "2.xx", body)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))


class FakeObservable:
    """A CoAP server on a UDP socket that answers registrations as `answer(request)` says and
    records every message; notify() sends a notification to the last registration."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.peer = None
        self.token = None
        self.answer = lambda request: None
        self.closed = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.closed:
            try:
                data, peer = self.sock.recvfrom(2048)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            message = decode(data)
            self.received.append(message)
            if message["code"] == "0.01":
                self.peer, self.token = peer, message["token"]
                reply = self.answer(message)
                if reply:
                    self.sock.sendto(reply, peer)

    def notify(self, seq, payload, mid):
        self.sock.sendto(encode(NON, 0x45, mid, self.token, [(6, uint(seq)), (12, uint(50))], payload), self.peer)

    def close(self):
        self.closed = True
        self.sock.close()


class ObserveEdges(unittest.TestCase):
    def config(self, rx, server):
        return config(rx.port, "    metric: level\n    reconnect: { initial: 200ms, max: 1s }\n"
                      "    observe:\n      - { uri: \"coap://%s:%d/tank\", device: tank-1 }\n" % (LOCALHOST, server.port))

    def test_a_silent_server_gets_one_registration_and_stale_notifications_are_left_out(self):
        server = FakeObservable()  # answers nothing at first
        try:
            with Receiver() as rx:
                text, admin = self.config(rx, server)
                with Gateway(text, admin_port=admin) as gw:
                    time.sleep(4.5)
                    # libcoap retransmits the one registration; no second one piles up.
                    gets = [m for m in server.received if m["code"] == "0.01"]
                    self.assertGreaterEqual(len(gets), 2)
                    self.assertEqual(len({(m["mid"], bytes(m["token"])) for m in gets}), 1, gets)
                    self.assertEqual(connector_status(gw)["observations"][0]["registrations"], 1)
                    # Now a notification answers it; then an older one, then a newer one.
                    server.notify(14, b'{"value": 1}', 1)
                    self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5), connector_status(gw))
                    server.notify(5, b'{"value": 2}', 2)   # older than 14: left out
                    server.notify(15, b'{"value": 3}', 3)
                    self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5))
                    time.sleep(0.3)
                    self.assertEqual([r["value"] for r in rx.records()], [1, 3])
                    status = connector_status(gw)
                    self.assertEqual(status["stale_notifications"], 1)
                    self.assertTrue(status["observations"][0]["established"])
                    before = len(server.received)
                # A stop cancels the observation: a GET with Observe 1 and the same token.
                cancels = [m for m in server.received[before:]
                           if m["code"] == "0.01" and (6, b"\x01") in [(n, bytes(v)) for n, v in m["options"]]]
                self.assertEqual(len(cancels), 1, server.received[before:])
                self.assertEqual(bytes(cancels[0]["token"]), bytes(server.token))
        finally:
            server.close()


class Observe(unittest.TestCase):
    def test_notifications_become_readings_and_the_observation_comes_back(self):
        with CoapServer() as server, Receiver() as rx:
            coap("put", server.uri("/example_data"), json.dumps({"value": 1}), "json")
            text, admin = config(rx.port, "    metric: level\n    reconnect: { initial: 200ms, max: 1s }\n"
                                 "    observe:\n      - { uri: \"%s\", device: tank-1 }\n"
                                 % server.uri("/example_data"))
            with Gateway(text, admin_port=admin) as gw:
                # The registration's answer is the first reading.
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5), connector_status(gw))
                self.assertEqual((rx.records()[0]["device"], rx.records()[0]["metric"], rx.records()[0]["value"]),
                                 ("tank-1", "level", 1))
                for v in (2, 3):
                    coap("put", server.uri("/example_data"), json.dumps({"value": v}), "json")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 3, timeout=5), rx.records())
                self.assertEqual([r["value"] for r in rx.records()], [1, 2, 3])
                obs = connector_status(gw)["observations"][0]
                self.assertEqual((obs["established"], obs["notifications"]), (True, 3))
                # The server goes away and comes back on the same port: registered again.
                server.stop()
                time.sleep(0.5)
                server.start()
                coap("put", server.uri("/example_data"), json.dumps({"value": 4}), "json")
                self.assertTrue(wait_until(lambda: any(r["value"] == 4 for r in rx.records()), timeout=90),
                                connector_status(gw))

BLOCK1, SIZE1, RTAG = 27, 60, 292


def block1(num, more, szx):
    return (BLOCK1, uint((num << 4) | (8 if more else 0) | szx))


class Blocks(unittest.TestCase):
    """Bodies larger than a datagram, in blocks (RFC 7959 Block1)."""

    def test_a_body_in_blocks_is_taken_whole(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n" % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                senml = [{"bn": "line-4/", "n": "speed", "v": 0}] + [{"n": "speed", "v": i} for i in range(1, 300)]
                path = os.path.join(tempfile.mkdtemp(prefix="ganglion-coap-"), "body.json")
                with open(path, "w") as f:
                    json.dump(senml, f)
                self.assertGreater(os.path.getsize(path), 4000)  # four times what one datagram carries
                code, body = coap("post", "coap://%s:%d/readings" % (LOCALHOST, udp), content_format=110,
                                  extra=["-b", "64", "-f", path])
                self.assertEqual(code, "2.xx", body)
                self.assertEqual(json.loads(body), {"accepted": 300, "rejected": 0})
                self.assertTrue(wait_until(lambda: len(rx.records()) == 300, timeout=5), len(rx.records()))
                self.assertEqual([r["value"] for r in rx.records()], list(range(300)))
                status = connector_status(gw)
                self.assertEqual((status["bodies_in_blocks"], status["payloads"]), (1, 1))

    def test_blocks_out_of_order_too_large_or_short_are_refused(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n    max_body: 1024\n"
                                 % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                sock = device_socket(self, udp)
                szx, size = 5, 512
                first = "[{\"value\": 1}".ljust(size)  # block 0 of a JSON array
                # Block 0, then block 0 again with the same id (a lost ACK): the same 2.31, kept once.
                m = post_raw(udp, 100, "p", first, extra=[block1(0, True, szx)])
                a = exchange(sock, m)
                self.assertEqual((a["code"], dict(a["options"]).get(BLOCK1)), ("2.31", uint(0x08 | szx)))
                self.assertEqual(exchange(sock, m)["code"], "2.31")
                # A block that skips one: 4.08, and the body is forgotten.
                a = exchange(sock, post_raw(udp, 101, "p", " " * size, extra=[block1(2, True, szx)]))
                self.assertEqual(a["code"], "4.08")
                self.assertIn(b"starts at byte 1024, but 512 bytes have come", a["payload"])
                a = exchange(sock, post_raw(udp, 102, "p", "]", extra=[block1(1, False, szx)]))
                self.assertEqual(a["code"], "4.08")
                self.assertIn(b"came without the blocks before it", a["payload"])
                # A block that is not the last must be full.
                a = exchange(sock, post_raw(udp, 103, "p", "[1", extra=[block1(0, True, szx)]))
                self.assertEqual(a["code"], "4.00")
                self.assertIn(b"carries 2 bytes", a["payload"])
                # Size1 over max_body: 4.13 at once, saying the largest taken.
                a = exchange(sock, post_raw(udp, 104, "p", first, extra=[block1(0, True, szx), (SIZE1, uint(5000))]))
                self.assertEqual((a["code"], dict(a["options"]).get(SIZE1)), ("4.13", uint(1024)))
                # Growing past max_body: 4.13 on the block that passes it.
                for num in range(2):
                    a = exchange(sock, post_raw(udp, 110 + num, "p", first if num == 0 else " " * size,
                                                extra=[block1(num, True, szx)]))
                    self.assertEqual(a["code"], "2.31")
                a = exchange(sock, post_raw(udp, 112, "p", " " * size, extra=[block1(2, True, szx)]))
                self.assertEqual((a["code"], dict(a["options"]).get(SIZE1)), ("4.13", uint(1024)))
                # Two bodies at once from one sender, told apart by their Request-Tag (RFC 9175).
                for tag, mid in ((b"A", 120), (b"B", 121)):
                    a = exchange(sock, post_raw(udp, mid, "p", first, extra=[block1(0, True, szx), (RTAG, tag)]))
                    self.assertEqual(a["code"], "2.31")
                a = exchange(sock, post_raw(udp, 122, "p", ',{"value": 2}]', extra=[block1(1, False, szx), (RTAG, b"B")]))
                self.assertEqual((a["code"], dict(a["options"]).get(BLOCK1)), ("2.04", uint(0x10 | szx)))
                self.assertEqual(json.loads(a["payload"]), {"accepted": 2, "rejected": 0})
                a = exchange(sock, post_raw(udp, 123, "p", ',{"value": 3}]', extra=[block1(1, False, szx), (RTAG, b"A")]))
                self.assertEqual(a["code"], "2.04")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 4, timeout=5), rx.records())
                self.assertEqual(sorted(r["value"] for r in rx.records()), [1, 1, 2, 3])
                self.assertEqual(connector_status(gw)["bodies_in_blocks"], 2)


class Dtls(unittest.TestCase):
    """CoAP over DTLS with pre-shared keys: the endpoint knows a device by its identity."""

    def test_a_device_sends_only_its_own_readings_with_its_key(self):
        udp = free_port(udp=True)
        key = "k3y-0f-b0iler"
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n    psk:\n"
                                 "      - { identity: boiler-1, key: \"%s\" }\n"
                                 "      - { identity: hall-gw, key: gw-key, devices: [ \"*\" ] }\n"
                                 % (LOCALHOST, udp, key))
            with Gateway(text, admin_port=admin) as gw:
                base = "coaps://%s:%d/readings" % (LOCALHOST, udp)
                # Its own device, named or not.
                self.assertEqual(coaps("post", base, "boiler-1", key, '{"value": 1}', 50)[0], "2.xx")
                self.assertEqual(coaps("post", base + "/boiler-1", "boiler-1", key, '{"value": 2}', 50)[0], "2.xx")
                # Another device: 4.03 in the path, rejected one by one in a payload.
                code, body = coaps("post", base + "/boiler-2", "boiler-1", key, '{"value": 3}', 50)
                self.assertEqual((code, body.strip()), ("4.03", "identity 'boiler-1' may not send readings of "
                                                                "device 'boiler-2'"))
                senml = json.dumps([{"bn": "boiler-2/", "n": "temperature", "v": 4},
                                    {"bn": "boiler-1/", "n": "temperature", "v": 5}])
                code, body = coaps("post", base, "boiler-1", key, senml, 110)
                self.assertEqual(code, "2.xx", body)
                self.assertEqual(json.loads(body)["rejected"], 1)
                self.assertIn("may not send readings of device 'boiler-2'", json.loads(body)["first_rejection"])
                # A gateway identity may send any device's.
                self.assertEqual(coaps("post", base + "/pump-9", "hall-gw", "gw-key", '{"value": 6}', 50)[0], "2.xx")
                # A wrong key or an unknown identity fails the handshake; plain CoAP is not answered.
                self.assertEqual(coaps("post", base, "boiler-1", "wrong", '{"value": 7}', 50, wait=2), ("", ""))
                self.assertEqual(coaps("post", base, "intruder", key, '{"value": 8}', 50, wait=2), ("", ""))
                plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.addCleanup(plain.close)
                plain.settimeout(1)
                plain.connect((LOCALHOST, udp))
                with self.assertRaises(socket.timeout):
                    exchange(plain, post_raw(udp, 1, "boiler-1", '{"value": 9}'))
                self.assertTrue(wait_until(lambda: len(rx.records()) == 4, timeout=5), rx.records())
                time.sleep(0.3)
                self.assertEqual(sorted((r["device"], r["value"]) for r in rx.records()),
                                 [("boiler-1", 1), ("boiler-1", 2), ("boiler-1", 5), ("pump-9", 6)])
                status = connector_status(gw)
                self.assertEqual(status["unknown_identities"], 1)
                # The keys are never shown.
                shown = gw.admin("GET", "/config", token=TOKEN).text
                self.assertIn('"identity":"boiler-1","key":"<redacted>"', shown)
                self.assertNotIn(key, shown)
                self.assertNotIn("gw-key", shown)
            self.assertNotIn(key, gw.log_text())

    def test_a_device_with_a_certificate_is_known_by_its_common_name(self):
        d = tempfile.mkdtemp(prefix="ganglion-coap-pki-")
        make_pki(d)  # ca.pem; localhost.pem (the endpoint); client.pem (CN=client); rogue-ca.pem
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "stray.key", "-out", "stray.csr",
                "-subj", "/CN=client", cwd=d)
        openssl("x509", "-req", "-in", "stray.csr", "-CA", "rogue-ca.pem", "-CAkey", "rogue-ca.key",
                "-CAcreateserial", "-out", "stray.pem", "-days", "2", cwd=d)
        shutil.copy(os.path.join(d, "ca.pem"), os.path.join(d, "devices-ca.pem"))
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n"
                                 "    dtls: { cert: %s/localhost.pem, key: %s/localhost.key, ca: %s/devices-ca.pem }\n"
                                 % (LOCALHOST, udp, d, d, d))
            with Gateway(text, admin_port=admin) as gw:
                base = "coaps://%s:%d/readings" % (LOCALHOST, udp)

                def post(path, cert, payload):
                    extra = ["-c", os.path.join(d, cert + ".pem"), "-j", os.path.join(d, cert + ".key"),
                             "-C", os.path.join(d, "ca.pem")] if cert else []
                    return coaps("post", base + path, "", "", payload, 50, extra=extra, wait=2)

                self.assertEqual(post("", "client", '{"value": 1}')[0], "2.xx")
                code, body = post("/boiler-2", "client", '{"value": 2}')
                self.assertEqual((code, body.strip()), ("4.03", "identity 'client' may not send readings of device "
                                                                "'boiler-2'"))
                # The same name from another CA, or no certificate: no handshake.
                self.assertEqual(post("", "stray", '{"value": 3}'), ("", ""))
                self.assertEqual(post("", None, '{"value": 4}'), ("", ""))
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5), rx.records())
                time.sleep(0.3)
                self.assertEqual([(r["device"], r["value"]) for r in rx.records()], [("client", 1)])
                self.assertEqual(connector_status(gw)["refused_requests"], 1)
                self.assertEqual(connector_status(gw)["dtls_failures"], 2)  # the stray and the bare one
                # The devices' CA replaced in place, then a reload: the endpoint takes the new one.
                shutil.copy(os.path.join(d, "rogue-ca.pem"), os.path.join(d, "devices-ca.pem"))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: connector_status(gw).get("listening"), timeout=5))
                self.assertEqual(post("", "stray", '{"value": 5}')[0], "2.xx")
                self.assertEqual(post("", "client", '{"value": 6}'), ("", ""))
        # A key that is not the certificate's, or a missing file, is a config error.
        for dtls, message in (("{ cert: %s/localhost.pem, key: %s/other.key, ca: %s/ca.pem }" % (d, d, d),
                               "key values mismatch"),
                              ("{ cert: %s/localhost.pem, key: %s/localhost.key, ca: %s/none.pem }" % (d, d, d),
                               "none.pem"),
                              ("{ cert: %s/localhost.pem, key: %s/localhost.key }" % (d, d), "dtls needs 'ca'")):
            with self.subTest(dtls=dtls):
                text, _ = config(free_port(), "    listen: 127.0.0.1:5684\n    metric: t\n    dtls: %s\n" % dtls)
                code, out = check_config(text)
                self.assertNotEqual(code, 0, out)
                self.assertIn(message, out)
                self.assertRegex(out, r"ganglion\.yaml:\d+:")

    def test_an_observation_over_dtls(self):
        with CoapServer(psk_key="server-k3y") as server, Receiver() as rx:
            coap("put", server.uri("/example_data"), json.dumps({"value": 1}), "json")
            text, admin = config(rx.port, "    metric: level\n    reconnect: { initial: 200ms, max: 1s }\n"
                                 "    observe:\n      - { uri: \"%s\", device: tank-1, identity: gw, key: server-k3y }\n"
                                 % server.dtls_uri("/example_data"))
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5), connector_status(gw))
                coap("put", server.uri("/example_data"), json.dumps({"value": 2}), "json")
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5), rx.records())
                self.assertEqual([r["value"] for r in rx.records()], [1, 2])
                self.assertTrue(connector_status(gw)["observations"][0]["established"])
                self.assertNotIn("server-k3y", gw.admin("GET", "/config", token=TOKEN).text)
            self.assertNotIn("server-k3y", gw.log_text())


class ConfigErrors(unittest.TestCase):
    def test_each_mistake_is_named_with_its_line(self):
        cases = [
            ("    metric: t\n", "a coap connector needs 'listen'"),
            ("    listen: 127.0.0.1\n", "listen must be host:port"),
            ("    listen: 127.0.0.1:5683\n    path: \"a//b\"\n", "path is segments of 1 to 255 bytes"),
            ("    observe:\n      - { uri: \"coaps://10.0.0.5/t\", device: d, metric: m }\n",
             "a coaps observation needs the 'identity' and 'key'"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", device: d, metric: m, identity: i, key: k }\n",
             "identity and key are for coaps:// observations"),
            ("    metric: t\n    psk: [ { identity: a, key: k } ]\n", "psk is for the endpoint devices post to"),
            ("    listen: 127.0.0.1:5684\n    psk: [ { identity: a, key: k }, { identity: a, key: j } ]\n",
             "identity 'a' is given twice"),
            ("    listen: 127.0.0.1:5684\n    psk: [ { identity: a, key: %s } ]\n" % ("k" * 65), "a key is 1 to 64 bytes"),
            ("    listen: 127.0.0.1:5684\n    psk: [ { identity: a } ]\n", "a pre-shared key needs its 'key'"),
            ("    listen: 127.0.0.1:5684\n    psk: [ { identity: a, key: k, devices: [\"*\", b] } ]\n",
             "stands alone in devices"),
            ("    listen: 127.0.0.1:5684\n    psk: { identity: a, key: k }\n", "psk is a list of"),
            ("    listen: 127.0.0.1:5684\n    psk: []\n", "psk lists at least one key"),
            ("    listen: 127.0.0.1:5684\n    psk: [ { identity: a, key: k, devices: [] } ]\n",
             "devices lists at least one device"),
            ("    observe:\n      - { uri: \"http://10.0.0.5/t\", device: d, metric: m }\n", "uri must be coap://"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", metric: m }\n", "names its readings' device"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", device: d }\n", "no metric is set"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", device: d, metric: m, format: xml }\n",
             "format must be one of"),
            ("    listen: 127.0.0.1:5683\n    url: mqtt://x\n", "'url' is a field of mqtt connectors, not coap ones"),
            ("    listen: 127.0.0.1:5683\n    registers: []\n", "'registers' is a field of"),
            ("    observe:\n      - { uri: \"coap://127.0.0.1:99999/t\", device: d, metric: m }\n",
             "the uri's port must be 1 to 65535, got '99999'"),
            ("    observe:\n      - { uri: \"coap://224.0.1.187/t\", device: d, metric: m }\n",
             "a multicast address cannot be observed"),
            ("    listen: 127.0.0.1:5683\n    path: \"readings?x=1\"\n", "without controls, '?', '#' or '%'"),
            ("    listen: 127.0.0.1:5683\n    path: .well-known/core\n", "must not be under .well-known"),
        ]
        for connector, message in cases:
            with self.subTest(connector=connector):
                text, _ = config(free_port(), connector)
                code, out = check_config(text)
                self.assertNotEqual(code, 0, out)
                self.assertIn(message, out)
                self.assertRegex(out, r"ganglion\.yaml:\d+:")

    def test_listen_on_an_http_connector_is_refused(self):
        text, _ = config(free_port(), "    listen: 127.0.0.1:5683\n")
        text = text.replace("kind: coap", "kind: http")
        code, out = check_config(text)
        self.assertIn("'listen' is a field of coap connectors, not http ones", out)


if __name__ == "__main__":
    unittest.main()
