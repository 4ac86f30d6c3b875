"""The `tsdb` sink (docs/edge.md "Local store (tsdb sink)"): records kept in a SQLite file in
edge.data_dir and read through the admin API, GET /edge/sinks/<name>/records, filtered by
device, metric, kind and time, in pages; a record stored once stays once when a batch is sent
again after `kill -9`; bad queries and bad settings get precise errors."""

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOCALHOST, Gateway, check_config, free_port, http_request, render, wait_until  # noqa: E402

TOKEN = "Tsdb-Adm1n-T0ken-0123456789"

CONFIG = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - { name: lab, kind: http, metric: temperature }
sinks:
  - name: local
    kind: tsdb
    retention: 720h
    batch: { max_records: 200, max_delay: 50ms }
    queue: { durable: true }
  - name: elsewhere
    kind: http
    url: http://@HOST@:9/ingest
pipelines:
  - name: raw
    from: [ lab ]
    to: [ local ]
  - name: health
    from: [ lab ]
    stages:
      - window: { tumbling: 1s, by: [device, metric], aggregates: [count, mean] }
    to: [ local ]
edge:
  data_dir: @DATA@
access_log: { enabled: false }
routes:
  - name: ingest
    match: { path_prefix: /ingest/ }
    ingest: lab
"""


class LocalStore(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="ganglion-tsdb-")

    def tearDown(self):
        if not os.environ.get("GANGLION_KEEP_TMP"):
            shutil.rmtree(self.data, ignore_errors=True)

    def config(self, port=None, admin=None):
        port, admin = port or free_port(), admin or free_port()
        return render(CONFIG, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, DATA=self.data), port, admin

    def post(self, port, device, body):
        r = http_request(port, "POST", "/ingest/" + device, body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 202, r.body)

    def records(self, gw, query=""):
        r = gw.admin("GET", "/edge/sinks/local/records" + ("?" + query if query else ""), token=TOKEN)
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def test_records_are_stored_and_read_back_by_series_time_and_page(self):
        text, port, admin = self.config()
        with Gateway(text, admin_port=admin) as gw:
            base = (int(time.time()) - 60) * 1000
            self.post(port, "p1", [{"value": i, "ts": base + i * 100} for i in range(25)])  # 2.5 s: 2 windows close
            self.post(port, "p2", [{"value": 100, "ts": base}])
            self.assertTrue(wait_until(lambda: self.records(gw, "kind=reading")["count"] == 26, timeout=5),
                            gw.admin("GET", "/edge", token=TOKEN).text)
            p1 = self.records(gw, "device=p1&kind=reading")["records"]
            self.assertEqual([r["value"] for r in p1], list(range(25)))
            self.assertEqual(p1[0]["ts"], base)
            self.assertEqual(p1[0]["source"], "lab")
            self.assertTrue(wait_until(lambda: self.records(gw, "kind=window&device=p1")["count"] >= 2, timeout=5))
            windows = self.records(gw, "kind=window&device=p1")["records"]
            self.assertEqual(windows[0]["count"], 10)
            self.assertEqual(windows[0]["ts"], base)
            # [from, to), newest first, and pages that go on where the last ended.
            got = self.records(gw, "device=p1&kind=reading&from=%d&to=%d&order=desc" % (base + 500, base + 1000))
            self.assertEqual([r["value"] for r in got["records"]], [9, 8, 7, 6, 5])
            page = self.records(gw, "device=p1&kind=reading&limit=10")
            seen = [r["value"] for r in page["records"]]
            while "next_after" in page:
                page = self.records(gw, "device=p1&kind=reading&limit=10&after=" + page["next_after"])
                seen += [r["value"] for r in page["records"]]
            self.assertEqual(seen, list(range(25)))
            # Buckets: per second, the readings' values; per minute, the windows' means.
            answer = gw.admin("GET", "/edge/sinks/local/records?device=p1&kind=reading&every=1s&from=%d" % base,
                              token=TOKEN)
            self.assertIn('"mean":4.5,"min":0,"max":9,"sum":45', answer.text)  # not 4.5E0, 0E0
            per_second = answer.json()["buckets"]
            self.assertEqual([(b["ts"] - base, b["count"], b["mean"], b["min"], b["max"]) for b in per_second],
                             [(0, 10, 4.5, 0, 9), (1000, 10, 14.5, 10, 19), (2000, 5, 22, 20, 24)])
            means = gw.admin("GET", "/edge/sinks/local/records?kind=window&device=p1&every=1h&field=mean",
                             token=TOKEN).json()
            self.assertEqual(means["count"], 1)
            self.assertEqual(means["buckets"][0]["count"], len(windows))
            st = [s for s in gw.admin("GET", "/edge", token=TOKEN).json()["sinks"] if s["name"] == "local"][0]
            self.assertEqual(st["path"], os.path.join(self.data, "tsdb", "local.sqlite"))
            self.assertTrue(os.path.exists(st["path"]))
            self.assertEqual(st["rejected"], 0)
            self.assertEqual(st["expired"], 0)

            # Precise errors: a misspelt filter must not return everything.
            r = gw.admin("GET", "/edge/sinks/local/records?devise=p1", token=TOKEN)
            self.assertEqual(r.status, 400)
            self.assertEqual(r.json()["error"]["type"], "invalid_parameter")
            self.assertIn("unknown parameter 'devise'", r.json()["error"]["message"])
            r = gw.admin("GET", "/edge/sinks/local/records?limit=0", token=TOKEN)
            self.assertEqual(r.status, 400)
            r = gw.admin("GET", "/edge/sinks/nowhere/records", token=TOKEN)
            self.assertEqual(r.status, 404)
            self.assertEqual(r.json()["error"]["message"], "no sink named 'nowhere'")
            r = gw.admin("GET", "/edge/sinks/elsewhere/records", token=TOKEN)
            self.assertEqual(r.status, 404)
            self.assertIn("sink 'elsewhere' is a http sink: only tsdb sinks keep records", r.json()["error"]["message"])
            # The admin token is needed, as everywhere on the admin API.
            self.assertEqual(gw.admin("GET", "/edge/sinks/local/records").status, 401)

    def test_records_sent_again_after_kill_9_are_stored_once(self):
        text, port, admin = self.config()
        gw = Gateway(text, admin_port=admin)
        gw.start()
        try:
            base = (int(time.time()) - 60) * 1000
            for chunk in range(20):
                self.post(port, "p1", [{"value": chunk * 50 + i, "ts": base + chunk * 50 + i} for i in range(50)])
            gw.proc.send_signal(signal.SIGKILL)  # acknowledged: on disk; stored or not yet
            gw.proc.wait(5)
        finally:
            gw.stop()
        with Gateway(text, admin_port=admin) as again:
            def stored():
                return self.records(again, "kind=reading&limit=1&order=desc")
            self.assertTrue(wait_until(lambda: stored()["records"] and stored()["records"][0]["value"] == 999,
                                       timeout=10), again.admin("GET", "/edge", token=TOKEN).text)
            values = []
            page = self.records(again, "kind=reading&limit=10000")
            values = [r["value"] for r in page["records"]]
            self.assertEqual(values, list(range(1000)))  # each once, in order


class ConfigErrors(unittest.TestCase):
    def test_bad_tsdb_settings_are_refused(self):
        text = render(CONFIG, HOST=LOCALHOST, PORT=free_port(), ADMIN=free_port(), TOKEN=TOKEN, DATA="/tmp/x")
        self.assertEqual(check_config(text)[0], 0, check_config(text)[1])
        cases = [
            (text.replace("    retention: 720h\n", "    retention: 720h\n    url: http://127.0.0.1:1/x\n"),
             "'url' is for http and influxdb sinks: a tsdb sink writes a file in edge.data_dir"),
            (text.replace("    retention: 720h\n", "    retention: 720h\n    topic: x\n"), "'topic' is for mqtt sinks"),
            (text.replace("    url: http://@HOST@:9/ingest\n".replace("@HOST@", LOCALHOST),
                          "    url: http://%s:9/ingest\n    retention: 24h\n" % LOCALHOST),
             "'retention' is for tsdb sinks"),
            (text.replace("    url: http://@HOST@:9/ingest\n".replace("@HOST@", LOCALHOST),
                          "    url: http://%s:9/ingest\n    max_bytes: 10M\n" % LOCALHOST),
             "'max_bytes' is for tsdb sinks"),
            (text.replace("    retention: 720h\n", "    retention: 720h\n    max_bytes: 1k\n"),
             "max_bytes must be"),
        ]
        for bad, message in cases:
            code, out = check_config(bad)
            self.assertNotEqual(code, 0, bad)
            self.assertIn(message, out)


if __name__ == "__main__":
    unittest.main()
