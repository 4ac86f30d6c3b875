"""Report-by-exception and reshaping stages (docs/edge.md "Stages"): map, deadband,
change_only, dedup, downsample, hopping and session windows, and the ewma, trend and seasonal
detectors in a running gateway, readings POSTed to an `ingest:` route,
records checked at a real HTTP receiver; their counters on GET /edge and /metrics; their
config errors with file and line; dedup's memory across a restart."""

import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, Receiver, check_config, free_port, http_request, wait_until  # noqa: E402
from test_edge import TOKEN, config, post  # noqa: E402

STAGES = """  - name: shaped
    from: [ lab ]
    stages:
      - map: { when: "attrs.u == 'F'", value: "(value - 32) / 1.8", metric: temp_c, unit: degC,
               set: { raw: "value", hot: "value > 200" } }
      - dedup: { remember: 8 }
      - deadband: { absolute: 0.5, heartbeat: 1m }
    to: [ uplink ]
"""

SAMPLED = """  - name: sampled
    from: [ lab ]
    stages:
      - change_only: {}
      - downsample: { every: 1s }
    to: [ uplink ]
"""


def readings(gw, device, items):
    r = post(gw, "/ingest/" + device, json.dumps(items))
    assert r.status == 202, (r.status, r.body)


def stages(gw):
    return gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]["stages"]


class Stages(unittest.TestCase):
    def test_map_dedup_and_deadband_in_order(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=STAGES)
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time()) * 1000
                readings(gw, "oven", [
                    {"value": 212, "ts": t0, "u": "F"},        # 100 degC, first: passes
                    {"value": 212, "ts": t0, "u": "F"},        # the same reading again: a duplicate
                    {"value": 212.5, "ts": t0 + 1, "u": "F"},  # 100.28: inside the 0.5 band
                    {"value": 214, "ts": t0 + 2, "u": "F"},    # 101.1: passes
                    {"value": 40, "ts": t0 + 3},               # no unit attribute: not mapped
                ])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 3, timeout=5), rx.records())
                got = rx.records()
                self.assertEqual([r["metric"] for r in got], ["temp_c", "temp_c", "temperature"])
                self.assertAlmostEqual(got[0]["value"], 100)
                self.assertAlmostEqual(got[1]["value"], 101.1111111, places=5)
                self.assertEqual(got[0]["attrs"], {"u": "F", "unit": "degC", "raw": 212, "hot": 1})
                self.assertEqual(got[2]["value"], 40)
                s = stages(gw)
                self.assertEqual([x["kind"] for x in s], ["map", "dedup", "deadband"])
                self.assertEqual(s[1]["duplicates"], 1)
                self.assertEqual(s[2]["suppressed"], 1)
                metrics = http_request(admin, "GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN}).body
                self.assertIn(b'ganglion_edge_pipeline_dropped_total{pipeline="shaped",reason="duplicate"} 1',
                              metrics)
                self.assertIn(b'ganglion_edge_pipeline_dropped_total{pipeline="shaped",reason="suppressed"} 1',
                              metrics)
                shown = gw.admin("GET", "/config", token=TOKEN).json()["pipelines"][0]["stages"]
                self.assertEqual(shown[1], {"dedup": {"remember": 8}})
                self.assertEqual(shown[2], {"deadband": {"absolute": 0.5, "heartbeat": "60000ms"}})

    def test_change_only_then_downsample(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=SAMPLED)
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time()) * 1000
                values = [1, 1, 2, 2, 3, 4, 4]
                readings(gw, "valve", [{"value": v, "ts": t0 + 300 * i} for i, v in enumerate(values)])
                # change_only keeps 1 (0 ms), 2 (600), 3 (1200), 4 (1500); one per second: 1, 3.
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5), rx.records())
                self.assertEqual([r["value"] for r in rx.records()], [1, 3])
                s = stages(gw)
                self.assertEqual((s[0]["kind"], s[0]["suppressed"]), ("change_only", 3))
                self.assertEqual((s[1]["kind"], s[1]["suppressed"]), ("downsample", 2))

    def test_dedup_remembers_across_a_restart(self):
        # A reading delivered again after a restart (a broker's redelivery) is still a duplicate:
        # what dedup remembers is saved with the pipeline's state.
        data = tempfile.mkdtemp(prefix="ganglion-dedup-")
        pipelines = STAGES.replace("      - deadband: { absolute: 0.5, heartbeat: 1m }\n", "")
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=pipelines)
            text += "edge: { data_dir: %s }\n" % data
            t0 = int(time.time()) * 1000
            batch = [{"value": 10 + i, "ts": t0 + i} for i in range(5)]
            gw = Gateway(text, admin_port=admin)
            with gw:
                readings(gw, "pump", batch)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 5, timeout=5))
                gw.stop()  # a clean stop saves the state
            with Gateway(text, admin_port=admin) as gw2:
                readings(gw2, "pump", batch[3:] + [{"value": 99, "ts": t0 + 99}])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 6, timeout=5), rx.records())
                self.assertEqual(rx.records()[-1]["value"], 99)
                self.assertTrue(wait_until(lambda: stages(gw2)[1]["duplicates"] == 2, timeout=5), stages(gw2))


WINDOWS = """  - name: windows
    from: [ lab ]
    stages:
      - window: { hopping: 2s, hop: 1s, aggregates: [count, p50] }
    to: [ uplink ]
  - name: sessions
    from: [ lab ]
    stages:
      - window: { session: 2s, aggregates: [count, max] }
    to: [ uplink ]
"""


class Windows(unittest.TestCase):
    def test_hopping_and_session_windows(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=WINDOWS)
            with Gateway(text, admin_port=admin) as gw:
                t0 = (int(time.time()) - 60) * 1000
                # Three readings, then a pause of more than a gap, then one more.
                readings(gw, "m", [{"value": v, "ts": t0 + dt} for v, dt in ((1, 0), (2, 400), (9, 1500),
                                                                          (4, 5000))])
                def done():
                    got = [r for r in rx.records() if r["kind"] == "window"]
                    return len([r for r in got if "p50" in r]) >= 4 and len([r for r in got if "max" in r]) >= 1
                self.assertTrue(wait_until(done, timeout=5), rx.records())
                got = [r for r in rx.records() if r["kind"] == "window"]
                hop = sorted((r["ts"] - t0, r["count"], r["p50"]) for r in got if "p50" in r)
                self.assertEqual(hop[:4], [(-1000, 2, 1.5), (0, 3, 2), (1000, 1, 9), (4000, 1, 4)])
                session = [r for r in got if "max" in r][0]
                self.assertEqual((session["ts"], session["count"], session["max"], session["window_ms"]),
                                 (t0, 3, 9, 3500))
                shown = gw.admin("GET", "/config", token=TOKEN).json()["pipelines"]
                self.assertEqual(shown[0]["stages"][0]["window"]["hop"], "1000ms")
                self.assertEqual(shown[1]["stages"][0]["window"]["max_length"], "3600000ms")


DETECTORS = """  - name: watch
    from: [ lab ]
    stages:
      - detect: { name: shift, method: ewma, history: 60, warmup: 20 }
      - detect: { name: wear, method: trend, limit: 50, horizon: 2h, history: 10 }
      - detect: { name: hourly, method: seasonal, season: week, utc_offset: "+01:00", warmup: 5 }
    to: [ uplink ]
"""


class Detectors(unittest.TestCase):
    def test_ewma_and_trend_events(self):
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=DETECTORS)
            with Gateway(text, admin_port=admin) as gw:
                t0 = (int(time.time()) - 3600) * 1000
                # 40 steady readings a minute apart, then a steady climb of 1 a minute from 10.
                steady = [{"value": 10 + (0.1 if i % 2 else -0.1), "ts": t0 + i * 60000} for i in range(40)]
                climb = [{"value": 10 + i, "ts": t0 + (40 + i) * 60000} for i in range(1, 16)]
                readings(gw, "press", steady + climb)
                def events(name):
                    return [r for r in rx.records() if r["kind"] == "event" and r.get("detector") == name]
                self.assertTrue(wait_until(lambda: events("shift") and events("wear"), timeout=5),
                                [r for r in rx.records() if r["kind"] == "event"])
                shift = events("shift")[0]
                self.assertIn("control deviations above the baseline", shift["reason"])
                wear = events("wear")
                # Rising 1 a minute from 25: 50 is reached in 25 minutes, inside the 2 h horizon.
                last = wear[-1]
                self.assertAlmostEqual(last["rul_s"], 25 * 60, delta=60)
                self.assertIn("rising", last["reason"])
                self.assertIn("reaches 50", last["reason"])
                shown = gw.admin("GET", "/config", token=TOKEN).json()["pipelines"][0]["stages"]
                self.assertEqual(shown[0]["detect"]["threshold"], 3)
                self.assertEqual(shown[1]["detect"]["threshold"], 1)
                self.assertEqual(shown[1]["detect"]["horizon"], "7200000ms")
                self.assertEqual(shown[2]["detect"]["utc_offset"], "+01:00")


SPECTRUM = """  - name: spectrum
    from: [ lab ]
    stages:
      - fft: { size: 256, sample_rate: 1000, bands: [ [ 20, 100 ], [ 100, 300 ] ], metric: vib }
      - detect: { name: bearing, method: robust_zscore, field: band_2, history: 8, warmup: 4 }
    to: [ uplink ]
"""


class Spectrum(unittest.TestCase):
    def test_band_energies_reach_the_sink_and_a_detector(self):
        # Vibration sampled at 1 kHz: a 50 Hz hum; from block 6 a 200 Hz bearing tone joins it.
        import math
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=SPECTRUM)
            with Gateway(text, admin_port=admin) as gw:
                t0 = (int(time.time()) - 60) * 1000
                samples = []
                for i in range(256 * 8):
                    v = 1.5 * math.sin(2 * math.pi * 50 * i / 1000)
                    if i >= 256 * 6:
                        v += 0.8 * math.sin(2 * math.pi * 200 * i / 1000)
                    samples.append({"value": round(v, 6), "ts": t0 + i})
                for k in range(0, len(samples), 500):
                    readings(gw, "pump?metric=vib", samples[k:k + 500])
                def windows():
                    return [r for r in rx.records() if r["kind"] == "window"]
                self.assertTrue(wait_until(lambda: len(windows()) == 8, timeout=5), rx.records()[-3:])
                self.assertEqual([r for r in rx.records() if r["kind"] == "reading"], [])  # consumed
                first, last = windows()[0], windows()[7]
                self.assertEqual((first["ts"], first["count"], first["window_ms"]), (t0, 256, 256))
                self.assertAlmostEqual(first["band_1"], 1.5 / math.sqrt(2), delta=0.05)
                self.assertLess(first["band_2"], 0.05)
                self.assertAlmostEqual(first["peak_hz"], 50, delta=4)
                self.assertAlmostEqual(last["band_2"], 0.8 / math.sqrt(2), delta=0.05)
                self.assertAlmostEqual(last["peak_hz"], 50, delta=4)
                self.assertTrue(wait_until(
                    lambda: any(r.get("detector") == "bearing" for r in rx.records()), timeout=5))
                event = [r for r in rx.records() if r.get("detector") == "bearing"][0]
                self.assertEqual(event["ts"], t0 + 256 * 6)
                self.assertIn("band_2", event["reason"])
                shown = gw.admin("GET", "/config", token=TOKEN).json()["pipelines"][0]["stages"][0]["fft"]
                self.assertEqual(shown, {"size": 256, "sample_rate": 1000, "bands": [[20, 100], [100, 300]],
                                         "metric": "vib"})
                # A partial block, then a reload that changes the pipeline: the readings it leaves
                # out stay counted (the old version's stage counters go with it).
                readings(gw, "pump?metric=vib", [{"value": 1, "ts": t0 + 256 * 8 + i} for i in range(100)])
                self.assertTrue(wait_until(lambda: stages(gw)[0]["in"] == 256 * 8 + 100, timeout=5), stages(gw))
                gw.reload_file(text.replace("history: 8,", "history: 9,"))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                pipeline = gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]
                self.assertEqual((pipeline["left_at_reload"], pipeline["stages"][0]["suppressed"]), (100, 0))
                metrics = http_request(admin, "GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN}).body
                self.assertIn(b'ganglion_edge_pipeline_dropped_total{pipeline="spectrum",reason="reload"} 100',
                              metrics)


MULTIVARIATE = """  - name: pumps
    from: [ lab ]
    stages:
      - window: { tumbling: 1s, by: [ device ], aggregates: [ min, max ] }
      - detect: { name: relation, method: hst, fields: [ min, max ], history: 256 }
    to: [ uplink ]
"""


class HalfSpaceTrees(unittest.TestCase):
    def test_a_broken_relation_is_found_and_the_trees_survive_a_restart(self):
        # Each 1 s window's max is twice its min (the relation), min anywhere from 10 to 20. A
        # window of min 18, max 22 has each feature inside its range, not the relation.
        data = tempfile.mkdtemp(prefix="ganglion-hst-")
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=MULTIVARIATE)
            text += "edge: { data_dir: %s }\n" % data
            t0 = (int(time.time()) - 7200) * 1000
            def window(i, low, high):
                return [{"value": low, "ts": t0 + i * 1000}, {"value": high, "ts": t0 + i * 1000 + 500}]
            def events():
                return [r for r in rx.records() if r["kind"] == "event"]
            normal = []
            for i in range(300):
                low = 10 + (i * 7919 % 1000) / 100.0
                normal += window(i, low, 2 * low)
            gw = Gateway(text, admin_port=admin)
            with gw:
                readings(gw, "pump", normal + window(300, 18, 22) + window(301, 12, 24) + window(302, 12, 24))
                self.assertTrue(wait_until(lambda: any(r["ts"] == t0 + 300_000 for r in events()), timeout=5),
                                events())
                found = [r for r in events() if r["ts"] == t0 + 300_000][0]
                self.assertEqual((found["detector"], found["min"], found["max"]), ("relation", 18, 22))
                self.assertIn("min 18, max 22: ", found["reason"])
                self.assertIn("less dense than usual", found["reason"])
                self.assertGreaterEqual(found["score"], 7)
                self.assertLessEqual(len(events()), 4, events())  # the normal windows raise (almost) nothing
                shown = gw.admin("GET", "/config", token=TOKEN).json()["pipelines"][0]["stages"][1]["detect"]
                self.assertEqual((shown["fields"], shown["trees"], shown["depth"], shown["threshold"]),
                                 (["min", "max"], 16, 10, 7))
                gw.stop()  # a clean stop saves the trees' counts
            before = len(events())
            with Gateway(text, admin_port=admin) as gw2:
                # Judged at once, with no second warm-up of 256 windows.
                readings(gw2, "pump", window(400, 19, 21) + window(401, 12, 24))
                self.assertTrue(wait_until(lambda: len(events()) > before, timeout=5), events())
                self.assertEqual(events()[-1]["ts"], t0 + 400_000)


HOOKED = """  - name: hooked
    from: [ lab ]
    to: [ uplink ]
rules:
  - name: hot
    when: "value > 100"
    actions:
      - webhook: { url: "http://127.0.0.1:@HOOK@/hook?sig=secret-query", headers: { authorization: "Bearer hook-secret-token" },
                   timeout: 1s, retries: 2 }
"""


class Webhooks(unittest.TestCase):
    def rule(self, gw):
        return gw.admin("GET", "/edge", token=TOKEN).json()["rules"][0]

    def test_each_firing_posts_the_record_and_failures_are_retried_then_counted(self):
        with Receiver() as rx, Receiver() as hook:
            text, port, admin = config(rx.port, pipelines=HOOKED.replace("@HOOK@", str(hook.port)))
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time()) * 1000
                readings(gw, "boiler", [{"value": 50, "ts": t0}, {"value": 150, "ts": t0 + 1}])
                self.assertTrue(wait_until(lambda: len(hook.batches) == 1, timeout=5), self.rule(gw))
                record = hook.batches[0]
                self.assertEqual((record["device"], record["value"], record["kind"]), ("boiler", 150, "reading"))
                self.assertEqual(hook.headers[0]["authorization"], "Bearer hook-secret-token")
                self.assertEqual(hook.headers[0]["Content-Type"], "application/json")
                self.assertEqual([k for k in hook.headers[0] if k.lower() == "content-type"], ["Content-Type"])  # once
                self.assertTrue(wait_until(lambda: self.rule(gw)["webhooks"] == 1, timeout=5))
                # Failing: the first call and two retries, then a failed action that names no secret.
                hook.status = 500
                readings(gw, "boiler", [{"value": 160, "ts": t0 + 2}])
                self.assertTrue(wait_until(lambda: self.rule(gw)["failed_actions"] == 1, timeout=10), self.rule(gw))
                self.assertEqual(hook.attempts, 4)
                error = self.rule(gw)["last_error"]
                self.assertIn("failed after 3 call(s): it answered 500", error)
                self.assertNotIn("secret", error)
                # Back up: the next firing is delivered.
                hook.status = 200
                readings(gw, "boiler", [{"value": 170, "ts": t0 + 3}])
                self.assertTrue(wait_until(lambda: self.rule(gw)["webhooks"] == 2, timeout=5))
                shown = json.dumps(gw.admin("GET", "/config", token=TOKEN).json()["rules"])
                self.assertIn("<redacted>", shown)
                self.assertNotIn("hook-secret-token", shown)
                self.assertNotIn("secret-query", shown)  # the URL's query values too
                self.assertIn("/hook?sig=<redacted>", shown)
                self.assertNotIn("hook-secret-token", gw.log_text())
                self.assertNotIn("secret-query", gw.log_text())

    def test_a_webhook_that_does_not_answer_times_out(self):
        import socket
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections, never answers
        try:
            with Receiver() as rx:
                text, port, admin = config(rx.port, pipelines=HOOKED.replace("@HOOK@", str(silent.getsockname()[1])))
                with Gateway(text, admin_port=admin) as gw:
                    readings(gw, "boiler", [{"value": 150, "ts": int(time.time()) * 1000}])
                    self.assertTrue(wait_until(lambda: self.rule(gw)["failed_actions"] == 1, timeout=10),
                                    self.rule(gw))
                    # The pipeline ran on meanwhile: the record reached the sink at once.
                    self.assertEqual(len(rx.records()), 1)
        finally:
            silent.close()


    def test_a_reload_does_not_open_a_fresh_allowance_while_calls_hang(self):
        # Each reload started another 64 calls while the old ones still hung: connections (and
        # file descriptors) piled up until the gateway could not accept any.
        import socket
        import threading
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(1024)
        held = []
        def accept():
            while True:
                try:
                    held.append(hole.accept()[0])
                except OSError:
                    return
        threading.Thread(target=accept, daemon=True).start()
        try:
            with Receiver() as rx:
                hooked = HOOKED.replace("@HOOK@", str(hole.getsockname()[1])).replace(
                    "timeout: 1s, retries: 2", "timeout: 60s, retries: 0")
                text, port, admin = config(rx.port, pipelines=hooked)
                with Gateway(text, admin_port=admin) as gw:
                    now = int(time.time()) * 1000
                    for round in range(3):
                        if round:
                            gw.reload_file(text + "# round %d\n" % round)
                            self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                        readings(gw, "boiler", [{"value": 150, "ts": now + round * 1000 + i} for i in range(100)])
                        self.assertTrue(wait_until(lambda: self.rule(gw)["failed_actions"] == 100 * round + 36,
                                                   timeout=10), self.rule(gw))
                    time.sleep(0.5)
                    self.assertEqual(len(held), 64)
                    self.assertIn("more than 64 calls wait for webhook http://127.0.0.1:", self.rule(gw)["last_error"])
                    self.assertNotIn("secret-query", self.rule(gw)["last_error"])
        finally:
            hole.close()
            for c in held:
                c.close()


class WindowIds(unittest.TestCase):
    def test_a_changed_pipeline_gives_its_windows_other_ids(self):
        # The reload closes the open window early; the successor's window of the same interval
        # holds the rest of its readings: two partial windows, two ids.
        pipelines = """  - name: w
    from: [ lab ]
    stages:
      - window: { tumbling: 1s, aggregates: [count] }
    to: [ uplink ]
"""
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=pipelines)
            with Gateway(text, admin_port=admin) as gw:
                t0 = (int(time.time()) - 30) * 1000
                readings(gw, "m", [{"value": 1, "ts": t0 + i} for i in range(5)])
                gw.reload_file(text.replace("aggregates: [count]", "aggregates: [count, max]"))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                readings(gw, "m", [{"value": 1, "ts": t0 + 5 + i} for i in range(3)])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5))
                first, second = rx.records()
                self.assertEqual((first["ts"], first["count"]), (t0, 5))
                self.assertEqual((second["ts"], second["count"]), (t0, 3))
                self.assertNotEqual(first["id"], second["id"])
                self.assertRegex(first["id"], r"^w\.stages\[0\]\.window@[0-9a-f]{8}/.*/%d-[0-9]+$" % t0)
                # Back to the first settings, still within the interval: a third partial window
                # of the same start under the first generation, which a receiver de-duplicating
                # on ids (tsdb) must not take for the first one.
                gw.reload_file(text)
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                readings(gw, "m", [{"value": 1, "ts": t0 + 8 + i} for i in range(2)])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 3, timeout=5))  # wall-clock close
                third = rx.records()[2]
                self.assertEqual((third["ts"], third["count"]), (t0, 2))
                self.assertEqual(third["id"].split("/")[0], first["id"].split("/")[0])  # the same generation
                self.assertEqual(len({first["id"], second["id"], third["id"]}), 3)


FORGETFUL = """  - name: forgetful
    from: [ lab ]
    max_series: 20
    forget_idle: 1s
    stages:
      - dedup: {}
      - window: { tumbling: 1s, aggregates: [count] }
    to: [ uplink ]
"""


class ForgettingSeries(unittest.TestCase):
    def test_a_flood_of_invented_devices_is_forgotten_and_the_real_device_is_taken(self):
        """docs/edge.md "Forgetting idle series": ten invented devices fill max_series (each
        reading's series and its window group's), the real device is refused; once the flood
        has been idle for forget_idle, it is forgotten and the real device's readings go
        through, with what dedup and the window kept for the flood gone."""
        data = tempfile.mkdtemp(prefix="ganglion-forget-")
        with Receiver() as rx:
            text, port, admin = config(rx.port, pipelines=FORGETFUL)
            text += "edge: { data_dir: %s, state_every: 100ms }\n" % data
            gw = Gateway(text, admin_port=admin)
            with gw:
                def pipeline(g=gw):
                    return g.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]
                t0 = int(time.time()) * 1000
                # One payload (line protocol names a device per line), the real device's right
                # after it: a sweep needs the flood idle for a second.
                lines = "".join("temperature,device=bogus-%d value=1 %d\n" % (i, t0 * 1_000_000) for i in range(10))
                r = post(gw, "/ingest/x", lines, content_type="text/plain")
                self.assertEqual(r.status, 202, r.body)
                readings(gw, "real", [{"value": 1, "ts": t0}])
                self.assertTrue(wait_until(lambda: pipeline()["series_refused"] == 1, timeout=5), pipeline())
                self.assertEqual(pipeline()["series"], 20)
                self.assertTrue(wait_until(lambda: pipeline()["series_forgotten"] == 20, timeout=10), pipeline())
                self.assertEqual(pipeline()["series"], 0)
                self.assertIn("forgot 20 series idle for 1 s or more", gw.log_text())
                metrics = http_request(admin, "GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN}).body
                self.assertIn(b'ganglion_edge_pipeline_series_forgotten_total{pipeline="forgetful"} 20', metrics)
                self.assertIn(b'ganglion_edge_pipeline_series{pipeline="forgetful"} 0', metrics)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 10, timeout=5), rx.records())
                self.assertEqual(sorted(r["device"] for r in rx.records()), ["bogus-%d" % i for i in range(10)])
                # The same (ts, value) a bogus device sent: dedup forgot it with the flood.
                readings(gw, "real", [{"value": 1, "ts": t0}, {"value": 3, "ts": t0 + 10}])
                self.assertTrue(wait_until(lambda: any(r["device"] == "real" for r in rx.records()), timeout=5),
                                rx.records())
                real = [r for r in rx.records() if r["device"] == "real"]
                self.assertEqual([(r["count"], r["ts"]) for r in real], [(2, t0)])
                self.assertEqual(pipeline()["series_refused"], 1)
                # A second flood (9 devices and their groups, with the real device's 2 series: 20),
                # saved (state_every) before it is forgotten with the real device:
                # the save after the sweep leaves them all out, so a restart does not bring them back.
                lines = "".join("temperature,device=again-%d value=1 %d\n" % (i, t0 * 1_000_000) for i in range(9))
                self.assertEqual(post(gw, "/ingest/x", lines, content_type="text/plain").status, 202)
                self.assertTrue(wait_until(lambda: pipeline()["series_forgotten"] == 40, timeout=10), pipeline())
                time.sleep(0.5)
                gw.stop()
            with Gateway(text, admin_port=admin) as gw2:
                self.assertEqual(pipeline(gw2)["series"], 0)
                self.assertNotIn("resumes the saved state", gw2.log_text())


class StageConfigErrors(unittest.TestCase):
    def error(self, stage):
        text, _, _ = config(free_port(), pipelines=SAMPLED.replace("      - change_only: {}\n", stage))
        code, out = check_config(text)
        self.assertNotEqual(code, 0, out)
        line = text.split("\n").index(stage.rstrip("\n")) + 1
        return line, out

    def test_each_mistake_is_named_with_its_line(self):
        cases = [
            ("      - deadband: { absolute: 1, percent: 2 }\n", "a deadband has one band: absolute or percent"),
            ("      - deadband: {}\n", "a deadband has one band: absolute or percent"),
            ("      - deadband: { absolute: -1 }\n", "deadband.absolute must be a number from 0"),
            ("      - change_only: { absolute: 1 }\n", "change_only has no band"),
            ("      - downsample: { every: 1s, nth: 2 }\n", "every (above 0) or nth, one of them"),
            ("      - downsample: { nth: 0 }\n", "nth"),
            ("      - dedup: { remember: 5000 }\n", "remember"),
            ("      - map: {}\n", "a map changes something"),
            ("      - map: { value: \"device\" }\n", "stages[0].map: value: the expression gives a string"),
            ("      - map: { value: \"valu * 2\" }\n", "stages[0].map: value: 1:1: unknown field 'valu'"),
            ("      - map: { set: { \"bad name\": \"1\" } }\n", "attribute name 'bad name'"),
            ("      - map: { unit: C, set: { unit: \"'F'\" } }\n", "unit is given twice"),
            ("      - map: [ 1 ]\n", "map is a map"),
            ("      - map: { metric: \"\" }\n", "map.metric must be 1 to 256 bytes"),
            ("      - map: { metric: %s }\n" % ("m" * 300), "map.metric must be 1 to 256 bytes"),
            ("      - downsample: { every: 0s }\n", "every (above 0) or nth"),
            ("      - window: { hopping: 10s, aggregates: [count] }\n", "a hopping window needs hop"),
            ("      - window: { hopping: 10s, hop: 100ms, aggregates: [count] }\n", "a hopping window needs hop"),
            ("      - window: { tumbling: 1s, session: 1s, aggregates: [count] }\n", "a window is one of"),
            ("      - window: { aggregates: [count] }\n", "a window is one of"),
            ("      - window: { tumbling: 1s, hop: 1s, aggregates: [count] }\n", "hop belongs to hopping windows"),
            ("      - window: { session: 10s, max_length: 1s, aggregates: [count] }\n", "at least its gap"),
            ("      - window: { hopping: 2s, hop: 1s, allowed_lateness: 3s, aggregates: [count] }\n",
             "at most its length"),
            ("      - window: { tumbling: 1s, aggregates: [p42] }\n", "unknown aggregate 'p42'"),
            ("      - detect: { name: d, method: magic }\n",
             "unknown method 'magic' (known: robust_zscore, ewma, seasonal, trend, hst)"),
            ("      - detect: { name: d, method: hst }\n", "hst judges 1 to 8 features together"),
            ("      - detect: { name: d, method: hst, field: rms }\n", "list them in 'fields: [rms, p2p]'"),
            ("      - detect: { name: d, method: hst, fields: [value, value] }\n", "field 'value' is listed twice"),
            ("      - detect: { name: d, method: hst, fields: [value, rms] }\n", "no number field 'rms' reaches"),
            ("      - detect: { name: d, method: hst, fields: [value], history: 64 }\n", "256 to 4096 values"),
            ("      - detect: { name: d, method: hst, fields: [value], history: 5000 }\n", "256 to 4096 values"),
            ("      - detect: { name: d, method: hst, fields: [value], warmup: 100 }\n", "at least 256 values"),
            ("      - detect: { name: d, method: hst, fields: [value], trees: 0 }\n", "trees must be an integer from 1 to 32"),
            ("      - detect: { name: d, method: hst, fields: [value], depth: 11 }\n", "depth must be an integer from 1 to 10"),
            ("      - detect: { name: d, fields: [value] }\n", "'fields' belongs to the hst method"),
            ("      - detect: { name: d, method: ewma, trees: 3 }\n", "'trees' belongs to the hst method"),
            ("      - fft: { size: 1000, sample_rate: 1000, bands: [[1, 2]] }\n", "size is a power of two"),
            ("      - fft: { bands: [[1, 2]] }\n", "an fft needs the readings' sample_rate in Hz"),
            ("      - fft: { sample_rate: 1000 }\n", "an fft needs bands"),
            ("      - fft: { sample_rate: 1000, bands: [[1, 600]] }\n", "band 1 must be [low, high) Hz"),
            ("      - fft: { sample_rate: 1000, bands: [5] }\n", "a band is [low, high] in Hz"),
            ("      - fft: { sample_rate: 1000, bands: [[a, 2]] }\n", "band low must be a number"),
            ("      - fft: [ 1 ]\n", "fft is a map"),
            ("      - window: { tumbling: 1s, by: [device, device], aggregates: [count] }\n",
             "window.by lists 'device' twice"),
            ("      - detect: { name: d, method: trend, limit: 5 }\n", "a trend detector needs a limit and a horizon"),
            ("      - detect: { name: d, method: trend, horizon: 1h }\n", "a trend detector needs a limit"),
            ("      - detect: { name: d, method: seasonal, season: month }\n", "season is day or week"),
            ("      - detect: { name: d, method: seasonal, utc_offset: \"1:00\" }\n", "utc_offset is +HH:MM"),
            ("      - detect: { name: d, method: seasonal, utc_offset: \"+15:00\" }\n", "at most 14 hours"),
            ("      - detect: { name: d, method: ewma, lambda: 0 }\n", "lambda must be a number from"),
            ("      - detect: { name: d, method: trend, limit: 1, horizon: 0s }\n", "horizon must be above 0"),
        ]
        for stage, message in cases:
            with self.subTest(stage=stage):
                line, out = self.error(stage)
                self.assertIn(message, out)
                self.assertIn(":%d:" % line, out)

    def test_bare_forms(self):
        for stage in ("      - change_only:\n", "      - dedup:\n", "      - dedup: {}\n"):
            with self.subTest(stage=stage):
                text, _, _ = config(free_port(), pipelines=SAMPLED.replace("      - change_only: {}\n", stage))
                code, out = check_config(text)
                self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()
