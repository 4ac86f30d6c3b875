"""The `mqtt` sink (docs/edge.md "MQTT sink") against the Debian mosquitto broker on a free port:
records go out through a publish-only mqtt connector (no `subscribe`), one JSON message each,
to a topic filled from the record; a batch counts as delivered once the broker acknowledged
every message; while the broker is away records wait in the sink's queue and arrive in
order when it returns; a record whose topic would be invalid is dropped and counted; bad sink
settings are refused at load with their line."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOCALHOST, Gateway, Mosquitto, check_config, free_port, http_request, render, wait_until  # noqa: E402
from mqtt_raw import packet  # noqa: E402
from test_mqtt import FakeBroker, Subscriber, connack, read_packet  # noqa: E402

TOKEN = "MqttSink-Adm1n-T0ken-0123456789"

CONFIG = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - { name: lab, kind: http, metric: temperature }
  - name: cloud
    kind: mqtt
    url: @URL@
    client_id: gw-uplink
    keep_alive: 2s
    reconnect: { initial: 100ms, max: 400ms }
sinks:
  - name: upstream
    kind: mqtt
    connector: cloud
    topic: "up/{device}/{metric}/{kind}"
    qos: @QOS@
    batch: { max_records: @MAX_RECORDS@, max_delay: 50ms }
    retry: { initial: 100ms, max: 300ms }
pipelines:
  - name: raw
    from: [ lab ]
    to: [ upstream ]
access_log: { enabled: false }
routes:
  - name: ingest
    match: { path_prefix: /ingest/ }
    ingest: lab
"""


def config(broker, qos=1, max_records=500):
    port, admin = free_port(), free_port()
    text = render(CONFIG, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, URL=broker.url(), QOS=qos,
                  MAX_RECORDS=max_records)
    return text, port, admin


def post(port, device, body):
    return http_request(port, "POST", "/ingest/" + device, body=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"})


def edge(gw):
    return gw.admin("GET", "/edge", token=TOKEN).json()


def sink(gw):
    return edge(gw)["sinks"][0]


def cloud(gw):
    return [c for c in edge(gw)["connectors"] if c["name"] == "cloud"][0]


def messages(watcher):
    out = []
    for line in watcher.lines():
        topic, _, payload = line.partition(" ")
        out.append((topic, json.loads(payload)))
    return out


class Delivery(unittest.TestCase):
    def test_records_reach_the_broker_in_order_once_acknowledged(self):
        with Mosquitto() as broker:
            watcher = Subscriber(broker, "up/#").start()
            try:
                text, port, admin = config(broker, max_records=4)
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is True, timeout=5), cloud(gw))
                    t0 = int(time.time() * 1000)
                    for i in range(10):
                        self.assertEqual(post(port, "pump-1", {"value": i, "ts": t0 + i}).status, 202)
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) == 10, timeout=5), watcher.lines())
                    got = messages(watcher)
                    self.assertEqual({t for t, _ in got}, {"up/pump-1/temperature/reading"})
                    self.assertEqual([m["value"] for _, m in got], list(range(10)))
                    self.assertEqual([m["ts"] for _, m in got], [t0 + i for i in range(10)])
                    self.assertTrue(all(m["id"].startswith("lab-") for _, m in got))
                    self.assertTrue(wait_until(lambda: sink(gw)["delivered"] == 10, timeout=5), sink(gw))
                    st = sink(gw)
                    self.assertEqual(st["connector"], "cloud")
                    self.assertEqual(st["topic"], "up/{device}/{metric}/{kind}")
                    self.assertEqual(st["queued_records"], 0)
                    self.assertEqual(st["failures"], 0)
                    self.assertGreaterEqual(st["batches"], 3)  # at most 4 records a batch
                    self.assertEqual(cloud(gw)["published"], 10)
                    # A connector without `subscribe` only publishes: it never subscribed.
                    self.assertNotIn("Received SUBSCRIBE from gw-uplink", broker.log())
            finally:
                watcher.stop()

    def test_records_wait_while_the_broker_is_away_and_arrive_in_order(self):
        broker = Mosquitto(persistent=True)
        with broker:
            watcher = Subscriber(broker, "up/#").start()
            watcher.stop()  # its session (QoS 1) keeps what comes while it is away
            text, port, admin = config(broker, max_records=3)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is True, timeout=5), cloud(gw))
                broker.stop()
                self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is False, timeout=5), cloud(gw))
                t0 = int(time.time() * 1000)
                for i in range(7):
                    self.assertEqual(post(port, "pump-2", {"value": i, "ts": t0 + i}).status, 202)
                self.assertTrue(wait_until(lambda: sink(gw)["failures"] >= 2, timeout=5), sink(gw))
                st = sink(gw)
                self.assertEqual(st["last_error"], "connector 'cloud' is not connected to its broker")
                self.assertEqual(st["queued_records"], 7)
                self.assertEqual(st["delivered"], 0)
                broker.start()
                self.assertTrue(wait_until(lambda: sink(gw)["delivered"] == 7, timeout=10), sink(gw))
                watcher.start()
                try:
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) == 7, timeout=5), watcher.lines())
                    self.assertEqual([m["value"] for _, m in messages(watcher)], list(range(7)))
                finally:
                    watcher.stop()

    def test_a_record_whose_topic_would_be_invalid_is_dropped_and_counted(self):
        with Mosquitto() as broker:
            watcher = Subscriber(broker, "up/#").start()
            try:
                text, port, admin = config(broker, qos=0)
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is True, timeout=5), cloud(gw))
                    # A '+' in a device name would make the topic a filter: that record is dropped,
                    # the ones around it go.
                    for device in ("a", "b%2Bc", "d"):
                        self.assertEqual(post(port, device, {"value": 1}).status, 202)
                    self.assertTrue(wait_until(lambda: sink(gw)["delivered"] == 2 and sink(gw)["rejected"] == 1,
                                               timeout=5), sink(gw))
                    self.assertIn("1 records could not be published and were dropped: the first because its "
                                  "topic 'up/b+c/temperature/reading' is not valid", sink(gw)["last_error"])
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) == 2, timeout=5))
                    self.assertEqual([t for t, _ in messages(watcher)],
                                     ["up/a/temperature/reading", "up/d/temperature/reading"])
            finally:
                watcher.stop()


def acking_broker(code_for, connack_props=b""):
    """A FakeBroker script: CONNACK (with `connack_props`), then a PUBACK for each QoS 1
    PUBLISH with the reason code_for(topic, times this topic was seen) gives (None: no answer
    at all)."""
    seen = {}

    def script(broker, conn, index):
        conn.sendall(connack(props=connack_props))
        conn.settimeout(0.2)
        while not broker.closed:
            try:
                kind, body = read_packet(conn)
            except TimeoutError:
                continue
            except OSError:
                return
            broker.packets.append((index, kind, body))
            if kind != 3:
                continue
            n = int.from_bytes(body[:2], "big")
            topic = body[2:2 + n].decode()
            packet_id = body[2 + n:4 + n]
            seen[topic] = seen.get(topic, 0) + 1
            code = code_for(topic, seen[topic])
            if code is not None:
                conn.sendall(packet(0x40, packet_id + bytes([code])))
    return script


def published_topics(broker):
    out = []
    for _, kind, body in broker.packets:
        if kind == 3:
            n = int.from_bytes(body[:2], "big")
            out.append(body[2:2 + n].decode())
    return out


class Acknowledgements(unittest.TestCase):
    def start(self, broker):
        port, admin = free_port(), free_port()
        text = render(CONFIG, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, URL=broker.url(), QOS=1,
                      MAX_RECORDS=10)
        text = text.replace("max_delay: 50ms", "max_delay: 1s")  # what is posted together is one batch
        return Gateway(text, admin_port=admin), port

    def test_a_batch_is_delivered_only_once_the_broker_acknowledged_it(self):
        broker = FakeBroker([acking_broker(lambda topic, n: None)])  # never a PUBACK
        try:
            gateway, port = self.start(broker)
            with gateway as gw:
                self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is True, timeout=5), cloud(gw))
                for device in ("a", "b", "c"):
                    self.assertEqual(post(port, device, {"value": 1}).status, 202)
                self.assertTrue(wait_until(lambda: len(published_topics(broker)) == 3, timeout=5))
                time.sleep(0.5)
                st = sink(gw)
                self.assertEqual(st["delivered"], 0, st)
                self.assertEqual(st["queued_records"], 3)
                self.assertEqual(len(published_topics(broker)), 3)  # waiting, not sending again
        finally:
            broker.close()

    def test_refusals_for_good_are_dropped_and_others_make_the_batch_go_again(self):
        def codes(topic, n):
            if "/bad/" in topic:
                return 0x90  # Topic Name invalid: always
            if "/busy/" in topic and n == 1:
                return 0x97  # Quota exceeded: this time
            return 0

        broker = FakeBroker([acking_broker(codes)])
        try:
            gateway, port = self.start(broker)
            with gateway as gw:
                self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is True, timeout=5), cloud(gw))
                t0 = int(time.time() * 1000)
                for i, device in enumerate(("a", "bad", "busy")):
                    self.assertEqual(post(port, device, {"value": i, "ts": t0}).status, 202)
                self.assertTrue(wait_until(lambda: sink(gw)["delivered"] == 2, timeout=5), sink(gw))
                st = sink(gw)
                self.assertEqual(st["rejected"], 1)
                self.assertEqual(st["queued_records"], 0)
                self.assertGreaterEqual(st["failures"], 1)
                self.assertEqual(st["last_error"], "the broker refused 1 messages for good: they were dropped")
                # The first attempt: each once; the batch again: each once more (at least once).
                topics = published_topics(broker)
                self.assertEqual(topics.count("up/a/temperature/reading"), 2, topics)
                self.assertEqual(topics.count("up/busy/temperature/reading"), 2, topics)
        finally:
            broker.close()


    def test_a_record_over_the_brokers_maximum_packet_size_is_never_sent(self):
        # MQTT 5: a broker that takes at most 300-byte packets closes the connection of a client
        # that sends more; the sink drops such a record as refused for good (0x95).
        broker = FakeBroker([acking_broker(lambda topic, n: 0, connack_props=bytes([0x27]) + (300).to_bytes(4, "big"))])
        try:
            gateway, port = self.start(broker)
            with gateway as gw:
                self.assertTrue(wait_until(lambda: cloud(gw).get("connected") is True, timeout=5), cloud(gw))
                self.assertEqual(post(port, "small", {"value": 1}).status, 202)
                self.assertEqual(post(port, "large", {"value": 2, "note": "x" * 250, "more": "y" * 250}).status, 202)
                self.assertTrue(wait_until(lambda: sink(gw)["delivered"] == 1 and sink(gw)["rejected"] == 1,
                                           timeout=5), sink(gw))
                self.assertEqual(published_topics(broker), ["up/small/temperature/reading"])
                self.assertEqual(len(broker.connections), 1)  # never disconnected for it
                self.assertIn("over the broker's Maximum Packet Size (300)", cloud(gw)["last_error"])
                self.assertEqual(cloud(gw)["publish_refused"], 1)
        finally:
            broker.close()


class ConfigErrors(unittest.TestCase):
    def test_bad_mqtt_sink_settings_are_refused_with_their_line(self):
        text, _, _ = config(Mosquitto())
        self.assertEqual(check_config(text)[0], 0, check_config(text)[1])
        cases = [
            (text.replace("    connector: cloud\n", "    connector: cloud\n    url: http://127.0.0.1:1/x\n"),
             "'url' is for http and influxdb sinks: an mqtt sink sends through its connector"),
            (text.replace("    connector: cloud\n", "    connector: nowhere\n"),
             "sink 'upstream' sends through unknown connector 'nowhere'"),
            (text.replace("    connector: cloud\n", "    connector: lab\n"),
             "sink 'upstream' sends through connector 'lab', which is http, not mqtt"),
            (text.replace('topic: "up/{device}/{metric}/{kind}"', 'topic: "up/{pipeline}"'),
             "a sink's records do not name their pipeline"),
            (text.replace('topic: "up/{device}/{metric}/{kind}"', 'topic: "up/+/x"'),
             "topic 'up/+/x'"),
            (text.replace('    topic: "up/{device}/{metric}/{kind}"\n', ""), "an mqtt sink needs a 'topic'"),
            (text.replace("    qos: 1\n", "    qos: 3\n"), "qos"),
            (text.replace("kind: mqtt\n    connector: cloud", "kind: http\n    connector: cloud"),
             "'connector' is for mqtt sinks"),
            # A pipeline cannot read a connector that subscribes to nothing.
            (text.replace("from: [ lab ]", "from: [ lab, cloud ]"),
             "pipeline 'raw' reads connector 'cloud', which subscribes to nothing (it only publishes)"),
            # Publishing where the connector reads would bring each record back: a loop.
            (text.replace("    reconnect: { initial: 100ms, max: 400ms }\n",
                          "    reconnect: { initial: 100ms, max: 400ms }\n    subscribe:\n"
                          "      - { topic: \"up/+/#\", format: json, metric: m }\n"),
             "sink 'upstream' publishes to 'up/{device}/{metric}/{kind}', which connector 'cloud' reads ('up/+/#')"),
        ]
        for bad, message in cases:
            code, out = check_config(bad)
            self.assertNotEqual(code, 0, bad)
            self.assertIn(message, out)
        # The line of a refused setting is named.
        bad = text.replace("    connector: cloud\n", "    connector: nowhere\n")
        line = bad.split("\n").index("    connector: nowhere") + 1
        self.assertIn(":%d:" % line, check_config(bad)[1])


if __name__ == "__main__":
    unittest.main()
