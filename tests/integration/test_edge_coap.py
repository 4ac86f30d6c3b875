"""The CoAP connector (docs/edge.md "CoAP") against libcoap's own tools: readings POSTed with
`coap-client` in each payload format reach a real HTTP receiver; every refusal has its code
and reason; an observation of libcoap's `coap-server` turns each notification into a reading
and comes back after the server restarts; an acknowledged reading survives `kill -9`; config
errors name file and line."""

import json
import os
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCALHOST, CoapServer, Gateway, Receiver, check_config, coap, free_port,  # noqa: E402
                     wait_until)
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

    def test_each_refusal_has_its_code_and_reason(self):
        udp = free_port(udp=True)
        with Receiver() as rx:
            text, admin = config(rx.port, "    listen: %s:%d\n    metric: temperature\n    path: api/v1/readings\n"
                                 % (LOCALHOST, udp))
            with Gateway(text, admin_port=admin) as gw:
                base = "coap://%s:%d" % (LOCALHOST, udp)
                cases = [
                    (("post", base + "/readings/p", "1", "json"), "4.04", "post readings to /api/v1/readings/<device>"),
                    (("post", base + "/api/v1/readings/p/extra", "1", "json"), "4.04", "post readings to"),
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


class ConfigErrors(unittest.TestCase):
    def test_each_mistake_is_named_with_its_line(self):
        cases = [
            ("    metric: t\n", "a coap connector needs 'listen'"),
            ("    listen: 127.0.0.1\n", "listen must be host:port"),
            ("    listen: 127.0.0.1:5683\n    path: \"a//b\"\n", "path is segments of 1 to 255 bytes"),
            ("    observe:\n      - { uri: \"coaps://10.0.0.5/t\", device: d, metric: m }\n",
             "coaps, CoAP over DTLS, is not built yet"),
            ("    observe:\n      - { uri: \"http://10.0.0.5/t\", device: d, metric: m }\n", "uri must be coap://"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", metric: m }\n", "names its readings' device"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", device: d }\n", "no metric is set"),
            ("    observe:\n      - { uri: \"coap://10.0.0.5/t\", device: d, metric: m, format: xml }\n",
             "format must be one of"),
            ("    listen: 127.0.0.1:5683\n    url: mqtt://x\n", "'url' is a field of mqtt connectors, not coap ones"),
            ("    listen: 127.0.0.1:5683\n    registers: []\n", "'registers' is a field of"),
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
