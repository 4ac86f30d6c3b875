"""The MQTT connector (docs/edge.md "MQTT") against the Debian mosquitto broker started on a
free port: subscriptions with '+' naming the device, QoS 0/1/2, every payload format, MQTT 5
and 3.1.1, a persistent session that holds messages while the gateway is down (kill -9),
reconnection after the broker restarts, TLS with a client certificate, refused credentials
reported without the password, reload of a changed subscription, and config errors."""

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCALHOST, Gateway, Mosquitto, Receiver, assert_refused_at, check_config, free_port,  # noqa: E402
                     make_pki, render, wait_until)
from mqtt_raw import connect, packet, utf8, varint  # noqa: E402

TOKEN = "Mqtt-Adm1n-T0ken-0123456789"

CONFIG = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - name: plant
    kind: mqtt
    url: @URL@
    client_id: @CLIENT@
    protocol: "@PROTOCOL@"
    keep_alive: 2s
    reconnect: { initial: 100ms, max: 400ms }
@EXTRA@
    subscribe:
      - { topic: "plant/+/vibration", qos: 1, format: json, metric: vibration }
      - { topic: "plant/+/temp", qos: 2, format: number, metric: temp }
      - { topic: "plant/+/senml", qos: 1, format: senml }
      - { topic: "plant/lp", qos: 0, format: line_protocol }
      - { topic: "plant/boiler", qos: 1, format: number, metric: pressure, device: boiler-7 }
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 1000, max_delay: 50ms }
    retry: { initial: 50ms, max: 200ms }
pipelines:
  - name: raw
    from: [ plant ]
    stages:
      - filter: "value > -1000"
    to: [ uplink ]
access_log: { enabled: false }
"""


def config(broker, sink_port, protocol="5", client="gw-plant", extra="", url=None):
    port, admin = free_port(), free_port()
    text = render(CONFIG, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, URL=url or broker.url(),
                  CLIENT=client, PROTOCOL=protocol, EXTRA=extra, SINK=sink_port)
    return text, admin


def connector(gw):
    r = gw.admin("GET", "/edge", token=TOKEN)
    for c in r.json()["connectors"]:
        if c["name"] == "plant":
            return c
    raise AssertionError(r.text)


def connected(gw):
    return connector(gw).get("connected") is True


class MqttIngest(unittest.TestCase):
    def test_messages_of_every_format_and_qos_reach_the_sink(self):
        for protocol in ("5", "3.1.1"):
            with self.subTest(protocol=protocol), Mosquitto() as broker, Receiver() as rx:
                text, admin = config(broker, rx.port, protocol=protocol)
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5), gw.log_text())
                    # SUBACK arrives right after CONNACK; give it a moment before publishing.
                    time.sleep(0.2)
                    t0 = int(time.time() * 1000) - 1000
                    broker.publish("plant/pump-1/vibration", json.dumps({"value": 0.5, "ts": t0}), qos=1)
                    broker.publish("plant/pump-1/vibration", "0.75", qos=0)
                    broker.publish("plant/pump-2/temp", "41.5", qos=2)
                    broker.publish("plant/pump-3/senml", json.dumps([{"n": "flow", "v": 3.25, "u": "m3/h"}]), qos=1)
                    broker.publish("plant/lp", "power,device=meter-9 value=7.5", qos=0)
                    broker.publish("plant/boiler", "2.5", qos=1)
                    broker.publish("plant/pump-2/temp", "not a number", qos=1)  # refused, acknowledged
                    broker.publish("plant/pump-2/temp", "42.5", qos=2)
                    self.assertTrue(wait_until(lambda: len(rx.records()) >= 7, timeout=5), rx.records())
                    time.sleep(0.2)
                    recs = rx.records()
                    got = [(r["device"], r["metric"], r["value"]) for r in recs]
                    self.assertEqual(got, [("pump-1", "vibration", 0.5), ("pump-1", "vibration", 0.75),
                                           ("pump-2", "temp", 41.5), ("pump-3", "flow", 3.25),
                                           ("meter-9", "power", 7.5), ("boiler-7", "pressure", 2.5),
                                           ("pump-2", "temp", 42.5)])
                    self.assertEqual(recs[0]["ts"], t0)
                    self.assertTrue(all(r["source"] == "plant" for r in recs))
                    self.assertEqual(len({r["id"] for r in recs}), 7)
                    c = connector(gw)
                    self.assertEqual(c["messages"], 8)
                    self.assertEqual(c["payloads"], 8)
                    self.assertEqual(c["refused"], 1)
                    self.assertEqual(c["readings"], 7)
                    self.assertEqual(c["connects"], 1)
                    self.assertIn("plant/pump-2/temp", c["last_rejection"])
                    m = gw.admin("GET", "/metrics", token=TOKEN).text
                    self.assertIn('ganglion_edge_mqtt_connected{connector="plant"} 1', m)
                    self.assertIn('ganglion_edge_mqtt_messages_total{connector="plant"} 8', m)
                # The gateway said DISCONNECT on its way out (a clean close, not a lost client).
                self.assertTrue(wait_until(lambda: "Client gw-plant disconnected" in broker.log(), timeout=3),
                                broker.log()[-1500:])

    def test_an_oversized_message_is_acknowledged_and_dropped_not_retried(self):
        for protocol in ("3.1.1", "5"):
            with self.subTest(protocol=protocol), Mosquitto() as broker, Receiver() as rx:
                text, admin = config(broker, rx.port, protocol=protocol, extra="    max_body: 1KiB")
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    time.sleep(0.2)
                    broker.publish("plant/pump-1/temp", "1" * 5000, qos=2)
                    broker.publish("plant/pump-1/vibration", "7" + " " * 3000, qos=1)
                    broker.publish("plant/pump-1/temp", "2.5", qos=1)
                    self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5), rx.records())
                    time.sleep(0.3)
                    self.assertEqual(rx.records()[0]["value"], 2.5)
                    c = connector(gw)
                    self.assertEqual(c["connects"], 1, c)  # the connection stayed up
                    if protocol == "3.1.1":  # an MQTT 5 broker does not send past Maximum Packet Size
                        self.assertEqual(c["refused"], 2, c)
                        self.assertIn("larger than max_body", c["last_rejection"])
                # Nothing was left unacknowledged for the broker to send again.
                self.assertNotIn("Outgoing messages are being dropped", broker.log())

    def test_a_persistent_session_keeps_messages_sent_while_the_gateway_was_killed(self):
        with Mosquitto() as broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                time.sleep(0.2)
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            self.assertTrue(wait_until(lambda: "gw-plant" in broker.log() and
                                       broker.log().count("Client gw-plant closed its connection") >= 1, timeout=3))
            values = [str(i) for i in range(200)]
            broker.publish_many("plant/pump-1/temp", values, qos=2)
            broker.publish_many("plant/pump-2/vibration", values, qos=1)
            broker.publish("plant/pump-3/vibration", "5", qos=0)  # QoS 0 is not kept for an absent client
            with Gateway(text, admin_port=admin) as gw2:
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 400, timeout=10), len(rx.records()))
                time.sleep(0.3)
                recs = rx.records()
                self.assertEqual(len(recs), 400)
                temps = [r["value"] for r in recs if r["metric"] == "temp"]
                vibs = [r["value"] for r in recs if r["metric"] == "vibration"]
                self.assertEqual(temps, [float(v) for v in values])  # in order, each once
                self.assertEqual(vibs, [float(v) for v in values])
                c = connector(gw2)
                self.assertTrue(c["session_present"])

    def test_a_connector_stopped_through_the_admin_api_disconnects_and_keeps_its_session(self):
        with Mosquitto() as broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                r = gw.admin("POST", "/edge/connectors/plant/stop", token=TOKEN)
                self.assertEqual(r.status, 200, r.body)
                self.assertTrue(wait_until(lambda: not connected(gw), timeout=3), connector(gw))
                self.assertTrue(wait_until(lambda: "Client gw-plant disconnected" in broker.log(), timeout=3),
                                broker.log()[-2000:])
                connects = connector(gw)["connects"]
                values = [str(i) for i in range(100)]
                broker.publish_many("plant/pump-1/temp", values, qos=2)
                broker.publish_many("plant/pump-2/vibration", values, qos=1)
                time.sleep(1.0)  # more than reconnect.max: a stopped connector does not come back
                c = connector(gw)
                self.assertFalse(c["connected"])
                self.assertTrue(c["stopped"])
                self.assertEqual(c["connects"], connects)
                self.assertEqual(rx.records(), [])
                self.assertEqual(gw.admin("POST", "/edge/connectors/plant/start", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 200, timeout=10), len(rx.records()))
                time.sleep(0.3)
                recs = rx.records()
                self.assertEqual(len(recs), 200)  # what the broker kept for the session, each once
                self.assertEqual([r["value"] for r in recs if r["metric"] == "temp"], [float(v) for v in values])
                self.assertEqual([r["value"] for r in recs if r["metric"] == "vibration"],
                                 [float(v) for v in values])
                c = connector(gw)
                self.assertTrue(c["session_present"])
                self.assertFalse(c["stopped"])

    def test_a_stop_in_mid_stream_takes_each_message_once_with_an_ingest_log(self):
        # A durable sink gives the pipeline an ingest log: messages are acknowledged once on
        # disk. A stop must send the acknowledgements still waiting before it disconnects, or
        # the broker sends those messages again and they run twice.
        import threading
        # The broker keeps every message for the session while the connector is stopped (its
        # default keeps 1,000).
        with Mosquitto(extra="max_queued_messages 0") as broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            text = text.replace("    retry: { initial: 50ms, max: 200ms }\n",
                                "    retry: { initial: 50ms, max: 200ms }\n    queue: { durable: true }\n")
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                values = [str(i) for i in range(3000)]
                pub = threading.Thread(target=broker.publish_many, args=("plant/pump-2/vibration", values, 1))
                pub.start()
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 300, timeout=10), len(rx.records()))
                self.assertEqual(gw.admin("POST", "/edge/connectors/plant/stop", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: not connected(gw), timeout=5))
                time.sleep(0.3)
                self.assertEqual(gw.admin("POST", "/edge/connectors/plant/start", token=TOKEN).status, 200)
                pub.join(30)
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 3000, timeout=15), len(rx.records()))
                time.sleep(0.5)
                got = [r["value"] for r in rx.records()]
                self.assertEqual(len(got), 3000, "%d records, %d distinct, %d distinct ids" % (
                    len(got), len(set(got)), len({r["id"] for r in rx.records()})))
                self.assertEqual(got, [float(v) for v in values])  # in order, each once
                self.assertNotIn("last_error", connector(gw))  # a stop is not an error

    def test_a_full_pipeline_holds_the_broker_back_and_loses_nothing(self):
        # docs/edge.md "Flow control": with 200,000 readings waiting (here: a stopped pipeline),
        # the connector stops reading and acknowledging; paused_ms shows the stall while it
        # lasts; started, the pipeline takes every reading, and the broker the rest.
        pipeline = lambda gw: gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]  # noqa: E731
        with Mosquitto() as broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            text = text.replace("    retry: { initial: 50ms, max: 200ms }\n",
                                "    retry: { initial: 50ms, max: 200ms }\n    queue: { max_bytes: 256MiB }\n")
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                self.assertEqual(gw.admin("POST", "/edge/pipelines/raw/stop", token=TOKEN).status, 200)
                pack = json.dumps([{"n": "flow", "v": i} for i in range(10_000)])
                broker.publish_many("plant/pump-1/senml", [pack] * 25, qos=1)  # 250,000 readings
                self.assertTrue(wait_until(lambda: pipeline(gw)["waiting"] >= 200_000, timeout=20), pipeline(gw))
                time.sleep(0.3)
                before = connector(gw)["paused_ms"]
                time.sleep(0.5)
                c, p = connector(gw), pipeline(gw)
                self.assertLess(p["waiting"], 250_000)  # held back, not read
                self.assertGreaterEqual(c["paused_ms"] - before, 400, c)  # counted while it lasts
                self.assertEqual(rx.records(), [])
                self.assertEqual(gw.admin("POST", "/edge/pipelines/raw/start", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 250_000, timeout=30), len(rx.records()))
                time.sleep(0.3)
                got = rx.records()
                self.assertEqual(len(got), 250_000)
                self.assertEqual([r["value"] for r in got[:10_000]], [float(i) for i in range(10_000)])
                self.assertEqual(pipeline(gw)["waiting"], 0)
                self.assertEqual(connector(gw)["connects"], 1)  # the stall did not cost the connection

    def test_the_connector_comes_back_after_the_broker_restarts(self):
        broker = Mosquitto()
        with broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                broker.stop()
                self.assertTrue(wait_until(lambda: not connected(gw), timeout=5))
                self.assertTrue(wait_until(lambda: connector(gw)["failed_attempts"] >= 2, timeout=5))
                c = connector(gw)
                self.assertEqual(c["disconnects"], 1)
                self.assertIn("cannot connect", c["last_error"])
                broker.start()
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5), connector(gw))
                time.sleep(0.2)
                # The restarted broker forgot the session: the connector subscribed again.
                self.assertFalse(connector(gw)["session_present"])
                broker.publish("plant/pump-1/vibration", "1.5", qos=1)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                self.assertEqual(connector(gw)["connects"], 2)

    def test_a_silent_broker_is_detected_by_the_keep_alive(self):
        broker = Mosquitto()
        with broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                broker.proc.send_signal(signal.SIGSTOP)  # the socket stays open, nothing answers
                try:
                    self.assertTrue(wait_until(lambda: not connected(gw), timeout=6), connector(gw))
                    self.assertIn("silent", connector(gw)["last_error"])
                finally:
                    broker.proc.send_signal(signal.SIGCONT)
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))

    def test_overlapping_subscriptions_take_a_message_once(self):
        # An MQTT 5 broker sends a message once per subscription it matches: the copy sent for
        # the catch-all must not become a second reading with another id. Each filter goes in
        # its own SUBSCRIBE with a Subscription Identifier, and the first matching filter reads.
        extra_sub = '      - { topic: "plant/#", qos: 1, format: number, metric: other, device: misc }\n'
        for protocol in ("5", "3.1.1"):
            with self.subTest(protocol=protocol), Mosquitto() as broker, Receiver() as rx:
                text, admin = config(broker, rx.port, protocol=protocol)
                text = text.replace("sinks:\n", extra_sub + "sinks:\n", 1)
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5), gw.log_text())
                    time.sleep(0.3)
                    broker.publish("plant/pump-1/vibration", json.dumps({"value": 0.5}), qos=1)
                    broker.publish("plant/pump-2/temp", "41.5", qos=2)
                    broker.publish("plant/other", "7", qos=1)  # the catch-all's own
                    self.assertTrue(wait_until(lambda: len(rx.records()) >= 3, timeout=5), rx.records())
                    time.sleep(0.5)
                    got = sorted((r["device"], r["metric"], r["value"]) for r in rx.records())
                    self.assertEqual(got, [("misc", "other", 7), ("pump-1", "vibration", 0.5),
                                           ("pump-2", "temp", 41.5)])
                    c = connector(gw)
                    self.assertEqual(c["readings"], 3, c)
                    self.assertEqual(c["refused_subscriptions"], 0, c)
                    if protocol == "5":
                        self.assertEqual(c["messages"], 5, c)
                        self.assertEqual(c["extra_copies"], 2, c)

    def test_a_reload_with_a_new_subscription_takes_effect(self):
        with Mosquitto() as broker, Receiver() as rx:
            text, admin = config(broker, rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                gw.reload_file(text.replace('"plant/+/vibration", qos: 1, format: json',
                                            '"site/+/vibration", qos: 1, format: json'))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: connected(gw) and connector(gw)["connects"] >= 2, timeout=5),
                                (connector(gw), gw.log_text()))
                time.sleep(0.3)
                broker.publish("site/pump-4/vibration", "4.5", qos=1)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                self.assertEqual(rx.records()[0]["device"], "pump-4")
                # The old filter was unsubscribed from the resumed session: its messages stay away.
                before = connector(gw)["messages"]
                broker.publish("plant/pump-1/vibration", "1.0", qos=1)
                broker.publish("site/pump-4/vibration", "5.5", qos=1)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5))
                self.assertEqual(connector(gw)["messages"], before + 1)
                self.assertEqual(connector(gw)["unmatched"], 0)
                # An unchanged config keeps the connection.
                before = connector(gw)["connects"]
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                time.sleep(0.5)
                self.assertEqual(connector(gw)["connects"], before)


RULES = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - name: plant
    kind: mqtt
    url: @URL@
    client_id: gw-rules
    reconnect: { initial: 100ms, max: 300ms }
@OUTBOX@
    subscribe:
      - { topic: "plant/+/temp", qos: 1, format: number, metric: temp }
  - { name: lab, kind: http, metric: temp }
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 1000, max_delay: 50ms }
pipelines:
  - name: raw
    from: [ plant, lab ]
    stages: []
rules:
  - name: hot
    when: "value > 10"
    hold_off: 10s
    actions:
      - publish: { connector: plant, topic: "alarms/{device}/{rule}", qos: 1 }
      - forward: { to: uplink }
routes:
  - name: ingest
    match: { path_prefix: /ingest/ }
    ingest: lab
access_log: { enabled: false }
@EDGE@
"""


def rules_config(url, port, admin, sink_port, outbox="", edge=""):
    """RULES for a broker at `url`: `outbox` adds lines to the connector, `edge` the edge section."""
    return render(RULES, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, URL=url, SINK=sink_port,
                  OUTBOX=outbox, EDGE=edge)


class Subscriber:
    """mosquitto_sub with a persistent session (client id `watcher`), printing `topic payload`."""

    def __init__(self, broker, topic):
        self.broker, self.topic = broker, topic
        self.path = os.path.join(broker.dir, "watcher.txt")
        self.proc = None

    def start(self):
        import subprocess
        self.out = open(self.path, "a")
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", LOCALHOST, "-p", str(self.broker.port), "-t", self.topic,
                                      "-q", "1", "-c", "-i", "watcher", "-v"], stdout=self.out,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: "watcher" in self.broker.log() and "SUBSCRIBE" in self.broker.log().split("watcher", 1)[1],
                   timeout=3)
        time.sleep(0.2)
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.out.close()
        self.proc = None

    def lines(self):
        with open(self.path) as f:
            return [l.rstrip("\n") for l in f if l.strip()]


class MqttRules(unittest.TestCase):
    def test_a_rule_publishes_alarms_and_keeps_them_while_the_broker_is_away(self):
        broker = Mosquitto(persistent=True)
        with broker, Receiver() as rx:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, rx.port)
            watcher = Subscriber(broker, "alarms/#").start()
            try:
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    t0 = int(time.time() * 1000)

                    def ingest(device, value, ts):
                        from harness import http_request
                        r = http_request(port, "POST", "/ingest/" + device, body=json.dumps({"value": value, "ts": ts}),
                                         headers={"Content-Type": "application/json"})
                        self.assertEqual(r.status, 202, r.body)

                    # A device name MQTT topics must not hold (a C1 control) is refused at ingest: it
                    # would otherwise make an alarm topic the broker drops the gateway for.
                    from harness import http_request
                    r = http_request(port, "POST", "/ingest/d%C2%85", body=json.dumps({"value": 90}),
                                     headers={"Content-Type": "application/json"})
                    self.assertEqual(r.status, 422, r.body)
                    ingest("pump-1", 11, t0)
                    ingest("pump-1", 12, t0 + 1000)  # within hold_off: suppressed
                    ingest("pump-1", 3, t0 + 2000)
                    broker.publish("plant/pump-9/temp", "50", qos=1)  # through MQTT, the same rule
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) >= 2, timeout=5), watcher.lines())
                    topic, payload = watcher.lines()[0].split(" ", 1)
                    self.assertEqual(topic, "alarms/pump-1/hot")
                    alarm = json.loads(payload)
                    self.assertEqual((alarm["device"], alarm["value"], alarm["rule"], alarm["ts"]), ("pump-1", 11, "hot", t0))
                    self.assertEqual(watcher.lines()[1].split(" ")[0], "alarms/pump-9/hot")
                    rules = gw.admin("GET", "/edge", token=TOKEN).json()["rules"]
                    self.assertEqual(rules[0]["fired"], 2)
                    self.assertEqual(rules[0]["suppressed"], 1)
                    # Forwarded copies reach the sink with their own ids.
                    self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5), rx.records())
                    self.assertTrue(all(r["rule"] == "hot" and r["id"].endswith("/hot") for r in rx.records()))

                    # The broker goes away: alarms wait in the connector's outbox (in memory), in
                    # order; the first is handed to the connector, which sends it at CONNACK.
                    watcher.stop()
                    broker.stop()
                    self.assertTrue(wait_until(lambda: not connected(gw), timeout=5))
                    ingest("pump-2", 20, t0 + 3000)
                    ingest("pump-3", 30, t0 + 3000)
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["queued_records"] == 2, timeout=5),
                                    connector(gw))
                    self.assertEqual(connector(gw)["publish_waiting"], 1)
                    self.assertFalse(connector(gw)["outbox"]["durable"])
                    broker.start()
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["queued_records"] == 0, timeout=5),
                                    connector(gw))
                    self.assertEqual(connector(gw)["publish_waiting"], 0)
                    self.assertEqual(connector(gw)["outbox"]["delivered"], 4)
                    self.assertEqual(connector(gw)["outbox"]["failures"], 0)
                    watcher.start()  # its persistent session held them
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) >= 4, timeout=5), watcher.lines())
                    self.assertEqual([l.split(" ")[0] for l in watcher.lines()[2:]],
                                     ["alarms/pump-2/hot", "alarms/pump-3/hot"])
                    self.assertEqual(connector(gw)["published"], 4)
                    m = gw.admin("GET", "/metrics", token=TOKEN).text
                    self.assertIn('ganglion_edge_rule_total{rule="hot",outcome="fired"} 4', m)
                    # Every alarm published was timed from its reading's arrival.
                    self.assertIn('ganglion_edge_rule_publish_latency_seconds_count{rule="hot"} 4', m)
                    self.assertIn('ganglion_edge_rule_publish_latency_seconds_bucket{rule="hot",le="+Inf"} 4', m)
            finally:
                watcher.stop()


    def test_a_durable_outbox_keeps_alarms_through_a_broker_outage_and_kill_9(self):
        broker = Mosquitto(persistent=True)
        data = tempfile.mkdtemp(prefix="ganglion-outbox-")
        with broker, Receiver() as rx:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, rx.port, outbox="    outbox: { durable: true }",
                                edge="edge: { data_dir: %s }" % data)
            watcher = Subscriber(broker, "alarms/#").start()
            watcher.stop()  # its persistent session keeps what comes while it is away
            from harness import http_request

            def ingest(device, value):
                r = http_request(port, "POST", "/ingest/" + device, body=json.dumps({"value": value}),
                                 headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 202, r.body)

            devices = ["pump-%d" % i for i in range(6)]
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                broker.stop()
                self.assertTrue(wait_until(lambda: not connected(gw), timeout=5))
                for d in devices:
                    ingest(d, 50)  # each an alarm: its own device, no hold-off between them
                ingest("pump-0", 1)  # no alarm
                self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["queued_records"] == 6, timeout=5),
                                connector(gw))
                box = connector(gw)["outbox"]
                self.assertTrue(box["durable"], box)
                self.assertEqual(box["queue_dir"], os.path.join(data, "outbox", "plant"))
                self.assertTrue(os.listdir(box["queue_dir"]))
                # The pipeline whose rule publishes through it keeps an ingest log.
                pipe = gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]
                self.assertEqual(pipe["ingest_log"]["dir"], os.path.join(data, "ingest", "raw"))
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            with Gateway(text, admin_port=admin) as gw2:
                # Still no broker: the alarms wait on disk, and the log says so.
                self.assertTrue(wait_until(lambda: connector(gw2)["outbox"]["open"], timeout=5))
                self.assertGreaterEqual(connector(gw2)["outbox"]["queued_records"], 6)
                self.assertIn("connector 'plant' outbox resumes", gw2.log_text())
                broker.start()
                self.assertTrue(wait_until(lambda: connector(gw2)["outbox"]["queued_records"] == 0, timeout=10),
                                connector(gw2))
                self.assertGreaterEqual(connector(gw2)["outbox"]["delivered"], 6)
                watcher.start()
                try:
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) >= 6, timeout=5), watcher.lines())
                    topics = [l.split(" ")[0] for l in watcher.lines()]
                    # Every alarm arrives, in order (a reading run again from the ingest log may fire
                    # its alarm a second time: once or more).
                    firsts = []
                    for t in topics:
                        if t not in firsts:
                            firsts.append(t)
                    self.assertEqual(firsts, ["alarms/%s/hot" % d for d in devices])
                    alarm = json.loads(watcher.lines()[0].split(" ", 1)[1])
                    self.assertEqual((alarm["device"], alarm["value"], alarm["rule"]), ("pump-0", 50, "hot"))
                finally:
                    watcher.stop()
                # A shutdown with nothing waiting leaves the outbox empty on disk too.
            with Gateway(text, admin_port=admin) as gw3:
                self.assertTrue(wait_until(lambda: connector(gw3)["outbox"]["open"], timeout=5))
                self.assertEqual(connector(gw3)["outbox"]["queued_records"], 0)
        shutil.rmtree(data, ignore_errors=True)

    def test_an_alarm_the_brokers_acl_refuses_is_dropped_and_holds_back_no_other(self):
        acl = os.path.join(tempfile.mkdtemp(prefix="ganglion-acl-"), "acl")
        with open(acl, "w") as f:
            f.write("topic deny alarms/secret-1/#\ntopic readwrite alarms/#\n")
        broker = Mosquitto(extra="acl_file %s\n" % acl)
        with broker, Receiver() as rx:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, rx.port)
            from harness import http_request

            def ingest(device, ts):
                r = http_request(port, "POST", "/ingest/" + device, body=json.dumps({"value": 50, "ts": ts}),
                                 headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 202, r.body)

            try:
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    broker.stop()
                    self.assertTrue(wait_until(lambda: not connected(gw), timeout=5))
                    t0 = int(time.time() * 1000)
                    # pump-1 goes to the connector alone; the rest wait in the outbox and go as
                    # one batch once pump-1 is acknowledged, the refused one in its middle.
                    for device in ["pump-1", "pump-2", "secret-1", "pump-3", "pump-4"]:
                        ingest(device, t0)
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["queued_records"] == 5, timeout=5),
                                    connector(gw))
                    broker.start()
                    # MQTT 5: the broker answers PUBACK 0x87 (not authorized). The batch goes
                    # again one message at a time; the refused one is tried 5 times, then dropped.
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["queued_records"] == 0, timeout=10),
                                    connector(gw))
                    box = connector(gw)["outbox"]
                    self.assertEqual(box["rejected"], 1, box)
                    self.assertEqual(box["last_error"],
                                     "the broker refused a message 5 times in a row (not authorized): it was dropped")
                    self.assertEqual(connector(gw)["publish_refused"], 6)  # in the batch, then alone 5 times
                    # A later alarm to that topic (past the hold-off) is dropped at its first refusal.
                    ingest("secret-1", t0 + 20_000)
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["rejected"] == 2, timeout=5),
                                    connector(gw))
                    self.assertEqual(connector(gw)["publish_refused"], 7)
                    self.assertIn("within the last minute: it was dropped", connector(gw)["outbox"]["last_error"])
                    # Each alarm was timed once, at its first hand-off, however often it went.
                    m = gw.admin("GET", "/metrics", token=TOKEN).text
                    self.assertIn('ganglion_edge_rule_total{rule="hot",outcome="fired"} 6', m)
                    self.assertIn('ganglion_edge_rule_publish_latency_seconds_count{rule="hot"} 6', m)
                # What the broker took, from its log (a subscriber's offline queue does not outlive
                # a restart of a broker with per-listener ACLs).
                import re
                topics = re.findall(r"Received PUBLISH from gw-rules \(d\d, q1, r0, m\d+, '([^']+)'", broker.log())
                firsts = []
                for t in topics:
                    if t not in firsts:
                        firsts.append(t)
                self.assertEqual(firsts, ["alarms/pump-%d/hot" % i for i in (1, 2, 3, 4)])
                # Those acknowledged in the refused batch went once more, alone: no more than that.
                self.assertEqual(sorted(topics), ["alarms/pump-1/hot"] + ["alarms/pump-%d/hot" % i for i in (2, 2, 3, 3, 4, 4)])
            finally:
                shutil.rmtree(os.path.dirname(acl), ignore_errors=True)

    def test_an_alarm_an_mqtt_311_broker_closes_the_connection_on_is_given_up(self):
        # MQTT 3.1.1 has no Maximum Packet Size to tell: mosquitto closes the connection on an
        # oversized PUBLISH. After 5 such losses in a row the message is given up, and the
        # alarms behind it go out.
        with Mosquitto(extra="max_packet_size 1500\n") as broker, Receiver() as rx:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, rx.port, outbox='    protocol: "3.1.1"')
            from harness import http_request
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                big = {"value": 50}
                big.update({"k%d" % i: "x" * 200 for i in range(16)})
                for device, body in (("pump-1", {"value": 50}), ("pump-2", big), ("pump-3", {"value": 50})):
                    r = http_request(port, "POST", "/ingest/" + device, body=json.dumps(body),
                                     headers={"Content-Type": "application/json"})
                    self.assertEqual(r.status, 202, r.body)
                # The 202s come before the rule's alarms reach the outbox: wait for all three
                # to be done with, not for an outbox that is empty because nothing came yet.
                def settled():
                    o = connector(gw)["outbox"]
                    return o["queued_records"] == 0 and o["delivered"] + o["rejected"] == 3
                self.assertTrue(wait_until(settled, timeout=15), connector(gw))
                c = connector(gw)
                self.assertEqual(c["outbox"]["rejected"], 1, c)
                self.assertIn("a message on 'alarms/pump-2/hot'", c["last_rejection"])
                self.assertIn("the broker closed the connection 5 times in a row before acknowledging it",
                              c["last_rejection"])
                import re
                got = re.findall(r"Received PUBLISH from gw-rules \(d\d, q1, r0, m\d+, '([^']+)'", broker.log())
                self.assertEqual(got, ["alarms/pump-1/hot", "alarms/pump-3/hot"])

    def test_an_alarm_joins_the_batch_that_waits_for_a_slow_broker(self):
        # A broker 1 s away (its PUBACKs come 1 s late): the second alarm used to wait for the
        # first one's PUBACK before it went out. It joins the batch in flight now.
        import threading

        def slow_acks(broker, conn, index):
            conn.sendall(connack())
            kind, body = read_packet(conn)  # SUBSCRIBE
            conn.sendall(packet(0x90, body[:2] + b"\x00\x01"))

            def publish_acked_late(kind, body):
                if kind == 3:
                    length = int.from_bytes(body[:2], "big")
                    broker.packets.append((time.monotonic(), body[2:2 + length].decode()))
                    pid = body[2 + length:4 + length]
                    threading.Timer(1.0, lambda: conn.sendall(packet(0x40, pid))).start()

            keep_reading(broker, conn, index, 10, publish_acked_late)

        broker = FakeBroker([slow_acks])
        try:
            with Receiver() as rx:
                port, admin = free_port(), free_port()
                from harness import http_request
                with Gateway(rules_config(broker.url(), port, admin, rx.port), admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    for device in ("pump-1", "pump-2"):
                        r = http_request(port, "POST", "/ingest/" + device, body=json.dumps({"value": 50}),
                                         headers={"Content-Type": "application/json"})
                        self.assertEqual(r.status, 202, r.body)
                        time.sleep(0.2)
                    self.assertTrue(wait_until(lambda: len(broker.packets) >= 2, timeout=5), broker.packets)
                    (first, a), (second, b) = broker.packets[:2]
                    self.assertEqual((a, b), ("alarms/pump-1/hot", "alarms/pump-2/hot"))
                    self.assertLess(second - first, 0.7)  # not behind the first one's 1 s PUBACK
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["delivered"] == 2, timeout=5),
                                    connector(gw))
                    box = connector(gw)["outbox"]
                    self.assertEqual((box["batches"], box["joined"], box["queued_records"]), (1, 1, 0), box)
                    self.assertEqual(len(broker.packets), 2)  # each once
        finally:
            broker.close()

    def test_a_reload_that_replaces_the_outbox_does_not_send_its_batch_again(self):
        broker = Mosquitto(persistent=True)
        with broker, Receiver() as rx:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, rx.port, outbox="    outbox: { max_bytes: 1MiB }")
            watcher = Subscriber(broker, "alarms/#").start()
            watcher.stop()
            from harness import http_request
            try:
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    broker.stop()
                    self.assertTrue(wait_until(lambda: not connected(gw), timeout=5))
                    for device in ["pump-1", "pump-2"]:
                        r = http_request(port, "POST", "/ingest/" + device, body=json.dumps({"value": 50}),
                                         headers={"Content-Type": "application/json"})
                        self.assertEqual(r.status, 202, r.body)
                    self.assertTrue(wait_until(lambda: connector(gw)["publish_waiting"] == 1, timeout=5),
                                    connector(gw))
                    # Twice a changed outbox while pump-1 waits in the connector: each successor
                    # waits for it rather than handing it over again.
                    for size in ["2MiB", "3MiB"]:
                        gw.reload_file(text.replace("max_bytes: 1MiB", "max_bytes: " + size))
                        self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                        time.sleep(0.2)
                        self.assertEqual(connector(gw)["publish_waiting"], 1, connector(gw))
                        self.assertEqual(connector(gw)["outbox"]["queued_records"], 2, connector(gw))
                    self.assertEqual(connector(gw)["connects"], 1)  # the connector was kept
                    broker.start()
                    self.assertTrue(wait_until(lambda: connector(gw)["outbox"]["queued_records"] == 0, timeout=10),
                                    connector(gw))
                    self.assertEqual(connector(gw)["published"], 2)
                watcher.start()
                self.assertTrue(wait_until(lambda: len(watcher.lines()) >= 2, timeout=5), watcher.lines())
                time.sleep(0.3)
                self.assertEqual([l.split(" ")[0] for l in watcher.lines()], ["alarms/pump-1/hot", "alarms/pump-2/hot"])
            finally:
                watcher.stop()

    def test_qos1_alarms_are_not_held_back_by_the_brokers_nagle_and_delayed_acks(self):
        # mosquitto leaves Nagle's algorithm on: after the PUBACK of an alarm it held the next
        # reading until the gateway's TCP acknowledged that PUBACK, which Linux delays up to
        # 40 ms when nothing goes back. Each alarm then came 20-40 ms late; with a quick ACK
        # after each read, well under a millisecond on an idle box.
        import socket
        import statistics
        broker = Mosquitto()
        with broker:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, free_port())
            text = text.replace('{ topic: "plant/+/temp", qos: 1,', '{ topic: "plant/+/temp", qos: 0,')
            text = text.replace("    hold_off: 10s\n", "").replace("      - forward: { to: uplink }\n", "")
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                client = socket.create_connection((LOCALHOST, broker.port))
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.sendall(connect("latency"))
                kind, _ = read_packet(client)
                self.assertEqual(kind, 2)  # CONNACK
                client.sendall(packet(0x82, b"\x00\x01" + utf8("alarms/#") + b"\x00"))
                kind, _ = read_packet(client)
                self.assertEqual(kind, 9)  # SUBACK
                sent, latencies = {}, []
                for i in range(40):
                    topic = "plant/d%d/temp" % i
                    sent[i] = time.monotonic()
                    client.sendall(packet(0x30, utf8(topic) + b"50"))
                    client.settimeout(1)
                    kind, body = read_packet(client)  # the alarm, before the next reading goes
                    latencies.append(time.monotonic() - sent[i])
                    self.assertEqual(kind, 3)
                    self.assertIn(b"alarms/d%d/hot" % i, body)
                    time.sleep(0.005)
                client.close()
                # 20-40 ms each before the fix, and a median of 10 ms leaves a loaded box room.
                self.assertLess(statistics.median(latencies), 0.010, [round(v * 1000, 1) for v in latencies])

    def test_alarms_fired_at_shutdown_are_still_published(self):
        # SIGTERM closes the open windows; a rule fires on the window record, and the connector
        # stays connected until its outbox has sent it.
        broker = Mosquitto()
        with broker:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, free_port())
            text = text.replace("    stages: []\n", "    stages:\n      - window: { tumbling: 1h, aggregates: [count] }\n")
            text = text.replace('when: "value > 10"', "when: \"kind == 'window'\"")
            watcher = Subscriber(broker, "alarms/#").start()
            from harness import http_request
            try:
                gw = Gateway(text, admin_port=admin)
                with gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    r = http_request(port, "POST", "/ingest/pump-7", body=json.dumps({"value": 1}),
                                     headers={"Content-Type": "application/json"})
                    self.assertEqual(r.status, 202, r.body)
                    time.sleep(0.2)
                    self.assertEqual(watcher.lines(), [])
                    self.assertEqual(gw.stop(), 0)
                self.assertTrue(wait_until(lambda: len(watcher.lines()) == 1, timeout=3), gw.log_text())
                topic, payload = watcher.lines()[0].split(" ", 1)
                self.assertEqual(topic, "alarms/pump-7/hot")
                self.assertEqual((json.loads(payload)["kind"], json.loads(payload)["count"]), ("window", 1))
                self.assertIn("Client gw-rules disconnected", broker.log())  # a DISCONNECT, not a drop
            finally:
                watcher.stop()

    def test_summarize_asks_the_llm_router_and_sends_the_answer_on(self):
        from fake_provider import FakeProvider
        from harness import http_request
        with Mosquitto() as broker, Receiver() as rx, FakeProvider(name="local") as llm:
            port, admin = free_port(), free_port()
            text = rules_config(broker.url(), port, admin, rx.port)
            text = text.replace("rules:\n", """providers:
  - { name: local-llm, kind: openai, base_url: "http://%s/v1", api_key: none }
models:
  - name: gpt-4o-mini
    targets: [ { provider: local-llm, model: gpt-4o-mini } ]
rules:
  - name: incident
    when: "value > 100"
    actions:
      - summarize: { model: gpt-4o-mini, prompt: "Summarise this pump incident for the maintenance team.",
                     to: uplink, connector: plant, topic: "summaries/{device}", context: 3 }
""" % llm.address)
            watcher = Subscriber(broker, "summaries/#").start()
            try:
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: connected(gw), timeout=5))
                    t0 = int(time.time() * 1000)
                    for i, v in enumerate([1, 2, 3, 4, 150]):
                        r = http_request(port, "POST", "/ingest/pump-7", body=json.dumps({"value": v, "ts": t0 + i}),
                                         headers={"Content-Type": "application/json"})
                        self.assertEqual(r.status, 202)
                    llm.wait_for_requests(1, timeout=5)
                    sent = llm.requests[0]["json"]
                    self.assertEqual(sent["model"], "gpt-4o-mini")
                    self.assertEqual(sent["messages"][0], {"role": "system",
                                                           "content": "Summarise this pump incident for the maintenance team."})
                    user = sent["messages"][1]["content"]
                    self.assertIn('"value":150', user)
                    # The last 3 records of the device before the one that fired, oldest first.
                    self.assertLess(user.index('"value":2'), user.index('"value":3'))
                    self.assertLess(user.index('"value":3'), user.index('"value":4'))
                    self.assertNotIn('"value":1,', user)

                    def summaries():
                        return [r for r in rx.records() if r.get("metric") == "summary"]
                    self.assertTrue(wait_until(lambda: len(summaries()) == 1, timeout=5), rx.records())
                    s = summaries()[0]
                    self.assertEqual((s["kind"], s["rule"], s["device"], s["ts"]), ("summary", "incident", "pump-7", t0 + 4))
                    self.assertEqual(s["text"], "Hello from fake gpt-4o-mini")
                    self.assertEqual(s["provider"], "local-llm")
                    self.assertGreater(s["prompt_tokens"], 0)
                    self.assertTrue(s["id"].endswith("/incident/summary"))
                    self.assertTrue(wait_until(lambda: len(watcher.lines()) == 1, timeout=5))
                    self.assertTrue(watcher.lines()[0].startswith("summaries/pump-7 "))
                    # The model fails: counted, reported, nothing sent.
                    llm.script(times=10, status=500)
                    r = http_request(port, "POST", "/ingest/pump-8", body=json.dumps({"value": 500}),
                                     headers={"Content-Type": "application/json"})
                    self.assertEqual(r.status, 202)

                    def incident():
                        return [x for x in gw.admin("GET", "/edge", token=TOKEN).json()["rules"] if x["name"] == "incident"][0]
                    self.assertTrue(wait_until(lambda: incident()["failed_actions"] == 1, timeout=10), incident())
                    self.assertIn("model 'gpt-4o-mini' gave no summary", incident()["last_error"])
                    self.assertEqual(incident()["summaries"], 1)
                    self.assertEqual(len(summaries()), 1)
            finally:
                watcher.stop()


class MqttSecurity(unittest.TestCase):
    def test_tls_with_a_client_certificate(self):
        d = tempfile.mkdtemp(prefix="ganglion-mqtt-tls-")
        make_pki(d)
        listener = "cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n" % (
            os.path.join(d, "ca.pem"), os.path.join(d, "localhost.pem"), os.path.join(d, "localhost.key"))
        with Mosquitto(extra=listener) as broker, Receiver() as rx:
            tls = "    tls: { ca: %s, cert: %s, key: %s }" % (
                os.path.join(d, "ca.pem"), os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
            text, admin = config(broker, rx.port, extra=tls, url=broker.url("mqtts"))
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5), connector(gw))
                time.sleep(0.2)
                args = ["--cafile", os.path.join(d, "ca.pem"), "--cert", os.path.join(d, "client.pem"),
                        "--key", os.path.join(d, "client.key")]
                broker.publish("plant/pump-1/temp", "20.5", qos=2, args=args)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
            # Without the client certificate the broker refuses the handshake: reported, retried.
            tls = "    tls: { ca: %s }" % os.path.join(d, "ca.pem")
            text, admin = config(broker, rx.port, extra=tls, url=broker.url("mqtts"))
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connector(gw)["failed_attempts"] >= 2, timeout=5))
                self.assertFalse(connected(gw))
            # A CA that did not sign the broker's certificate: the gateway refuses the broker.
            tls = "    tls: { ca: %s, cert: %s, key: %s }" % (
                os.path.join(d, "rogue-ca.pem"), os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
            text, admin = config(broker, rx.port, extra=tls, url=broker.url("mqtts"))
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: "TLS handshake failed" in connector(gw).get("last_error", ""),
                                           timeout=5), connector(gw))

    def test_refused_credentials_are_reported_without_the_password(self):
        d = tempfile.mkdtemp(prefix="ganglion-mqtt-auth-")
        pwfile = os.path.join(d, "passwords")
        import subprocess
        subprocess.run(["mosquitto_passwd", "-c", "-b", pwfile, "gateway", "Right-Pa55word"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Mosquitto(extra="password_file %s\n" % pwfile, allow_anonymous=False) as broker, Receiver() as rx:
            for protocol in ("5", "3.1.1"):
                extra = '    username: gateway\n    password: "Wr0ng-Secret-Pa55"'
                text, admin = config(broker, rx.port, protocol=protocol, extra=extra)
                with Gateway(text, admin_port=admin) as gw:
                    self.assertTrue(wait_until(lambda: "refused" in connector(gw).get("last_error", ""), timeout=5))
                    c = connector(gw)
                    self.assertIn("not authorized", c["last_error"])  # mosquitto's answer to a wrong password
                    self.assertFalse(c["connected"])
                    shown = gw.admin("GET", "/config", token=TOKEN).text
                    self.assertNotIn("Wr0ng-Secret-Pa55", shown)
                    self.assertIn("<redacted>", shown)
                    time.sleep(0.3)
                    self.assertNotIn("Wr0ng-Secret-Pa55", gw.log_text())
                    self.assertNotIn("Wr0ng-Secret-Pa55", json.dumps(c))
            extra = '    username: gateway\n    password: "Right-Pa55word"'
            text, admin = config(broker, rx.port, extra=extra)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connected(gw), timeout=5), connector(gw))


class FakeBroker:
    """A scripted MQTT 5 broker on a free port: connection i runs scripts[min(i, len-1)](sock,
    connect_packet), which answers with raw bytes. Records every connection's time and packets."""

    def __init__(self, scripts):
        import socket
        import threading
        self.scripts = scripts
        self.sock = socket.socket()
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = []  # (time, CONNECT body)
        self.packets = []      # (connection index, type, body) after CONNECT
        self.closed = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def url(self, scheme="mqtt"):
        return "mqtt://%s:%d" % (LOCALHOST, self.port)

    def serve(self):
        import threading
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index = len(self.connections)
            threading.Thread(target=self.run, args=(conn, index), daemon=True).start()

    def run(self, conn, index):
        try:
            kind, body = read_packet(conn)
            self.connections.append((time.monotonic(), body))
            self.scripts[min(index, len(self.scripts) - 1)](self, conn, index)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.closed = True
        self.sock.close()


def read_packet(conn):
    first = conn.recv(1)
    if not first:
        raise OSError("closed")
    length, shift = 0, 0
    while True:
        b = conn.recv(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise OSError("closed")
        body += chunk
    return first[0] >> 4, body


def connack(code=0, props=b""):
    return packet(0x20, bytes([0, code]) + varint(len(props)) + props)


def keep_reading(broker, conn, index, seconds, on_packet=None):
    """Reads packets for `seconds`: each goes to `on_packet(kind, body)` when given, else to
    broker.packets as (index, kind, body)."""
    conn.settimeout(0.2)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            kind, body = read_packet(conn)
        except TimeoutError:
            continue
        except OSError:
            return
        if on_packet:
            on_packet(kind, body)
        else:
            broker.packets.append((index, kind, body))


def connect_keep_alive(body):
    # CONNECT variable header: protocol name (2+4), level, flags, keep alive (2 bytes).
    return int.from_bytes(body[8:10], "big")


FAKE = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - name: plant
    kind: mqtt
    url: @URL@
    keep_alive: 4s
    reconnect: { initial: 100ms, max: 400ms }
    subscribe:
      - { topic: "plant/+/temp", qos: 1, format: number, metric: temp }
pipelines:
  - { name: raw, from: [ plant ], stages: [] }
access_log: { enabled: false }
"""


class MqttAgainstAHostileBroker(unittest.TestCase):
    def gateway(self, broker, subscription_qos=1):
        port, admin = free_port(), free_port()
        text = render(FAKE, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, URL=broker.url())
        return Gateway(text.replace("qos: 1, format: number", "qos: %d, format: number" % subscription_qos),
                       admin_port=admin)

    def test_the_brokers_keep_alive_holds_for_its_connection_only_and_zero_turns_it_off(self):
        def first(broker, conn, index):
            conn.sendall(connack(props=bytes([0x13, 0, 0])))  # Server Keep Alive 0: none
            keep_reading(broker, conn, index, 2.5)            # then the connection ends

        def second(broker, conn, index):
            conn.sendall(connack())
            keep_reading(broker, conn, index, 3)

        broker = FakeBroker([first, second])
        try:
            with self.gateway(broker):
                self.assertTrue(wait_until(lambda: len(broker.connections) >= 2, timeout=6))
                pings = [p for p in broker.packets if p[0] == 0 and p[1] == 12]
                self.assertEqual(pings, [])  # the old code pinged every second
                self.assertEqual(connect_keep_alive(broker.connections[1][1]), 4)  # the configured value again
        finally:
            broker.close()

    def test_broker_text_cannot_forge_log_lines_and_is_bounded(self):
        reason = "go away \x1b[31m\ninjected line " + "x" * 5000
        encoded = reason.encode()

        def refuse(broker, conn, index):
            conn.sendall(connack(0x87, bytes([0x1F]) + len(encoded).to_bytes(2, "big") + encoded))

        broker = FakeBroker([refuse])
        try:
            with self.gateway(broker) as gw:
                self.assertTrue(wait_until(lambda: "not authorized" in gw.log_text(), timeout=5))
                log = gw.log_text()
                self.assertNotIn("\x1b", log)
                self.assertFalse(any(line.startswith("injected") for line in log.split("\n")))
                self.assertTrue(all(len(line) < 1000 for line in log.split("\n")), max(map(len, log.split("\n"))))
                last = connector(gw)["last_error"]
                self.assertLess(len(last), 600)
                self.assertIn("go away ?[31m?injected", last)
        finally:
            broker.close()

    def test_a_broker_that_ends_each_connection_after_connack_is_backed_off(self):
        def hang_up(broker, conn, index):
            conn.sendall(connack())

        broker = FakeBroker([hang_up])
        try:
            with self.gateway(broker):
                time.sleep(3)
                # 100, 200, 400, 400... ms with jitter: about 8 in 3 s (the old code: 25 or more).
                self.assertLess(len(broker.connections), 13, len(broker.connections))
                self.assertGreater(len(broker.connections), 3)
        finally:
            broker.close()

    def test_a_suback_for_another_packet_is_reported(self):
        def wrong_suback(broker, conn, index):
            conn.sendall(connack())
            kind, body = read_packet(conn)  # SUBSCRIBE
            wrong = (int.from_bytes(body[:2], "big") + 1) & 0xFFFF or 1
            conn.sendall(packet(0x90, wrong.to_bytes(2, "big") + bytes([0, 1])))
            keep_reading(broker, conn, index, 3)

        broker = FakeBroker([wrong_suback])
        try:
            with self.gateway(broker) as gw:
                self.assertTrue(wait_until(lambda: "SUBACK for packet" in connector(gw).get("last_error", ""),
                                           timeout=5), connector(gw))
        finally:
            broker.close()

    def test_the_same_connection_error_is_logged_once_a_minute(self):
        # An outside test with reconnect.initial 50ms saw 10 to 20 log lines a second.
        def refuse(broker, conn, index):
            conn.sendall(connack(0x87))

        broker = FakeBroker([refuse])
        try:
            with self.gateway(broker) as gw:
                self.assertTrue(wait_until(lambda: len(broker.connections) >= 5, timeout=6))
                lines = [line for line in gw.log_text().split("\n") if "not authorized" in line]
                self.assertEqual(len(lines), 1, lines)
                self.assertIn("not authorized", connector(gw)["last_error"])
        finally:
            broker.close()

    def test_a_qos2_packet_id_sent_again_before_pubrel_is_one_message_dup_or_not(self):
        # MQTT 5 4.3.3: until PUBREL, a PUBLISH with the same packet id is the same message,
        # whatever its DUP flag. An outside test's broker sent one id five times without DUP,
        # before any PUBREC went out: each was taken as a new reading.
        def same_id(broker, conn, index):
            conn.sendall(connack())
            kind, body = read_packet(conn)  # SUBSCRIBE
            conn.sendall(packet(0x90, body[:2] + bytes([0, 2])))
            topic = b"plant/p1/temp"
            for value in (b"1", b"2", b"3", b"4", b"5"):
                conn.sendall(packet(0x34, len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + b"\x00"
                                    + value))
            keep_reading(broker, conn, index, 2)

        broker = FakeBroker([same_id])
        try:
            with self.gateway(broker, subscription_qos=2) as gw:
                self.assertTrue(wait_until(lambda: connector(gw)["messages"] == 5, timeout=5), connector(gw))
                time.sleep(0.2)
                c = connector(gw)
                self.assertEqual((c["readings"], c["redelivered"]), (1, 4), c)
                pubrecs = [p for p in broker.packets if p[1] == 5]
                self.assertEqual(len(pubrecs), 5)  # each acknowledged all the same
        finally:
            broker.close()


class MqttOverlappingFilters(unittest.TestCase):
    """Two filters that overlap, against a scripted MQTT 5 broker that sends one copy per
    subscription (as mosquitto does) with its Subscription Identifier."""

    def run_broker(self, refuse_first):
        def script(broker, conn, index):
            conn.sendall(connack())
            for expected_id in (1, 2):  # one SUBSCRIBE per filter, its index + 1 as identifier
                kind, body = read_packet(conn)
                broker.packets.append((index, kind, body))
                code = 0x87 if refuse_first and expected_id == 1 else 1
                conn.sendall(packet(0x90, body[:2] + bytes([0, code])))
            pid = 100
            for topic, ids, value in ((b"plant/p1/temp", [1], b"1"), (b"plant/p1/temp", [2], b"2"),
                                      (b"plant/p1/other", [2], b"3")):
                if refuse_first and ids == [1]:
                    continue  # a refused filter gets no copy
                props = b"".join(bytes([0x0B, i]) for i in ids)
                conn.sendall(packet(0x32, len(topic).to_bytes(2, "big") + topic + pid.to_bytes(2, "big")
                                    + varint(len(props)) + props + value))
                pid += 1
            keep_reading(broker, conn, index, 15)  # no reconnection (and copies sent again) meanwhile
        return FakeBroker([script])

    def gateway(self, broker):
        port, admin = free_port(), free_port()
        text = render(FAKE, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, URL=broker.url())
        text = text.replace('      - { topic: "plant/+/temp", qos: 1, format: number, metric: temp }\n',
                            '      - { topic: "plant/+/temp", qos: 1, format: number, metric: temp }\n'
                            '      - { topic: "plant/#", qos: 1, format: number, metric: x, device: misc }\n')
        text = text.replace("stages: [] }", "stages: [], to: [ local ] }") + (
            "sinks: [ { name: local, kind: tsdb } ]\nedge: { data_dir: %s }\n" % tempfile.mkdtemp(prefix="ganglion-ov-"))
        return Gateway(text, admin_port=admin)

    def values(self, gw):
        r = gw.admin("GET", "/edge/sinks/local/records?kind=reading", token=TOKEN)
        return sorted((x["device"], x["metric"], x["value"]) for x in r.json()["records"])

    def test_the_copy_for_a_later_filter_is_dropped(self):
        broker = self.run_broker(refuse_first=False)
        try:
            with self.gateway(broker) as gw:
                self.assertTrue(wait_until(lambda: connector(gw)["messages"] == 3, timeout=5), connector(gw))
                subscribes = [b for (_, kind, b) in broker.packets if kind == 8]
                # Each SUBSCRIBE carries Subscription Identifier 1, then 2 (properties: 2 bytes).
                self.assertEqual([b[2:5] for b in subscribes], [bytes([2, 0x0B, 1]), bytes([2, 0x0B, 2])])
                self.assertTrue(wait_until(lambda: len(self.values(gw)) == 2, timeout=5), self.values(gw))
                self.assertEqual(self.values(gw), [("misc", "x", 3), ("p1", "temp", 1)])
                self.assertEqual(connector(gw)["extra_copies"], 1)
        finally:
            broker.close()

    def test_a_refused_filter_leaves_its_messages_to_the_one_granted(self):
        broker = self.run_broker(refuse_first=True)
        try:
            with self.gateway(broker) as gw:
                self.assertTrue(wait_until(lambda: connector(gw)["messages"] == 2, timeout=5), connector(gw))
                self.assertTrue(wait_until(lambda: len(self.values(gw)) == 2, timeout=5), self.values(gw))
                # plant/p1/temp is read by its first filter's settings, through plant/#'s copy.
                self.assertEqual(self.values(gw), [("misc", "x", 3), ("p1", "temp", 2)])
                c = connector(gw)
                self.assertEqual((c["extra_copies"], c["refused_subscriptions"]), (0, 1), c)
        finally:
            broker.close()


class MqttConfigErrors(unittest.TestCase):
    def check(self, text):
        return check_config(text)

    def test_bad_settings_are_refused_with_their_line(self):
        class FakeBroker:
            port = 1

            def url(self, scheme="mqtt"):
                return "%s://127.0.0.1:1883" % scheme

        text, _ = config(FakeBroker(), free_port())
        code, out = self.check(text)
        self.assertEqual(code, 0, out)
        cases = [
            ("url: mqtt://127.0.0.1:1883", "url: http://127.0.0.1:1883",
             "url must be mqtt://host[:port] or mqtts://host[:port]"),
            ("url: mqtt://127.0.0.1:1883", "url: mqtt://user:pw@127.0.0.1:1883", "must not hold credentials"),
            ("url: mqtt://127.0.0.1:1883", "url: mqtt://127.0.0.1:1883/x", "an MQTT url names only the broker"),
            ('"plant/+/vibration", qos: 1', '"plant/#/vibration", qos: 1', "topic 'plant/#/vibration'"),
            ('"plant/+/vibration", qos: 1', '"plant/+/vibration", qos: 3', "qos"),
            ('"plant/+/temp", qos: 2, format: number', '"plant/+/temp", qos: 2, format: xml',
             "format must be one of json, number, senml, line_protocol, got 'xml'"),
            ('"plant/+/temp"', '"plant/+/vibration"', "duplicate topic 'plant/+/vibration'"),
            ('protocol: "5"', 'protocol: "4.0"', "protocol must be 5 or 3.1.1"),
            ("reconnect: { initial: 100ms, max: 400ms }", "reconnect: { initial: 1s, max: 400ms }",
             "reconnect.max must be at least reconnect.initial"),
            ('"plant/+/vibration", qos: 1', '"$share//vibration", qos: 1', "a shared subscription is"),
            ("keep_alive: 2s", "keep_alive: 2s\n    outbox: { durable: maybe }", "durable", "outbox:"),
            ("keep_alive: 2s", "keep_alive: 2s\n    outbox: { max_bytes: 100 }", "max_bytes", "outbox:"),
            ("keep_alive: 2s", "keep_alive: 2s\n    outbox: { size: 1MiB }", "unknown field 'size' in connector outbox", "outbox:"),
        ]
        assert_refused_at(self, text, cases)
        # A query in the url is refused without its values in the message (a password there).
        code, out = self.check(text.replace("url: mqtt://127.0.0.1:1883", "url: mqtt://127.0.0.1:1883/?pw=Qu3rySecret"))
        self.assertNotEqual(code, 0, out)
        self.assertIn("an MQTT url names only the broker", out)
        self.assertNotIn("Qu3rySecret", out)
        code, out = self.check(text.replace("keep_alive: 2s", "keep_alive: 2s\n    outbox: { durable: true, max_bytes: 1MiB }"))
        self.assertEqual(code, 0, out)
        code, out = self.check(text.replace("    keep_alive: 2s\n", "    tls: { verify: false }\n"))
        self.assertIn("tls needs an mqtts:// url", out)
        code, out = self.check(text.replace("    subscribe:\n", "    subscribes:\n"))
        self.assertIn("unknown field 'subscribes' in connector", out)
        self.assertIn("1 error(s)", out)  # one mistake, one message
        # Without subscribe a connector only publishes: a pipeline cannot read it.
        start = text.index("    subscribe:\n")
        end = text.index("sinks:")
        code, out = self.check(text[:start] + text[end:])
        self.assertIn("pipeline 'raw' reads connector 'plant', which subscribes to nothing (it only publishes)", out)
        code, out = self.check(text.replace("    url: mqtt://127.0.0.1:1883\n", ""))
        self.assertIn("an mqtt connector needs 'url'", out)
        code, out = self.check(text.replace("kind: mqtt", "kind: http"))
        self.assertIn("'url' is a field of mqtt connectors, not http ones", out)
        code, out = self.check(text.replace('protocol: "5"', 'protocol: "3.1.1"\n    password: x'))
        self.assertIn("MQTT 3.1.1 sends a password only with a username", out)
        # Settings that would make every message fail, or be ignored, are refused at load.
        code, out = self.check(text.replace(", format: number, metric: temp }", ", format: number }"))
        self.assertIn("subscription 'plant/+/temp' reads number payloads but no metric is set", out)
        code, out = self.check(text.replace('"plant/+/temp"', '"plant/all/temp"'))
        self.assertIn("subscription 'plant/all/temp' reads number payloads, and its topic has no '+' to name the "
                      "device: set 'device'", out)
        code, out = self.check(text.replace("client_id: gw-plant", 'client_id: ""'))
        self.assertIn("client_id must not be empty", out)
        code, out = self.check(text.replace('protocol: "5"', 'protocol: "3.1.1"\n    session_expiry: 1h'))
        self.assertIn("'session_expiry' is an MQTT 5 setting, and protocol is 3.1.1", out)

    def test_bad_rules_are_refused_with_their_line(self):
        text = rules_config("mqtt://127.0.0.1:1883", free_port(), free_port(), free_port())
        code, out = self.check(text)
        self.assertEqual(code, 0, out)
        cases = [
            ('when: "value > 10"', 'when: "valu > 10"', "rule 'hot': when: 1:1: unknown field 'valu' (did you mean 'value'?)"),
            ('when: "value > 10"', 'when: "value + 10"', "rule 'hot': when:"),
            ("connector: plant, topic", "connector: lab, topic",
             "rule 'hot' publishes through connector 'lab', which is http (publish needs an mqtt connector)"),
            ("connector: plant, topic", "connector: nowhere, topic", "publishes through unknown connector 'nowhere'"),
            ("forward: { to: uplink }", "forward: { to: downlink }", "rule 'hot' forwards to unknown sink 'downlink'"),
            ('"alarms/{device}/{rule}"', '"alarms/{devise}"', "unknown placeholder '{devise}'"),
            ('"alarms/{device}/{rule}"', '"alarms/#/{device}"', "topic 'alarms/#/{device}'"),
            ('"alarms/{device}/{rule}"', '"alarms/{device"', "a '{' without its '}'"),
            ("qos: 1 }\n      - forward", "qos: 5 }\n      - forward", "qos"),
            ("hold_off: 10s", "hold_off: 10s\n    per: site", "per must be device, series or rule, got 'site'",
             "per: site"),
            ("forward: { to: uplink }", "summarize: { model: m, prompt: p, to: uplink }",
             "rule 'hot' summarizes with unknown model 'm' (models: none)"),
            ("forward: { to: uplink }", "summarize: { prompt: p, to: uplink }", "summarize needs a 'model'"),
            ("forward: { to: uplink }", "webhook: { url: x }", "url"),
            ("forward: { to: uplink }", "webhook: { url: \"http://u:p@h/x\" }", "may not have credentials"),
            ("forward: { to: uplink }", "webhook: { url: \"http://h/x\", headers: { host: y } }",
             "header 'host' is set by the gateway"),
            ("forward: { to: uplink }", "webhook: { url: \"http://h/x\", retries: 11 }", "retries"),
            ("forward: { to: uplink }", "write: { connector: plant, register: x, value: \"1\" }",
             "rule 'hot' writes through connector 'plant', which is mqtt (write needs a modbus connector)"),
            ('"alarms/{device}/{rule}"', '"plant/{device}/temp"',
             "rule 'hot' publishes to 'plant/{device}/temp', which connector 'plant' reads ('plant/+/temp')"),
            ('"alarms/{device}/{rule}"', '"$SYS/{device}"', "topics starting with '$' belong to the broker"),
            ("  - name: hot\n", "  - name: h/ot\n", "rule name 'h/ot' may hold only letters"),
            ("forward: { to: uplink }", "explode: {}", "unknown action 'explode'"),
        ]
        assert_refused_at(self, text, cases)
        code, out = self.check(text.replace("  - name: hot\n", "  - name: hot\n    from: [ nope ]\n"))
        self.assertIn("rule 'hot' reads unknown pipeline 'nope'", out)
        # A mistake in a summarize action is that mistake alone, not also "the LLM API needs keys".
        with_llm = text.replace("rules:\n", "providers:\n  - { name: l, kind: openai, base_url: \"http://127.0.0.1:9/v1\", "
                                "api_key: none }\nmodels:\n  - { name: m, targets: [ { provider: l, model: m } ] }\n"
                                "rules:\n")
        code, out = self.check(with_llm.replace("forward: { to: uplink }", "summarize: { model: m, prompt: p, to: uplink }"))
        self.assertEqual(code, 0, out)
        code, out = self.check(with_llm.replace("forward: { to: uplink }", "summarize: { model: m, promt: p, to: uplink }"))
        self.assertIn("promt", out)
        self.assertNotIn("llm-api", out)
        self.assertIn("2 error(s)", out)  # the unknown field, and the prompt it should have been
        code, out = self.check(with_llm.replace("forward: { to: uplink }", 'summarize: { model: m, prompt: " ", to: uplink }'))
        self.assertIn("summarize needs a 'prompt' that says what to do", out)


if __name__ == "__main__":
    unittest.main()
