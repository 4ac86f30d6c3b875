"""The `influxdb` sink (docs/edge.md "InfluxDB sink") against a real InfluxDB 1.x server (Debian's
`influxd`, started on free ports by the harness): readings, windows and events land as points
with their tags, fields and exact times; a batch InfluxDB refuses for good (a field type
conflict: 400) is dropped and counted without stopping the ones after it; a missing database
(404) keeps the records queued until it exists; a write over InfluxDB's max-body-size (413)
is split until it fits; bad sink settings are refused at load with their line."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOCALHOST, Gateway, InfluxDB, check_config, free_port, http_request, render, wait_until  # noqa: E402

TOKEN = "Influx-Adm1n-T0ken-0123456789"
API_KEY = "influx-key-0123456789abcdef"

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
  - name: tsdb
    kind: influxdb
    url: "@URL@"
    headers: { authorization: "Token influx-secret-token" }
    batch: { max_records: @MAX_RECORDS@, max_delay: 50ms }
    retry: { initial: 50ms, max: 200ms }
pipelines:
  - name: raw
    from: [ lab ]
    to: [ tsdb ]
  - name: health
    from: [ lab ]
    stages:
      - window: { tumbling: 1s, by: [device, metric], aggregates: [count, mean, max] }
      - detect: { name: hot, field: max, history: 30, warmup: 10, threshold: 6 }
    to: [ tsdb ]
access_log: { enabled: false }
routes:
  - name: ingest
    match: { path_prefix: /ingest/ }
    ingest: lab
    filters: [ { key_auth: {} } ]
"""


def config(url, max_records=500):
    port, admin = free_port(), free_port()
    return render(CONFIG, host=LOCALHOST, port=port, admin=admin, token=TOKEN, key=API_KEY, url=url,
                  max_records=max_records), port, admin


def post(gw, device, body):
    data = body if isinstance(body, bytes) else body.encode()
    return http_request(gw.port, "POST", "/ingest/" + device, body=data,
                        headers={"Content-Type": "application/json", "Authorization": "Bearer " + API_KEY})


def sink(gw):
    return gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]


def minute_ago():
    return (int(time.time()) - 60) * 1000  # on a whole second


class Points(unittest.TestCase):
    def test_readings_windows_and_events_land_with_tags_fields_and_times(self):
        with InfluxDB() as db:
            text, port, admin = config(db.write_url(precision="ms"))
            with Gateway(text, admin_port=admin) as gw:
                base = minute_ago()
                for second in range(30):
                    batch = [{"value": 20 + (i % 3) * 0.1, "ts": base + second * 1000 + i * 100, "site": "north"}
                             for i in range(10)]
                    if second == 25:
                        batch[5]["value"] = 95
                    self.assertEqual(post(gw, "oven%201", json.dumps(batch)).status, 202)

                def count(kind):
                    rows = db.rows("SELECT count(*) FROM temperature WHERE kind='%s'" % kind)
                    return max((v for k, v in rows[0].items() if k != "time" and isinstance(v, int)),
                               default=0) if rows else 0
                self.assertTrue(wait_until(lambda: count("reading") == 300 and count("window") >= 29
                                           and count("event") == 1, timeout=10),
                                (count("reading"), count("window"), count("event"), sink(gw)))
                readings = db.rows("SELECT * FROM temperature WHERE kind='reading' ORDER BY time")
                self.assertEqual(len(readings), 300)
                first = readings[0]
                self.assertEqual(first["time"], base)  # exact, in milliseconds
                self.assertEqual(first["value"], 20)
                self.assertEqual(first["device"], "oven 1")  # a space in a tag value, escaped on the wire
                self.assertEqual(first["source"], "lab")
                self.assertEqual(first["site"], "north")  # an attribute becomes a tag
                self.assertEqual(first["quality"], "good")
                self.assertEqual(readings[251]["value"], 20.1)
                windows = db.rows("SELECT * FROM temperature WHERE kind='window' ORDER BY time")
                self.assertEqual(windows[0]["time"], base)
                self.assertEqual(windows[0]["count"], 10)
                self.assertEqual(windows[0]["window_ms"], 1000)
                self.assertAlmostEqual(windows[0]["mean"], 20.09, places=6)
                self.assertIsNone(windows[0]["source"])  # a window by device and metric has no source
                events = db.rows("SELECT * FROM temperature WHERE kind='event'")
                self.assertEqual(len(events), 1, events)
                e = events[0]
                self.assertEqual(e["time"], base + 25_000)
                self.assertEqual(e["detector"], "hot")
                self.assertEqual(e["verdict"], "anomaly")
                self.assertEqual(e["value"], 95)
                self.assertIn("max 95 is", e["reason"])
                st = sink(gw)
                self.assertEqual(st["rejected"], 0)
                self.assertEqual(st["failures"], 0, st)
                self.assertEqual(st["delivered"], 300 + len(windows) + 1)
                # The token header is shown redacted.
                self.assertNotIn("influx-secret-token", gw.admin("GET", "/config", token=TOKEN).text)

    def test_nanosecond_default_and_text_with_newlines(self):
        with InfluxDB() as db:
            text, port, admin = config(db.write_url())  # no precision: nanoseconds, as InfluxDB assumes
            with Gateway(text, admin_port=admin) as gw:
                base = minute_ago() + 123
                self.assertEqual(post(gw, "p", json.dumps({"value": 1.5, "ts": base, "note": "a\nb \"c\""})).status, 202)
                self.assertTrue(wait_until(lambda: db.rows("SELECT * FROM temperature"), timeout=10), sink(gw))
                row = db.rows("SELECT * FROM temperature")[0]
                self.assertEqual(row["time"], base)
                self.assertEqual(row["value"], 1.5)
                self.assertEqual(row["note"], "a b \"c\"")  # a tag cannot hold a newline: a space


    def test_microseconds_and_a_comment_like_measurement(self):
        with InfluxDB() as db:
            text, port, admin = config(db.write_url(precision="u"))  # 1.x spells it u (us reads as ns)
            with Gateway(text, admin_port=admin) as gw:
                base = minute_ago() + 456
                self.assertEqual(post(gw, "p", json.dumps({"value": 2, "ts": base})).status, 202)
                # '#' first would make the line a comment: InfluxDB would say 204 and keep nothing.
                self.assertEqual(post(gw, "p?metric=%23hash", json.dumps({"value": 3, "ts": base})).status, 202)
                self.assertTrue(wait_until(lambda: db.rows("SELECT * FROM temperature WHERE kind='reading'"),
                                           timeout=10), sink(gw))
                self.assertEqual(db.rows("SELECT * FROM temperature WHERE kind='reading'")[0]["time"], base)
                self.assertTrue(wait_until(lambda: sink(gw)["rejected"] == 1, timeout=5), sink(gw))
                self.assertIn("its measurement '#hash' would read as a comment", sink(gw)["last_error"])
                # A backslash before a space stays a backslash: `a\ b` and `a b` are two measurements.
                for metric, value in (("a%5C%20b", 4), ("a%20b", 5)):
                    self.assertEqual(post(gw, "p?metric=" + metric, json.dumps({"value": value, "ts": base})).status,
                                     202)

                def measurements():
                    series = db.query("SHOW MEASUREMENTS")
                    return sorted(v[0] for v in series[0]["values"]) if series else []
                self.assertTrue(wait_until(lambda: "a b" in measurements() and "a\\ b" in measurements(),
                                           timeout=10), measurements())


class Refusals(unittest.TestCase):
    def test_a_batch_influxdb_refuses_for_good_is_dropped_and_counted_and_the_rest_flows(self):
        with InfluxDB() as db:
            # `value` already holds strings in this measurement's shard: InfluxDB refuses floats (400).
            base = minute_ago()
            self.assertEqual(db.write('temperature,device=x value="text" %d' % base)[0], 204)
            text, port, admin = config(db.write_url(precision="ms"), max_records=5)
            with Gateway(text, admin_port=admin) as gw:
                self.assertEqual(post(gw, "p", json.dumps([{"value": i, "ts": base + i} for i in range(3)])).status,
                                 202)
                self.assertTrue(wait_until(lambda: sink(gw)["rejected"] == 3, timeout=10), sink(gw))
                st = sink(gw)
                self.assertIn("the receiver refused 3 records for good (400: partial write: field type conflict",
                              st["last_error"])
                self.assertEqual(st["queued_records"], 0)
                self.assertEqual(post(gw, "p?metric=pressure", json.dumps({"value": 7, "ts": base})).status, 202)
                self.assertTrue(wait_until(lambda: db.rows("SELECT * FROM pressure"), timeout=10), sink(gw))
                self.assertEqual(db.rows("SELECT * FROM pressure")[0]["value"], 7)
                metrics = gw.admin("GET", "/metrics", token=TOKEN).text
                self.assertIn('ganglion_edge_sink_rejected_total{sink="tsdb"} 3', metrics)

    def test_a_partial_write_counts_what_influxdb_stored(self):
        with InfluxDB() as db:
            base = minute_ago()
            self.assertEqual(db.write('conflict,device=x value="text" %d' % base)[0], 204)
            text, port, admin = config(db.write_url(precision="ms"))
            text = text.replace("max_delay: 50ms", "max_delay: 1s")  # the posts below make one batch
            with Gateway(text, admin_port=admin) as gw:
                self.assertEqual(post(gw, "p", json.dumps([{"value": i, "ts": base + i} for i in range(3)])).status,
                                 202)
                self.assertEqual(post(gw, "p?metric=conflict", json.dumps({"value": 1, "ts": base})).status, 202)
                self.assertTrue(wait_until(lambda: sink(gw)["rejected"] == 1, timeout=10), sink(gw))
                st = sink(gw)
                self.assertIn("InfluxDB stored 3 of 4 lines and refused 1 for good (400: partial write: field type "
                              "conflict", st["last_error"])
                self.assertEqual(st["delivered"], 3)
                self.assertEqual(len(db.rows("SELECT * FROM temperature WHERE kind='reading'")), 3)

    def test_a_missing_database_keeps_records_queued_until_it_exists(self):
        with InfluxDB(db="") as db:
            text, port, admin = config(db.write_url(precision="ms", db="later"))
            with Gateway(text, admin_port=admin) as gw:
                base = minute_ago()
                for i in range(4):
                    self.assertEqual(post(gw, "p", json.dumps({"value": i, "ts": base + i})).status, 202)
                self.assertTrue(wait_until(lambda: sink(gw)["failures"] >= 2, timeout=10), sink(gw))
                st = sink(gw)
                # The database and precision are shown (they are no secret), credentials are not.
                self.assertTrue(st["url"].endswith("/write?db=later&precision=ms"), st["url"])
                self.assertEqual(st["last_error"], 'the receiver answered 404: database not found: "later"')
                self.assertEqual(st["queued_records"], 4)
                self.assertEqual(st["rejected"], 0)
                db.db = "later"
                db.query('CREATE DATABASE "later"', method="POST")
                self.assertTrue(wait_until(lambda: len(db.rows("SELECT * FROM temperature")) == 4, timeout=10),
                                sink(gw))
                self.assertEqual([r["value"] for r in db.rows("SELECT * FROM temperature ORDER BY time")],
                                 [0, 1, 2, 3])

    def test_a_write_over_max_body_size_is_split_until_it_fits(self):
        with InfluxDB(max_body_size=3000) as db:
            text, port, admin = config(db.write_url(precision="ms"))
            text = text.replace("max_delay: 50ms", "max_delay: 1s")
            with Gateway(text, admin_port=admin) as gw:
                base = minute_ago()
                # 200 readings in one payload: one batch of about 18 KB, six times the limit.
                self.assertEqual(post(gw, "pump-1", json.dumps([{"value": i, "ts": base + i} for i in range(200)]))
                                 .status, 202)
                self.assertTrue(wait_until(lambda: len(db.rows("SELECT value FROM temperature")) == 200, timeout=15),
                                sink(gw))
                rows = db.rows("SELECT value FROM temperature ORDER BY time")
                self.assertEqual([r["value"] for r in rows], list(range(200)))
                st = sink(gw)
                self.assertEqual(st["delivered"], 200, st)
                self.assertEqual(st["rejected"], 0)
                self.assertIn("the receiver answered 413 to", st["last_error"])


class ConfigErrors(unittest.TestCase):
    def test_bad_influxdb_settings_are_refused_with_their_line(self):
        text, _, _ = config("http://127.0.0.1:8086/write?db=x&precision=h")
        code, out = check_config(text)
        self.assertNotEqual(code, 0)
        line = text.split("\n").index('    url: "http://127.0.0.1:8086/write?db=x&precision=h"') + 1
        self.assertIn(":%d:" % line, out)
        self.assertIn("precision 'h': /write (InfluxDB 1.x API) takes n, u, ms or s", out)
        code, out = check_config(text.replace("kind: influxdb", "kind: influx"))
        self.assertIn("unknown sink kind 'influx' (known: http, influxdb, mqtt, tsdb)", out)
        # InfluxDB 1.x reads precision=us as nanoseconds (times a thousand times too early): refused.
        code, out = check_config(text.replace("&precision=h", "&precision=us"))
        self.assertIn("precision 'us': /write (InfluxDB 1.x API) takes n, u, ms or s", out)
        code, out = check_config(text.replace("&precision=h", "&precision=u"))
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()
