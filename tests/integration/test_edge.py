"""The edge data plane (docs/edge.md, docs/configuration.md "Edge"): readings POSTed to an
`ingest:` route run through a pipeline (filter, tumbling window, robust z-score) and reach an
HTTP sink as `{"records": [...]}` batches, in order, retried while the receiver fails.

A small receiver stands in for the uplink: it records every batch and can be told to fail."""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCALHOST, Gateway, Receiver, check_config, free_port, http_request, raw_exchange,  # noqa: E402
                     render, wait_until)

TOKEN = "Edge-Adm1n-T0ken-0123456789"
API_KEY = "edge-key-0123456789abcdef"


CONFIG = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
keys:
  - { name: device, key: @KEY@ }
connectors:
  - { name: lab, kind: http, metric: temperature }
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest?site=a
    headers: { authorization: "Bearer uplink-secret-token" }
    batch: { max_records: @MAX_RECORDS@, max_delay: 100ms }
    retry: { initial: 50ms, max: 200ms }
pipelines:
@PIPELINES@
access_log: { enabled: false }
routes:
  - name: ingest
    match: { path_prefix: /ingest/ }
    ingest: lab
    filters: [ { key_auth: {} } ]
  - name: open-ingest
    match: { path_prefix: /open/ }
    ingest: lab
"""

RAW = """  - name: raw
    from: [ lab ]
    stages:
      - filter: "value > -1000 and value < 1000"
    to: [ uplink ]
"""

WINDOWED = """  - name: health
    from: [ lab ]
    stages:
      - window: { tumbling: 1s, by: [device, metric], aggregates: [count, mean, max, rms] }
      - detect: { name: hot, field: max, history: 30, warmup: 10, threshold: 6 }
    to: [ uplink ]
"""


def config(sink_port, pipelines=RAW, max_records=500):
    port, admin = free_port(), free_port()
    return render(CONFIG, host=LOCALHOST, port=port, admin=admin, token=TOKEN, key=API_KEY, sink=sink_port,
                  pipelines=pipelines, max_records=max_records), port, admin


def post(gw, path, body, content_type="application/json", key=API_KEY):
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = body if isinstance(body, bytes) else body.encode()
    return http_request(gw.port, "POST", path, body=data, headers=headers)


def now_ms():
    return int(time.time() * 1000)


class IngestToSink(unittest.TestCase):
    def test_readings_reach_the_sink_with_ids_in_order(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                t0 = now_ms()
                for i in range(5):
                    r = post(gw, "/ingest/pump-1", json.dumps({"value": i, "ts": t0 + i, "site": "north"}))
                    self.assertEqual(r.status, 202, r.body)
                    self.assertEqual(r.json(), {"accepted": 1, "rejected": 0})
                r = post(gw, "/ingest/pump-2", json.dumps([{"value": 10}, {"value": 5000}, {"value": "x"}]))
                self.assertEqual(r.status, 202, r.body)
                self.assertEqual(r.json()["accepted"], 2)
                self.assertEqual(r.json()["rejected"], 1)
                self.assertEqual(r.json()["first_rejection"], "a 'value' that is not a number")
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 6, timeout=5), rx.records())
                recs = rx.records()
                self.assertEqual(len(recs), 6)  # 5000 is filtered out
                self.assertEqual([r["value"] for r in recs[:5]], [0, 1, 2, 3, 4])
                first = recs[0]
                self.assertEqual(first["source"], "lab")
                self.assertEqual(first["device"], "pump-1")
                self.assertEqual(first["metric"], "temperature")
                self.assertEqual(first["ts"], t0)
                self.assertEqual(first["kind"], "reading")
                self.assertEqual(first["attrs"], {"site": "north"})
                ids = [r["id"] for r in recs]
                self.assertEqual(len(set(ids)), 6)
                seqs = [int(i.split("-")[-1]) for i in ids]
                self.assertEqual(seqs, sorted(seqs))
                self.assertTrue(all(i.startswith("lab-") for i in ids))
                # The sink's request: the configured path, query and header.
                self.assertIn("authorization", {k.lower() for k in rx.headers[0]})
                # Numbers are written plainly: 0, 0.017, not boost::json's 0E0, 1.7E-2.
                edge_text = gw.admin("GET", "/edge", token=TOKEN).text
                self.assertIn('"oldest_wait_ms":0', edge_text)
                self.assertIsNone(re.search(r"\dE[-+]?\d", edge_text), edge_text)
                # The secret header is not shown by GET /config.
                cfg = gw.admin("GET", "/config", token=TOKEN)
                self.assertNotIn("uplink-secret-token", cfg.text)
                self.assertIn("<redacted>", cfg.text)

    def test_formats_by_content_type(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                r = post(gw, "/ingest/x", "flow,device=pump-7 value=3.5,temp=41i\n", content_type="text/plain")
                self.assertEqual(r.status, 202, r.body)
                self.assertEqual(r.json()["accepted"], 2)
                r = post(gw, "/ingest/dev-9", json.dumps([{"n": "humidity", "v": 40, "u": "%RH"}]),
                         content_type="application/senml+json")
                self.assertEqual(r.status, 202, r.body)
                r = post(gw, "/ingest/dev-3?metric=pressure", "12.5", content_type="application/json")
                self.assertEqual(r.status, 202, r.body)
                # A large body (decoded on the compute pool): every reading, in order.
                big = json.dumps([{"value": i / 100} for i in range(10_000)])  # the filter keeps |v| < 1000
                self.assertGreater(len(big), 64 * 1024)
                r = post(gw, "/ingest/bulk", big)
                self.assertEqual(r.status, 202, r.body)
                self.assertEqual(r.json()["accepted"], 10_000)
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 4 + 10_000, timeout=10),
                                (len(rx.records()), gw.admin("GET", "/edge", token=TOKEN).text))
                bulk = [r["value"] for r in rx.records() if r["device"] == "bulk"]
                self.assertEqual(bulk, [i / 100 for i in range(10_000)])
                recs = {(r["device"], r["metric"]): r for r in rx.records()}
                self.assertEqual(recs[("pump-7", "flow")]["value"], 3.5)
                self.assertEqual(recs[("pump-7", "flow.temp")]["value"], 41)
                self.assertEqual(recs[("dev-9", "humidity")]["attrs"], {"unit": "%RH"})
                self.assertEqual(recs[("dev-3", "pressure")]["value"], 12.5)

    def test_bad_requests_get_precise_errors(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            text = text.replace("  - name: public\n", "  - name: public\n    body_timeout: 500ms\n", 1)
            with Gateway(text, admin_port=admin) as gw:
                r = http_request(gw.port, "GET", "/ingest/pump-1", headers={"Authorization": "Bearer " + API_KEY})
                self.assertEqual(r.status, 405)
                self.assertEqual(r.headers.get("allow"), "POST")
                r = post(gw, "/ingest/pump-1", "1", key=None)
                self.assertEqual(r.status, 401)
                r = post(gw, "/ingest/pump-1", "{\"value\": ")
                self.assertEqual(r.status, 400)
                self.assertIn("json payload refused: not JSON at byte", r.json()["error"]["message"])
                r = post(gw, "/ingest/pump-1", "<x/>", content_type="application/xml")
                self.assertEqual(r.status, 415)
                r = post(gw, "/ingest/pump-1", json.dumps([{"value": "a"}, {"nope": 1}]))
                self.assertEqual(r.status, 422)
                self.assertIn("no reading was accepted: a 'value' that is not a number (2 refused)",
                              r.json()["error"]["message"])
                r = post(gw, "/ingest/pump-1", json.dumps({"value": 1, "ts": now_ms() + 3600_000}))
                self.assertEqual(r.status, 422)
                self.assertIn("a time too far in the future", r.text)
                r = post(gw, "/ingest/", "1")  # no device in the URL, none in the payload
                self.assertEqual(r.status, 422)
                self.assertIn("no device", r.text)
                r = post(gw, "/ingest/pump-1", "m v=1\nm v=x\n", content_type="text/plain")
                self.assertEqual(r.status, 400)
                self.assertIn("line 2: field 'v' is not a number", r.text)
                # Named twice, as a CoAP endpoint refuses it (an outside test saw one kept silently).
                for path, why in (("/ingest/?device=a&device=b", "device is given twice"),
                                  ("/ingest/pump-1?metric=a&metric=b", "metric is given twice"),
                                  ("/ingest/pump-1?device=b", "the device is named twice (path and ?device=)")):
                    r = post(gw, path, "1")
                    self.assertEqual((r.status, r.json()["error"]["message"]), (400, why), path)
                # Said twice, meaning two things: refused, not the first or last one kept.
                raw, _ = raw_exchange(gw.port, ("POST /open/pump-1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                             "application/json\r\nContent-Type: text/plain\r\n"
                                             "Content-Length: 1\r\n\r\n7").encode(), expect=1)
                self.assertTrue(raw.startswith(b"HTTP/1.1 400 "), raw[:100])
                self.assertIn(b"Content-Type is given more than once", raw)
                r = post(gw, "/ingest/pump-1", '{"value": 1, "value": 900}')
                self.assertEqual(r.status, 400, r.body)
                self.assertEqual(r.json()["error"]["message"],
                                 "json payload refused: the JSON is ambiguous: key 'value' is given twice ($.value)")
                # A coded body is refused as such, not read as garbage JSON.
                r = http_request(gw.port, "POST", "/ingest/pump-1", body=b"\x1f\x8b\x08\x00",
                                 headers={"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json",
                                          "Content-Encoding": "gzip"})
                self.assertEqual(r.status, 415, r.body)
                self.assertIn("Content-Encoding is not supported", r.json()["error"]["message"])
                # Larger than max_body (1 MiB): refused from Content-Length, before the body.
                raw, _ = raw_exchange(gw.port, ("POST /open/pump-1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                             "application/json\r\nContent-Length: 2000000\r\n\r\n[1,").encode())
                self.assertTrue(raw.startswith(b"HTTP/1.1 413 "), raw[:100])
                self.assertIn(b"the body is larger than 1048576 bytes", raw)
                # A body that stops coming: 408 request_timeout (it said bad_request).
                raw, _ = raw_exchange(gw.port, ("POST /open/pump-1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                             "application/json\r\nContent-Length: 10\r\n\r\n[1,").encode(),
                                      read_timeout=3, expect=1)
                self.assertTrue(raw.startswith(b"HTTP/1.1 408 "), raw[:100])
                self.assertIn(b'"type":"request_timeout"', raw)
                # Keep-alive after each error: a good request on a fresh connection still works.
                r = post(gw, "/open/pump-1", "7")
                self.assertEqual(r.status, 202, r.body)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                status = gw.admin("GET", "/edge", token=TOKEN).json()
                lab = status["connectors"][0]
                self.assertEqual(lab["name"], "lab")
                self.assertEqual(lab["readings"], 1)
                self.assertGreaterEqual(lab["refused"], 8)


class WindowsAndEvents(unittest.TestCase):
    def test_windows_follow_event_time_and_a_spike_raises_an_event(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=WINDOWED)
            with Gateway(text, admin_port=admin) as gw:
                base = (now_ms() // 1000 - 60) * 1000  # a minute ago, on a whole second
                for second in range(30):
                    batch = [{"value": 20 + (i % 3) * 0.1, "ts": base + second * 1000 + i * 100} for i in range(10)]
                    if second == 25:
                        batch[5]["value"] = 95  # one hot reading
                    r = post(gw, "/ingest/oven-1", json.dumps(batch))
                    self.assertEqual(r.status, 202, r.body)
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 29 + 1, timeout=5),
                                ([(r["kind"], r["ts"] - base) for r in rx.records()],
                                 gw.admin("GET", "/edge", token=TOKEN).text))
                # Payloads run in the order they were answered, whichever worker took them (a
                # payload posted from the pipeline's own worker once overtook the one before).
                st = gw.admin("GET", "/edge", token=TOKEN).json()
                self.assertEqual(st["pipelines"][0]["stages"][0]["late"], 0, st)
                recs = rx.records()
                windows = [r for r in recs if r["kind"] == "window"]
                events = [r for r in recs if r["kind"] == "event"]
                self.assertEqual(len(windows), 29)  # the 30th is still open (no later reading)
                self.assertEqual(windows[0]["ts"], base)
                self.assertEqual(windows[0]["count"], 10)
                self.assertEqual(windows[0]["window_ms"], 1000)
                self.assertIsNone(windows[0]["source"])
                self.assertEqual(windows[0]["device"], "oven-1")
                self.assertAlmostEqual(windows[0]["mean"], 20.09, places=6)
                self.assertEqual(len(events), 1, events)
                e = events[0]
                self.assertEqual(e["detector"], "hot")
                self.assertEqual(e["ts"], base + 25_000)
                self.assertEqual(e["value"], 95)
                self.assertIn("max 95 is", e["reason"])
                # The last window closes on wall time: no reading for one window length.
                self.assertTrue(wait_until(lambda: len([r for r in rx.records() if r["kind"] == "window"]) == 30,
                                           timeout=5),
                                (len([r for r in rx.records() if r["kind"] == "window"]),
                                 gw.admin("GET", "/edge", token=TOKEN).text))
                # A late reading (its window closed) is counted, not delivered.
                r = post(gw, "/ingest/oven-1", json.dumps({"value": 1, "ts": base + 500}))
                self.assertEqual(r.status, 202)
                def late():
                    st = gw.admin("GET", "/edge", token=TOKEN).json()
                    return st["pipelines"][0]["stages"][0]["late"]
                self.assertTrue(wait_until(lambda: late() == 1, timeout=5))
                metrics = gw.admin("GET", "/metrics", token=TOKEN).text
                self.assertIn('ganglion_edge_pipeline_events_total{pipeline="health"} 1', metrics)
                self.assertIn('ganglion_edge_pipeline_dropped_total{pipeline="health",reason="late"} 1', metrics)
                self.assertIn('ganglion_edge_sink_delivered_total{sink="uplink"} 31', metrics)
                # Each stage's time and batches: the window took the 31 payloads (and the ticks
                # that closed windows), the detector the batches of window records.
                import re
                st = gw.admin("GET", "/edge", token=TOKEN).json()
                window, detect = st["pipelines"][0]["stages"]
                # Nothing waits for the pipeline's worker now: no age.
                self.assertEqual((st["pipelines"][0]["waiting"], st["pipelines"][0]["oldest_wait_ms"]), (0, 0), st)
                self.assertIn('ganglion_edge_pipeline_wait_seconds{pipeline="health"} 0.000000\n', metrics)
                self.assertGreaterEqual(window["batches"], 31, window)
                self.assertTrue(1 <= detect["batches"] <= 30, detect)  # payloads run together share one
                self.assertGreater(window["busy_ms"], 0, window)
                for i, kind in ((0, "window"), (1, "detect")):
                    m = re.search(r'ganglion_edge_stage_busy_seconds_total\{pipeline="health",stage="%d",kind="%s"\} '
                                  r'([0-9.]+)\n' % (i, kind), metrics)
                    self.assertIsNotNone(m, metrics)
                    self.assertGreater(float(m.group(1)), 0)
                self.assertIn('ganglion_edge_stage_batches_total{pipeline="health",stage="1",kind="detect"} %d\n'
                              % detect["batches"], metrics)


class SinkOutage(unittest.TestCase):
    def test_records_wait_and_arrive_in_order_when_the_receiver_returns(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = config(rx.port, max_records=3)
            with Gateway(text, admin_port=admin) as gw:
                for i in range(10):
                    self.assertEqual(post(gw, "/ingest/p", str(i)).status, 202)
                self.assertTrue(wait_until(lambda: rx.attempts >= 3, timeout=5))
                # The receiver counts an attempt a moment before the gateway has its answer.
                self.assertTrue(wait_until(lambda: gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]
                                           ["failures"] >= 3, timeout=5))
                st = gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]
                self.assertEqual(st["queued_records"], 10)
                self.assertGreaterEqual(st["failures"], 3)
                self.assertEqual(st["last_error"], "the receiver answered 503: {\"ok\":true}")  # its body said
                self.assertEqual(st["delivered"], 0)
                with rx.lock:
                    rx.status = 200
                self.assertTrue(wait_until(lambda: len(rx.records()) == 10, timeout=5))
                self.assertEqual([r["value"] for r in rx.records()], list(range(10)))
                self.assertTrue(all(len(b["records"]) <= 3 for b in rx.batches))
                def sink():
                    return gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]
                # The receiver has the last batch a moment before the gateway has its answer.
                self.assertTrue(wait_until(lambda: sink()["queued_records"] == 0, timeout=5))
                self.assertEqual(sink()["delivered"], 10)

    def test_new_records_do_not_cut_the_backoff_short(self):
        # retry: 50ms doubling to 200ms. A record every 50 ms while the receiver fails must not
        # bring a delivery attempt with each record (it once did: enqueue woke the backoff).
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                started = time.monotonic()
                while time.monotonic() - started < 2.0:
                    self.assertEqual(post(gw, "/ingest/p", "1").status, 202)
                    time.sleep(0.05)
                with rx.lock:
                    attempts = rx.attempts
                # At most one attempt per 200 ms after the first few (~12 in 2 s); each record
                # waking it gave one per record (~40).
                self.assertLessEqual(attempts, 16)
                self.assertGreaterEqual(attempts, 5)
                with rx.lock:
                    rx.status = 200
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 20, timeout=5))

    def test_a_204_without_a_body_delivers_at_once(self):
        # A 204 has no body and needs no Content-Length (InfluxDB's answer to a write). The
        # client once waited for a body to its read timeout (10 s) before taking the answer.
        with Receiver() as rx:
            rx.status = 204
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                for i in range(3):
                    self.assertEqual(post(gw, "/ingest/p", str(i)).status, 202)
                    self.assertTrue(wait_until(lambda: gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]
                                               ["delivered"] == i + 1, timeout=3),
                                    gw.admin("GET", "/edge", token=TOKEN).text)
                self.assertEqual(rx.attempts, 3)

    def test_a_receiver_echoing_the_token_does_not_put_it_in_the_status(self):
        with Receiver() as rx:
            rx.status = 401
            rx.echo_headers = True
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.assertEqual(post(gw, "/ingest/p", "1").status, 202)
                self.assertTrue(wait_until(lambda: gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]
                                           ["failures"] >= 1, timeout=5))
                st = gw.admin("GET", "/edge", token=TOKEN).text
                self.assertIn("the receiver answered 401: refused:", st)
                self.assertIn("<redacted>", st)
                self.assertNotIn("uplink-secret-token", st)

    def test_unreachable_receiver_is_retried(self):
        dead = free_port()
        text, port, admin = config(dead)
        with Gateway(text, admin_port=admin) as gw:
            self.assertEqual(post(gw, "/ingest/p", "1").status, 202)
            def failures():
                return gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]["failures"]
            self.assertTrue(wait_until(lambda: failures() >= 2, timeout=5))
            self.assertTrue(gw.alive())


class Reload(unittest.TestCase):
    def test_an_unchanged_pipeline_keeps_its_open_windows(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=WINDOWED)
            with Gateway(text, admin_port=admin) as gw:
                base = (now_ms() // 1000 - 10) * 1000
                for i in range(4):
                    self.assertEqual(post(gw, "/ingest/d", json.dumps({"value": 1, "ts": base + i * 10})).status, 202)
                # Reload with another pipeline added: "health" is unchanged.
                extra = WINDOWED + RAW.replace("name: raw", "name: raw2").replace("to: [ uplink ]", "to: []")
                new_text = text.replace(WINDOWED, extra)
                self.assertNotEqual(new_text, text)
                gw.reload_file(new_text)
                r = gw.admin("POST", "/reload", token=TOKEN)
                self.assertEqual(r.status, 200, r.body)
                names = [p["name"] for p in gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"]]
                self.assertEqual(names, ["health", "raw2"])
                self.assertEqual(post(gw, "/ingest/d", json.dumps({"value": 1, "ts": base + 1500})).status, 202)
                self.assertTrue(wait_until(lambda: any(r["kind"] == "window" for r in rx.records()), timeout=5))
                w = [r for r in rx.records() if r["kind"] == "window"][0]
                self.assertEqual(w["count"], 4)  # the readings from before the reload

    def test_a_bad_reload_keeps_the_running_edge(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                gw.reload_file(text.replace('"value > -1000 and value < 1000"', '"valu > 1"'))
                r = gw.admin("POST", "/reload", token=TOKEN)
                self.assertEqual(r.status, 400, r.body)
                self.assertEqual(r.json()["error"]["type"], "invalid_config")
                self.assertIn("pipeline 'raw': stages[0].filter: 1:1: unknown field 'valu' (did you mean 'value'?)",
                              r.text)
                self.assertEqual(post(gw, "/ingest/p", "3").status, 202)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                # A config's bytes quoted in an error (not UTF-8, a terminal escape) reach the
                # answer as valid JSON and the log without control characters.
                for junk in (b'a: "\\\xff"\n', b"listeners\x1b[2J: []\n"):
                    with open(gw.config_path, "wb") as f:
                        f.write(text.encode() + junk)
                    r = gw.admin("POST", "/reload", token=TOKEN)
                    self.assertEqual(r.status, 400, r.body)
                    self.assertEqual(r.json()["error"]["type"], "invalid_config")  # decodes as UTF-8
                    self.assertNotIn(b"\xff", r.body)
                    self.assertNotIn(b"\x1b", r.body)
                    for check in ("/config/check",):
                        c = gw.admin("POST", check, token=TOKEN, body=text.encode() + junk,
                                     headers={"Content-Type": "application/yaml"})
                        self.assertNotIn(b"\xff", c.body)
                        self.assertNotIn(b"\x1b", c.body)
                        c.json()
                with open(gw.log_path, "rb") as f:
                    log = f.read()
                self.assertIn(b"reload rejected", log)
                self.assertNotIn(b"\xff", log)
                self.assertNotIn(b"\x1b", log)


class FloodLimits(unittest.TestCase):
    def test_a_flooding_device_is_limited_and_listed_and_the_others_pass(self):
        with Receiver() as rx:
            limited = RAW.replace("    to: [ uplink ]", "    device_limit: { rate: 1, burst: 5 }\n    to: [ uplink ]")
            text, port, admin = config(rx.port, pipelines=limited)
            with Gateway(text, admin_port=admin) as gw:
                t0 = now_ms()
                flood = [{"value": i, "ts": t0 + i} for i in range(50)]
                self.assertEqual(post(gw, "/ingest/flood", json.dumps(flood)).status, 202)
                for i in range(3):
                    self.assertEqual(post(gw, "/ingest/quiet", json.dumps({"value": i, "ts": t0 + i})).status, 202)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 8, timeout=5), len(rx.records()))
                time.sleep(0.3)
                recs = rx.records()
                self.assertEqual([r["value"] for r in recs if r["device"] == "flood"], [0, 1, 2, 3, 4])  # the burst
                self.assertEqual([r["value"] for r in recs if r["device"] == "quiet"], [0, 1, 2])

                def pipe():
                    return gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]
                self.assertEqual(pipe()["device_limited"], 45)
                self.assertEqual(pipe()["series"], 2)  # a limited reading takes no series
                self.assertTrue(wait_until(lambda: pipe()["limited_devices"] != [], timeout=3), pipe())
                self.assertEqual(pipe()["limited_devices"], [{"source": "lab", "device": "flood", "dropped": 45}])
                m = gw.admin("GET", "/metrics", token=TOKEN).text
                self.assertIn('ganglion_edge_pipeline_dropped_total{pipeline="raw",reason="device_limit"} 45', m)
                self.assertIn("a device sends more than device_limit.rate (1/s)", gw.log_text())
                # A reload that lifts the limit keeps the pipeline running (its counters go on).
                gw.reload_file(text.replace("    device_limit: { rate: 1, burst: 5 }\n", ""))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertEqual(post(gw, "/ingest/flood", json.dumps(flood)).status, 202)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 58, timeout=5), len(rx.records()))
                self.assertEqual(pipe()["readings_in"], 103)
                self.assertEqual(pipe()["device_limited"], 45)
                code, out = check_config(text.replace("rate: 1, burst: 5", "burst: 5"))
                self.assertNotEqual(code, 0)
                self.assertIn("rate", out)
                code, out = check_config(text.replace("rate: 1,", "rate: 0,"))
                self.assertNotEqual(code, 0)


class StartStop(unittest.TestCase):
    """POST /edge/{pipelines|connectors|sinks}/{name}/{stop|start} (docs/admin-api.md)."""

    def edge(self, gw):
        return gw.admin("GET", "/edge", token=TOKEN).json()

    def control(self, gw, part, name, action, token=TOKEN):
        return gw.admin("POST", "/edge/%s/%s/%s" % (part, name, action), token=token)

    def send(self, gw, values, device="pump-1"):
        t0 = now_ms()
        r = post(gw, "/ingest/" + device, json.dumps([{"value": v, "ts": t0 + i} for i, v in enumerate(values)]))
        self.assertEqual(r.status, 202, r.body)

    def test_a_stopped_sink_queues_a_stopped_pipeline_holds_and_both_resume_in_order(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                r = self.control(gw, "sinks", "uplink", "stop")
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json(), {"name": "uplink", "kind": "sink", "stopped": True, "changed": True})
                self.assertFalse(self.control(gw, "sinks", "uplink", "stop").json()["changed"])
                self.send(gw, range(5))
                sink = lambda: self.edge(gw)["sinks"][0]  # noqa: E731
                self.assertTrue(wait_until(lambda: sink()["queued_records"] == 5, timeout=5), sink())
                time.sleep(0.4)  # max_delay is 100 ms: a running sink would have sent them
                self.assertEqual(rx.records(), [])
                self.assertTrue(sink()["stopped"])
                self.assertIn("sink 'uplink' stopped through the admin API", gw.log_text())
                m = gw.admin("GET", "/metrics", token=TOKEN).text
                self.assertIn('ganglion_edge_stopped{part="sink",name="uplink"} 1', m)
                self.assertEqual(self.control(gw, "sinks", "uplink", "start").status, 200)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 5, timeout=5), rx.records())
                self.assertFalse(sink()["stopped"])
                self.assertNotIn("ganglion_edge_stopped", gw.admin("GET", "/metrics", token=TOKEN).text)

                # A stopped pipeline takes readings and runs none of them until started.
                self.assertEqual(self.control(gw, "pipelines", "raw", "stop").status, 200)
                pipe = lambda: self.edge(gw)["pipelines"][0]  # noqa: E731
                self.send(gw, range(5, 10))
                self.assertTrue(wait_until(lambda: pipe()["waiting"] == 5, timeout=5), pipe())
                self.assertEqual(pipe()["readings_in"], 5)
                self.assertTrue(pipe()["stopped"])
                # A reload that changes the pipeline keeps it stopped, and the readings it held.
                gw.reload_file(text.replace("value > -1000", "value > -2000"))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                time.sleep(0.4)
                self.assertTrue(pipe()["stopped"], pipe())
                self.assertEqual(pipe()["waiting"], 5)
                self.assertEqual(len(rx.records()), 5)
                self.assertEqual(self.control(gw, "pipelines", "raw", "start").status, 200)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 10, timeout=5), rx.records())
                self.assertEqual([r["value"] for r in rx.records()], list(range(10)))
                self.assertEqual(pipe()["waiting"], 0)

    def test_a_stopped_http_connector_answers_503_and_bad_requests_are_refused(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                r = self.control(gw, "connectors", "lab", "stop")
                self.assertEqual(r.json(), {"name": "lab", "kind": "connector", "stopped": True, "changed": True})
                r = post(gw, "/ingest/pump-1", json.dumps({"value": 1}))
                self.assertEqual(r.status, 503, r.body)
                self.assertEqual(r.json()["error"]["type"], "connector_stopped")
                self.assertEqual(r.headers.get("retry-after"), "30")  # an operator's stop: not "at once"
                self.assertEqual(post(gw, "/ingest/pump-1", "{not json").status, 503)  # the body is not read
                self.assertIn("connector 'lab' is stopped", r.json()["error"]["message"])
                self.assertTrue(self.edge(gw)["connectors"][0]["stopped"])
                self.assertEqual(self.edge(gw)["connectors"][0]["refused"], 2)  # both payloads counted
                self.assertEqual(self.control(gw, "connectors", "lab", "start").status, 200)
                self.assertEqual(post(gw, "/ingest/pump-1", json.dumps({"value": 1})).status, 202)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                # Unknown names, wrong methods, no token.
                r = self.control(gw, "pipelines", "nope", "stop")
                self.assertEqual(r.status, 404, r.body)
                self.assertEqual(r.json()["error"]["type"], "pipeline_not_found")
                self.assertIn("no pipeline named 'nope'", r.json()["error"]["message"])
                self.assertEqual(self.control(gw, "sinks", "raw", "stop").status, 404)  # a pipeline's name
                self.assertEqual(self.control(gw, "rules", "raw", "stop").status, 404)
                self.assertEqual(self.control(gw, "pipelines", "raw", "pause").status, 404)
                self.assertEqual(gw.admin("GET", "/edge/pipelines/raw/stop", token=TOKEN).status, 405)
                self.assertEqual(self.control(gw, "pipelines", "raw", "stop", token=None).status, 401)
                self.assertEqual(self.control(gw, "pipelines", "raw", "stop", token="wrong").status, 401)
                self.assertFalse(self.edge(gw)["pipelines"][0]["stopped"])

    def test_shutdown_does_not_wait_for_a_stopped_sink(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.assertEqual(self.control(gw, "sinks", "uplink", "stop").status, 200)
                self.send(gw, range(3))
                self.assertTrue(wait_until(lambda: self.edge(gw)["sinks"][0]["queued_records"] == 3, timeout=5))
                t0 = time.monotonic()
                self.assertEqual(gw.stop(timeout=10), 0)
                self.assertLess(time.monotonic() - t0, 0.9)  # the drain waits up to 1 s for sinks that deliver
                self.assertIn("sink 'uplink' had 3 records not delivered at shutdown", gw.log_text())
            self.assertEqual(rx.records(), [])

    def test_a_stopped_pipeline_closes_its_windows_at_shutdown_and_its_rules_do_not_act(self):
        windowed = """  - name: win
    from: [ lab ]
    stages:
      - window: { tumbling: 1h, by: [device, metric], aggregates: [count] }
    to: [ uplink ]
rules:
  - name: every-window
    when: "count > 0"
    actions:
      - forward: { to: alarms }
"""
        with Receiver() as rx, Receiver() as alarms:
            text, port, admin = config(rx.port, pipelines=windowed)
            sink = ("  - name: alarms\n    kind: http\n    url: http://%s:%d/alarms\n"
                    "    batch: { max_records: 10, max_delay: 50ms }\n" % (LOCALHOST, alarms.port))
            text = text.replace("pipelines:\n", sink + "pipelines:\n", 1)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.send(gw, [1, 2, 3])
                self.assertTrue(wait_until(lambda: self.edge(gw)["pipelines"][0]["readings_in"] == 3, timeout=5))
                self.assertEqual(self.control(gw, "pipelines", "win", "stop").status, 200)
                self.assertEqual(gw.stop(timeout=10), 0)
                log = gw.log_text()
            recs = rx.records()
            self.assertEqual([(r["kind"], r["count"]) for r in recs], [("window", 3)], log)  # the data goes on
            self.assertEqual(alarms.records(), [])  # the rule does not act while stopped

    def test_a_stopped_pipeline_without_an_ingest_log_runs_what_it_holds_at_shutdown(self):
        # Acknowledged (202) and held in memory: they reach the sink rather than die with the process.
        with Receiver() as rx:
            text, port, admin = config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.assertEqual(self.control(gw, "pipelines", "raw", "stop").status, 200)
                self.send(gw, range(5))
                self.assertTrue(wait_until(lambda: self.edge(gw)["pipelines"][0]["waiting"] == 5, timeout=5))
                self.assertEqual(gw.stop(timeout=10), 0)
            self.assertEqual([r["value"] for r in rx.records()], list(range(5)))

    def test_what_was_stopped_stays_stopped_across_a_restart_until_started(self):
        data = tempfile.mkdtemp(prefix="ganglion-stop-")
        try:
            with Receiver() as rx:
                text, port, admin = config(rx.port)
                text += "edge: { data_dir: %s }\n" % data
                with Gateway(text, admin_port=admin) as gw:
                    self.assertEqual(self.control(gw, "sinks", "uplink", "stop").status, 200)
                    self.assertEqual(self.control(gw, "connectors", "lab", "stop").status, 200)
                self.assertTrue(os.path.exists(os.path.join(data, "stopped.state")))
                with Gateway(text, admin_port=admin) as gw:
                    e = self.edge(gw)
                    self.assertTrue(e["sinks"][0]["stopped"])
                    self.assertTrue(e["connectors"][0]["stopped"])
                    self.assertFalse(e["pipelines"][0]["stopped"])
                    self.assertIn("sink 'uplink' stays stopped", gw.log_text())
                    self.assertEqual(post(gw, "/ingest/pump-1", json.dumps({"value": 1})).status, 503)
                    self.assertEqual(self.control(gw, "connectors", "lab", "start").status, 200)
                    self.assertEqual(self.control(gw, "sinks", "uplink", "start").status, 200)
                    self.assertEqual(post(gw, "/ingest/pump-1", json.dumps({"value": 1})).status, 202)
                    self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                self.assertFalse(os.path.exists(os.path.join(data, "stopped.state")))  # nothing stopped
                # A damaged file stops nothing, and says so.
                with open(os.path.join(data, "stopped.state"), "wb") as f:
                    f.write(b"GNGLSTA1 not a state file")
                with Gateway(text, admin_port=admin) as gw:
                    self.assertFalse(self.edge(gw)["sinks"][0]["stopped"])
                    self.assertIn("stopped.state not used, nothing stays stopped", gw.log_text())
        finally:
            shutil.rmtree(data, ignore_errors=True)


class ConfigErrors(unittest.TestCase):
    def check(self, text):
        return check_config(text)

    def test_a_data_dir_that_is_a_file_is_warned_of(self):
        # Outsider finding: check said "config ok", and serve then refused every reading.
        with tempfile.NamedTemporaryFile() as f:
            text, _, _ = config(free_port())
            code, out = self.check(text + "edge: { data_dir: %s }\n" % f.name)
            self.assertEqual(code, 0, out)
            self.assertIn("warning: edge.data_dir %s is not a directory" % f.name, out)
            self.assertIn("config ok", out)

    def test_errors_name_the_line_and_column(self):
        text, _, _ = config(free_port())
        bad = text.replace('"value > -1000 and value < 1000"', '"value > -1000 and valu < 1000"')
        code, out = self.check(bad)
        self.assertNotEqual(code, 0)
        line = bad.split("\n").index('      - filter: "value > -1000 and valu < 1000"') + 1
        self.assertIn(":%d: pipeline 'raw': stages[0].filter: 1:19: unknown field 'valu'" % line, out)

    def test_unbuilt_kinds_and_references(self):
        text, _, _ = config(free_port())
        code, out = self.check(text.replace("kind: http, metric", "kind: opcua, metric"))
        self.assertIn("connector kind 'opcua' is not available", out)
        self.assertNotIn("unknown connector", out)  # one mistake, one message
        self.assertIn("1 error(s)", out)
        code, out = self.check(text.replace("kind: http, metric", "kind: coap, listen: '127.0.0.1:5999', metric"))
        self.assertIn("route 'ingest' ingests for connector 'lab', which is not of kind http", out)
        code, out = self.check(text.replace("to: [ uplink ]", "to: [ nowhere ]"))
        self.assertIn("pipeline 'raw' sends to unknown sink 'nowhere'", out)
        code, out = self.check(text.replace("ingest: lab\n    filters", "ingest: lob\n    filters"))
        self.assertIn("route 'ingest' ingests for unknown connector 'lob'", out)
        code, out = self.check(text.replace("from: [ lab ]", "from: [ ]"))
        self.assertIn("from lists at least one connector", out)
        code, out = self.check(text.replace("retry: {", "queue: { durable: true }\n    retry: {"))
        self.assertEqual(code, 0, out)
        code, out = self.check(text + "rules:\n  - { name: r, when: \"value > 1\", actions: [ { write: {} } ] }\n")
        self.assertIn("write needs a 'connector'", out)
        self.assertNotIn("unknown connector", out)
        code, out = self.check(text + "rules:\n  - { name: r, when: \"value > 1\", actions: [ { webhook: {} } ] }\n")
        self.assertIn("webhook needs a 'url'", out)
        code, out = self.check(text.replace("kind: http, metric", "kind: opcua, metric"))
        self.assertIn("connector kind 'opcua' is not available: no OPC UA client library", out)
        code, out = self.check(text.replace("- filter: ", "- join: "))
        self.assertIn("join is a map: { on: temperature", out)
        code, out = self.check(text.replace("- filter: ", "- pivot: "))
        self.assertIn("unknown stage 'pivot' (built: filter, map,", out)
        code, out = self.check(text.replace("url: http://", "url: ftp://"))
        self.assertIn("must use http or https", out)
        code, out = self.check(text.replace("retry: {", "queue: { max_bytes: 1GiB }\n    retry: {"))
        self.assertEqual(code, 0, out)
        code, out = self.check(text.replace("- name: raw", '- name: ""'))
        self.assertIn("a pipeline's name must not be empty", out)
        code, out = self.check(text.replace("- { name: lab,", '- { name: "",'))
        self.assertIn("a connector's name must not be empty", out)
        code, out = self.check(text.replace("- name: uplink", '- name: ""'))
        self.assertIn("a sink's name must not be empty", out)

    def test_dot_names_are_refused_for_what_the_admin_api_addresses(self):
        # POST /edge/sinks/../stop is folded to /edge/stop by clients and proxies: a part named
        # '.' or '..' could never be stopped or started, so the config refuses the name.
        text, _, _ = config(free_port())
        for name in (".", ".."):
            code, out = self.check(text.replace("- name: raw", "- name: '%s'" % name))
            self.assertNotEqual(code, 0)
            self.assertIn("a pipeline cannot be named '%s'" % name, out)
            code, out = self.check(text.replace("- { name: lab,", "- { name: '%s'," % name))
            self.assertIn("a connector cannot be named '%s'" % name, out)
            code, out = self.check(text.replace("- name: uplink", "- name: '%s'" % name))
            self.assertIn("a sink cannot be named '%s'" % name, out)
        code, out = self.check(text.replace("- name: raw", "- name: '...'"))
        self.assertEqual(code, 0, out)  # three dots are a segment like any other
        code, out = self.check(text.replace("- name: uplink", "- name: '%s'" % ("s" * 257)))
        self.assertIn("a sink name is at most 256 bytes (this one has 257)", out)
        code, out = self.check(text.replace("- name: raw", "- name: '%s'" % ("p" * 256)))
        self.assertEqual(code, 0, out)

    def test_one_error_does_not_hide_another(self):
        # A wrong connector (or a `from` naming none) must not keep the stages from being
        # checked, nor a webhook's bad header its bad url, nor a wrong action the rule's when.
        text, _, _ = config(free_port())
        bad = text.replace("kind: http, metric", "kind: http, colour: red, metric")
        bad = bad.replace('"value > -1000 and value < 1000"', '"value > > 3"')
        bad += ("rules:\n  - name: r\n    when: \"value > > 6\"\n    actions:\n"
                "      - webhook: { url: \"ftp://x/y\", headers: { \"Bad Header\": \"x\" } }\n")
        code, out = self.check(bad)
        self.assertNotEqual(code, 0)
        lines = bad.split("\n")
        at = lambda needle: next(i for i, l in enumerate(lines) if needle in l) + 1  # noqa: E731
        self.assertIn(":%d: unknown field 'colour' in connector" % at("colour: red"), out)
        self.assertIn(":%d: pipeline 'raw': stages[0].filter: 1:9: expected a value, found '>'"
                      % at('- filter: "value > > 3"'), out)
        self.assertIn(":%d: 'Bad Header' is not a valid header name" % at("Bad Header"), out)
        self.assertIn(":%d: url 'ftp://x/y' must use http or https" % at("Bad Header"), out)
        self.assertIn(":%d: rule 'r': when: 1:9: expected a value, found '>'" % at('when: "value > > 6"'), out)
        self.assertIn("5 error(s)", out)
        # A pipeline reading an unknown connector: the stages are still checked, and each
        # mistake is said once.
        code, out = self.check(text.replace("from: [ lab ]", "from: [ lob ]").replace(
            '"value > -1000 and value < 1000"', '"valu > 1"'))
        self.assertIn("pipeline 'raw' reads unknown connector 'lob'", out)
        self.assertIn("stages[0].filter: 1:1: unknown field 'valu'", out)
        self.assertIn("2 error(s)", out)
        # Every failing stage of a pipeline is said, and a wrong fft does not make the detector
        # after it wrong too (its bands still count).
        stages = """  - name: health
    from: [ lab ]
    stages:
      - filter: "valu > 1"
      - fft: { size: 100, sample_rate: 1000, bands: [[10, 100]] }
      - detect: { name: d, field: band_1, history: 10, warmup: 50 }
      - detect: { name: e, method: nope, field: band_1 }
    to: [ uplink ]
"""
        code, out = self.check(config(free_port(), pipelines=stages)[0])
        self.assertIn("stages[0].filter: 1:1: unknown field 'valu'", out)
        self.assertIn("stages[1].fft: size is a power of two", out)
        self.assertIn("stages[2].detect: warmup (50) must not exceed history (10)", out)
        self.assertIn("stages[3].detect: unknown method 'nope'", out)
        self.assertNotIn("no number field", out)
        self.assertIn("4 error(s)", out)
        # A part refused for its own mistake does not hide a second part of its name.
        dup = text.replace("  - { name: lab, kind: http, metric: temperature }\n",
                           "  - { name: lab, kind: http, metric: temperature, colour: red }\n"
                           "  - { name: lab, kind: http, metric: temperature }\n")
        dup = dup.replace(RAW, RAW.replace('"value > -1000 and value < 1000"', '"valu > 1"') + RAW)
        dup += ("rules:\n  - { name: r, when: \"valu > 1\", actions: [ { forward: uplink } ] }\n"
                "  - { name: r, when: \"value > 1\", actions: [ { forward: uplink } ] }\n")
        code, out = self.check(dup)
        self.assertIn("duplicate connector name 'lab'", out)
        self.assertIn("duplicate pipeline name 'raw'", out)
        self.assertIn("duplicate rule name 'r'", out)
        self.assertIn("6 error(s)", out)


if __name__ == "__main__":
    unittest.main()
