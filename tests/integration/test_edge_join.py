"""The join stage (docs/edge.md "join") in a running gateway: the HVAC example (each room's
temperature with its occupancy and the weather station's outside temperature) POSTed to an
`ingest:` route, joined records at a real HTTP receiver, a filter and a rule on the joined
fields, `wait` for a partner arriving behind, the partners' values across a restart and a
reload that adds a joined field, and config errors with file and line."""

import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, Receiver, check_config, free_port, wait_until  # noqa: E402
from test_edge import TOKEN, config, post  # noqa: E402

HVAC = """  - name: hvac
    from: [ lab ]
    stages:
      - join:
          on: temperature
          with: [ occupancy, { metric: outside, device: weather, as: outside_temp } ]
          within: 30m
@WAIT@
    to: [ uplink ]
rules:
  - name: empty-and-hot
    when: "occupancy == 0 and temperature > 24 and outside_temp < temperature"
    actions:
      - forward: { to: alarms }
"""

ALARMS_SINK = """  - name: alarms
    kind: http
    url: http://127.0.0.1:@ALARMS@/alarms
    batch: { max_records: 10, max_delay: 50ms }
"""


def hvac_config(rx, alarms, wait=""):
    pipelines = HVAC.replace("@WAIT@\n", wait)
    text, port, admin = config(rx.port, pipelines=pipelines)
    text = text.replace("pipelines:\n", ALARMS_SINK.replace("@ALARMS@", str(alarms.port)) + "pipelines:\n", 1)
    return text, admin


def send(gw, device, metric, items):
    r = post(gw, "/ingest/%s?metric=%s" % (device, metric), json.dumps(items))
    assert r.status == 202, (r.status, r.body)


def joined(rx):
    return [r for r in rx.records() if r["metric"] == "temperature"]


class Join(unittest.TestCase):
    def test_rooms_are_joined_with_occupancy_and_the_weather(self):
        with Receiver() as rx, Receiver() as alarms:
            text, admin = hvac_config(rx, alarms)
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time()) * 1000 - 60_000
                send(gw, "weather", "outside", [{"value": 12.5, "ts": t0}])
                send(gw, "room-1", "occupancy", [{"value": 4, "ts": t0}])
                send(gw, "room-2", "occupancy", [{"value": 0, "ts": t0}])
                send(gw, "room-1", "temperature", [{"value": 22.0, "ts": t0 + 1000, "floor": "1"}])
                send(gw, "room-2", "temperature", [{"value": 25.5, "ts": t0 + 1000}])
                send(gw, "room-1", "co2", [{"value": 640, "ts": t0 + 1000}])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 3, timeout=5), rx.records())
                got = joined(rx)
                self.assertEqual([(r["device"], r["temperature"], r["occupancy"], r["outside_temp"]) for r in got],
                                 [("room-1", 22.0, 4, 12.5), ("room-2", 25.5, 0, 12.5)])
                self.assertEqual(got[0]["value"], 22.0)
                self.assertEqual(got[0]["kind"], "reading")
                self.assertEqual(got[0]["attrs"], {"floor": "1"})
                self.assertEqual(got[0]["ts"], t0 + 1000)
                self.assertTrue(got[0]["id"].startswith("hvac.stages[0].join@"), got[0]["id"])
                # The partners were taken in; co2 passed through.
                self.assertEqual(sorted(r["metric"] for r in rx.records()), ["co2", "temperature", "temperature"])
                # The rule read the joined fields: room-2 is empty and hot.
                self.assertTrue(wait_until(lambda: len(alarms.records()) == 1, timeout=5), alarms.records())
                self.assertEqual(alarms.records()[0]["device"], "room-2")
                stage = gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]["stages"][0]
                self.assertEqual((stage["kind"], stage["in"], stage["out"], stage["incomplete"]),
                                 ("join", 6, 3, 0))
                # A room without occupancy: joined without it, counted.
                send(gw, "room-3", "temperature", [{"value": 20, "ts": t0 + 2000}])
                self.assertTrue(wait_until(lambda: len(joined(rx)) == 3, timeout=5))
                self.assertNotIn("occupancy", joined(rx)[2])
                stage = gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]["stages"][0]
                self.assertEqual(stage["incomplete"], 1)
                shown = gw.admin("GET", "/config", token=TOKEN).json()["pipelines"][0]["stages"][0]["join"]
                self.assertEqual(shown, {"on": "temperature", "as": "", "metric": "", "within": "1800000ms",
                                         "wait": "0ms", "missing": "keep",
                                         "with": [{"metric": "occupancy", "device": "", "as": ""},
                                                  {"metric": "outside", "device": "weather", "as": "outside_temp"}]})

    def test_wait_joins_a_partner_that_arrives_behind(self):
        with Receiver() as rx, Receiver() as alarms:
            text, admin = hvac_config(rx, alarms, wait="          wait: 5s\n")
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time()) * 1000 - 60_000
                send(gw, "weather", "outside", [{"value": 10, "ts": t0}])
                send(gw, "room-1", "occupancy", [{"value": 1, "ts": t0}])
                send(gw, "room-1", "temperature", [{"value": 21, "ts": t0 + 1000}])
                time.sleep(0.5)
                self.assertEqual(joined(rx), [])  # held: no partner has reached its time yet
                # The change of occupancy at 0.9 s comes late; then both partners pass 1 s.
                send(gw, "room-1", "occupancy", [{"value": 0, "ts": t0 + 900}, {"value": 0, "ts": t0 + 1100}])
                send(gw, "weather", "outside", [{"value": 11, "ts": t0 + 1200}])
                self.assertTrue(wait_until(lambda: len(joined(rx)) == 1, timeout=5), rx.records())
                self.assertEqual((joined(rx)[0]["occupancy"], joined(rx)[0]["outside_temp"]), (0, 10))
                # A partner that stays silent: out after the wait, with what there was.
                send(gw, "room-1", "temperature", [{"value": 22, "ts": t0 + 5000}])
                time.sleep(1)
                self.assertEqual(len(joined(rx)), 1)
                self.assertTrue(wait_until(lambda: len(joined(rx)) == 2, timeout=10), rx.records())
                self.assertEqual(joined(rx)[1]["outside_temp"], 11)

    def test_a_reload_does_not_let_a_held_reading_go_early(self):
        # wait: 10m holds the reading; a reload that changes the join must not send it with the
        # value it had then and, after the ingest log runs it again, a second time.
        data = tempfile.mkdtemp(prefix="ganglion-join-held-")
        with Receiver() as rx, Receiver() as alarms:
            text, admin = hvac_config(rx, alarms, wait="          wait: 10m\n")
            text = text.replace("    retry: {", "    queue: { durable: true }\n    retry: {", 1)
            text += "edge: { data_dir: %s }\n" % data
            self.assertIn("durable: true", text)
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time()) * 1000 - 60_000
                send(gw, "weather", "outside", [{"value": 10, "ts": t0}])
                send(gw, "room-1", "occupancy", [{"value": 1, "ts": t0}])
                send(gw, "room-1", "temperature", [{"value": 21, "ts": t0 + 100}])
                time.sleep(0.3)
                gw.reload_file(text.replace("within: 30m", "within: 20m"))
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                time.sleep(0.5)
                self.assertEqual(joined(rx), [])  # still held, now by the new version
                send(gw, "room-1", "occupancy", [{"value": 2, "ts": t0 + 50}, {"value": 3, "ts": t0 + 200}])
                send(gw, "weather", "outside", [{"value": 11, "ts": t0 + 300}])
                self.assertTrue(wait_until(lambda: len(joined(rx)) >= 1, timeout=5), rx.records())
                time.sleep(0.5)
                self.assertEqual([(r["value"], r["occupancy"]) for r in joined(rx)], [(21, 2)])

    def test_partners_survive_a_restart_and_a_reload_adds_a_field(self):
        data = tempfile.mkdtemp(prefix="ganglion-join-")
        with Receiver() as rx, Receiver() as alarms:
            text, admin = hvac_config(rx, alarms)
            text += "edge: { data_dir: %s, state_every: 100ms }\n" % data
            t0 = int(time.time()) * 1000 - 60_000
            with Gateway(text, admin_port=admin) as gw:
                send(gw, "weather", "outside", [{"value": 8, "ts": t0}])
                send(gw, "room-1", "occupancy", [{"value": 3, "ts": t0}])
                time.sleep(0.5)
            with Gateway(text, admin_port=admin) as gw:
                send(gw, "room-1", "temperature", [{"value": 21, "ts": t0 + 1000}])
                self.assertTrue(wait_until(lambda: len(joined(rx)) == 1, timeout=5), rx.records())
                self.assertEqual((joined(rx)[0]["occupancy"], joined(rx)[0]["outside_temp"]), (3, 8))
                # A reload adds humidity: the rule, compiled anew, reads a field the running
                # config did not know.
                new_text = text.replace("{ metric: outside, device: weather, as: outside_temp } ]",
                                        "{ metric: outside, device: weather, as: outside_temp }, humidity ]")
                new_text = new_text.replace('when: "occupancy == 0 and', 'when: "humidity > 70 and occupancy == 0 and')
                self.assertNotEqual(new_text, text)
                gw.reload_file(new_text)
                r = gw.admin("POST", "/reload", token=TOKEN)
                self.assertEqual(r.status, 200, r.body)
                send(gw, "room-2", "occupancy", [{"value": 0, "ts": t0 + 2000}])
                send(gw, "room-2", "humidity", [{"value": 80, "ts": t0 + 2000}])
                send(gw, "room-2", "temperature", [{"value": 26, "ts": t0 + 3000}])
                self.assertTrue(wait_until(lambda: len(joined(rx)) == 2, timeout=5), rx.records())
                self.assertEqual((joined(rx)[1]["humidity"], joined(rx)[1]["outside_temp"]), (80, 8))
                self.assertTrue(wait_until(lambda: len(alarms.records()) == 1, timeout=5), alarms.records())
                self.assertEqual(alarms.records()[0]["humidity"], 80)


class JoinConfigErrors(unittest.TestCase):
    def error(self, join_line):
        pipelines = """  - name: hvac
    from: [ lab ]
    stages:
%s    to: [ uplink ]
""" % join_line
        text, _, _ = config(free_port(), pipelines=pipelines)
        code, out = check_config(text)
        self.assertNotEqual(code, 0, out)
        line = text.split("\n").index(join_line.rstrip("\n").split("\n")[0]) + 1
        return line, out

    def test_each_mistake_is_named_with_its_line(self):
        cases = [
            ("      - join: { with: [occupancy] }\n", "a join names its driving metric: on: temperature"),
            ("      - join: { on: temperature }\n", "a join needs partners"),
            ("      - join: { on: temperature, with: [] }\n", "with lists 1 to 8 partner metrics"),
            ("      - join: { on: temperature, with: [occupancy], missing: maybe }\n", "missing is keep or drop"),
            ("      - join: { on: temperature, with: [occupancy], wait: 1h }\n", "wait is at most 10m"),
            ("      - join: { on: temperature, with: [occupancy], within: 0s }\n", "within must be above 0"),
            ("      - join: { on: temperature, with: [co2-ppm] }\n", "metric 'co2-ppm' is not a field name"),
            ("      - join: { on: temperature, with: [{ metric: rh, as: mean }] }\n",
             "'mean' is a name records already use"),
            ("      - join: { on: temperature, with: [{ metric: rh, as: device }] }\n",
             "'device' is a name records already use"),
            ("      - join: { on: temperature, with: [occupancy, { metric: occ, as: occupancy }] }\n",
             "two joined values are named 'occupancy'"),
            ("      - join: { on: temperature, with: [temperature] }\n", "temperature is the driving metric"),
            ("      - join: { on: temperature, with: [{ device: x }] }\n", "a partner names its metric"),
            ("      - join: { on: temperature, with: [[1]] }\n", "a partner is a metric's name or"),
            ("      - join: { on: temperature, with: [{ metric: rh, colour: red }] }\n", "unknown field 'colour'"),
            ("      - join: [ temperature ]\n", "join is a map"),
            ("      - window: { tumbling: 1s, aggregates: [mean] }\n      - join: { on: mean, with: [occupancy] }\n",
             "so this join would get none"),
        ]
        for stage, message in cases:
            with self.subTest(stage=stage):
                line, out = self.error(stage)
                self.assertIn(message, out)
                if "window" not in stage:
                    self.assertIn(":%d:" % line, out)


if __name__ == "__main__":
    unittest.main()
