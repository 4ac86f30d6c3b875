"""Store and forward (docs/edge.md "Durable queues"): a sink with `queue: { durable: true }`
keeps undelivered records in `edge.data_dir/queues/<sink>/`; they survive SIGTERM and
`kill -9`, and reach the receiver in order when it is back. The disk cap drops raw readings
first and events last; a damaged segment is skipped and reported, never a stopped pipeline."""

import contextlib
import glob
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOCALHOST, Gateway, Mosquitto, Receiver, free_port, http_request, render, wait_until  # noqa: E402

TOKEN = "Durable-Adm1n-T0ken-0123456789"

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
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: @MAX_RECORDS@, max_delay: 50ms }
    retry: { initial: 50ms, max: 100ms }
    queue: { durable: @DURABLE@, max_bytes: @MAX_BYTES@ }
pipelines:
  - name: raw
    from: [ lab ]
    stages:
@STAGES@
    to: [ uplink ]
edge:
  data_dir: @DATA@
access_log: { enabled: false }
routes:
  - name: ingest
    match: { path_prefix: /ingest/ }
    ingest: lab
"""

PASS_ALL = '      - filter: "value > -1000000"'
# Every reading passes; a reading above 1000 also raises an event (a window of one, then a
# detector that fires on anything past its warm-up would be slower to reason about).
WITH_EVENTS = """      - filter: "value > -1000000"
      - detect: { name: spike, method: robust_zscore, field: value, history: 20, warmup: 5, threshold: 4 }"""


class DurableCase(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="ganglion-durable-")

    def tearDown(self):
        if not os.environ.get("GANGLION_KEEP_TMP"):
            shutil.rmtree(self.data, ignore_errors=True)

    def config(self, sink_port, durable=True, max_bytes="64MiB", stages=PASS_ALL, max_records=200,
               port=None, admin=None):
        port = port or free_port()
        admin = admin or free_port()
        text = render(CONFIG, host=LOCALHOST, port=port, admin=admin, token=TOKEN, sink=sink_port,
                      durable="true" if durable else "false", max_bytes=max_bytes, stages=stages,
                      max_records=max_records, data=self.data)
        return text, port, admin

    def post(self, gw, device, values):
        body = json.dumps([{"value": v} for v in values]).encode()
        r = http_request(gw.port, "POST", "/ingest/" + device, body=body,
                         headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 202, r.body)

    def sink(self, gw):
        return gw.admin("GET", "/edge", token=TOKEN).json()["sinks"][0]

    def ingest(self, gw):
        return gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]["ingest_log"]

    def segments(self):
        return sorted(glob.glob(os.path.join(self.data, "queues", "uplink", "*.seg")))


class SurvivesRestarts(DurableCase):
    def test_records_queued_while_the_receiver_fails_survive_kill_9_and_arrive_in_order(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                for chunk in range(10):
                    self.post(gw, "pump-1", [chunk * 100 + i for i in range(100)])
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 1000, timeout=5),
                                self.sink(gw))
                # The pipeline's ingest log is trimmed once the records are on disk in the queue:
                # nothing is run twice after the kill.
                self.assertTrue(wait_until(lambda: self.ingest(gw)["frames"] == 0, timeout=5), self.ingest(gw))
                s = self.sink(gw)
                self.assertTrue(s["durable"])
                self.assertGreater(s["failures"], 0)
                self.assertGreater(s["queued_bytes"], 0)
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            self.assertTrue(self.segments())
            rx.status = 200
            with Gateway(text, admin_port=admin) as gw2:
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 1000, timeout=10), len(rx.records()))
                time.sleep(0.2)
                recs = rx.records()
                self.assertEqual([r["value"] for r in recs], list(range(1000)))  # in order, each once
                self.assertEqual(len({r["id"] for r in recs}), 1000)
                self.assertTrue(wait_until(lambda: self.sink(gw2)["queued_records"] == 0, timeout=3))
                self.assertIn("resumes 1000 records", gw2.log_text())
                self.assertTrue(self.sink(gw2)["open"])

    def test_delivered_records_are_not_sent_again_after_a_restart(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.post(gw, "pump-1", list(range(50)))
                self.assertTrue(wait_until(lambda: len(rx.records()) == 50, timeout=5))
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 0, timeout=3))
                self.assertTrue(wait_until(lambda: self.ingest(gw)["frames"] == 0, timeout=5), self.ingest(gw))
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            with Gateway(text, admin_port=admin) as gw2:
                self.post(gw2, "pump-1", [1000])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 51, timeout=5))
                time.sleep(0.3)
                self.assertEqual(len(rx.records()), 51)
                self.assertEqual(rx.records()[-1]["value"], 1000)

    def test_sigterm_keeps_what_the_receiver_did_not_take(self):
        with Receiver() as rx:
            rx.status = 500
            text, port, admin = self.config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.post(gw, "pump-1", list(range(300)))
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 300, timeout=5))
                gw.stop()
                self.assertIn("keeps 300 records not yet delivered", gw.log_text())
            rx.status = 200
            with Gateway(text, admin_port=admin):
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 300, timeout=10))
                self.assertEqual([r["value"] for r in rx.records()], list(range(300)))

    def test_reload_between_memory_and_disk_keeps_the_queue(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port, durable=False)
            with Gateway(text, admin_port=admin) as gw:
                self.post(gw, "pump-1", list(range(100)))
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 100, timeout=5))
                self.assertFalse(self.sink(gw)["durable"])
                durable, _, _ = self.config(rx.port, durable=True, port=port, admin=admin)
                gw.reload_file(durable)
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: self.sink(gw)["durable"], timeout=5))
                self.assertEqual(self.sink(gw)["queued_records"], 100)
                self.post(gw, "pump-1", list(range(100, 150)))
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 150, timeout=5))
                # A changed setting (the batch size) keeps the durable queue as it is.
                bigger, _, _ = self.config(rx.port, durable=True, max_records=300, port=port, admin=admin)
                gw.reload_file(bigger)
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                time.sleep(0.3)
                self.assertEqual(self.sink(gw)["queued_records"], 150)
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            rx.status = 200
            with Gateway(bigger, admin_port=admin):
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 150, timeout=10))
                self.assertEqual([r["value"] for r in rx.records()], list(range(150)))


class CapAndDamage(DurableCase):
    def test_the_disk_cap_drops_readings_first_and_keeps_events(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port, max_bytes="256KiB", stages=WITH_EVENTS)
            with Gateway(text, admin_port=admin) as gw:
                # Warm-up on a steady signal, then spikes between long runs of normal readings.
                values = []
                for block in range(40):
                    values += [10 + (i % 3) * 0.1 for i in range(200)]
                    values.append(5000 + block)
                for at in range(0, len(values), 500):
                    self.post(gw, "pump-1", values[at:at + 500])
                self.assertTrue(wait_until(lambda: self.sink(gw)["dropped"] > 0, timeout=5), self.sink(gw))
                time.sleep(0.3)
                s = self.sink(gw)
                # The files stay near the cap (the segment being written may pass it).
                self.assertLess(s["queued_bytes"], 256 * 1024 * 1.2, s)
                self.assertLess(sum(os.path.getsize(p) for p in self.segments()), 256 * 1024 * 1.2)
                events_raised = gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]["stages"][1]["events"]
                self.assertGreater(events_raised, 30)
                rx.status = 200
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 0, timeout=10))
                recs = rx.records()
                events = [r for r in recs if r["kind"] == "event"]
                readings = [r for r in recs if r["kind"] == "reading"]
                self.assertEqual(len(events), events_raised)  # every event survived the cap
                self.assertLess(len(readings), len(values))   # readings paid for it
                self.assertEqual(len(readings) + len(events) + s["dropped"], len(values) + events_raised)
                # What arrived is in order.
                seqs = [int(r["id"].rsplit("-", 1)[1]) for r in readings]
                self.assertEqual(seqs, sorted(seqs))
                self.assertIn("dropping the oldest readings", gw.log_text())

    def test_a_damaged_segment_is_skipped_and_reported_and_the_rest_delivered(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port, max_bytes="1MiB")
            with Gateway(text, admin_port=admin) as gw:
                for chunk in range(20):
                    self.post(gw, "pump-1", [chunk * 100 + i for i in range(100)])
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 2000, timeout=5))
            segs = self.segments()
            self.assertGreater(len(segs), 2)
            # Scribble over the middle of the first segment.
            with open(segs[0], "r+b") as f:
                f.seek(4000)
                f.write(b"\xff" * 64)
            # And cut the second one short, inside a frame: what followed is lost, said as such.
            cut_at = os.path.getsize(segs[1]) // 2 + 5
            os.truncate(segs[1], cut_at)
            rx.status = 200
            with Gateway(text, admin_port=admin) as gw2:
                # `open` first: until the durable queue is read, queued_records reads 0.
                self.assertTrue(wait_until(lambda: self.sink(gw2)["open"] and self.sink(gw2)["queued_records"] == 0,
                                           timeout=10), self.sink(gw2))
                s = self.sink(gw2)
                self.assertGreater(s["corrupt_bytes"], 0)
                self.assertIn(os.path.basename(segs[1]), s["last_corruption"])
                values = [r["value"] for r in rx.records()]
                self.assertGreater(len(values), 1700)  # a frame or two, and half a segment lost
                self.assertLess(len(values), 1990)
                # Each damaged file is logged, not only the last one found.
                log = gw2.log_text()
                self.assertIn("damaged queue data skipped: %s" % segs[0], log)
                self.assertIn("damaged queue data skipped: %s: cut short at %d bytes" % (segs[1], cut_at), log)
                self.assertIn("the records written after it are lost (about ", log)
                self.assertEqual(values, sorted(values))
                self.assertEqual(values[-1], 1999)
                self.assertIn("damaged queue data skipped", gw2.log_text())
                metrics = gw2.admin("GET", "/metrics", token=TOKEN).text
                self.assertIn('ganglion_edge_sink_corrupt_bytes_total{sink="uplink"}', metrics)
                # The pipeline goes on.
                self.post(gw2, "pump-1", [5000])
                self.assertTrue(wait_until(lambda: rx.records()[-1]["value"] == 5000, timeout=5))

    def test_an_unusable_data_dir_is_said_and_acknowledged_readings_are_refused(self):
        # The queue and the ingest log cannot be opened: the sink's records wait in memory, and
        # readings whose sender waits for an acknowledgement are refused (503 not_stored), not
        # answered 202 from memory (an outside test lost 100 acknowledged readings to kill -9).
        blocker = os.path.join(self.data, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            text = text.replace("data_dir: " + self.data, "data_dir: " + blocker)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: "unusable" in self.sink(gw).get("queue_error", ""), timeout=5))
                self.assertFalse(self.sink(gw)["durable"])
                self.assertIn("records wait in memory", gw.log_text())
                r = http_request(gw.port, "POST", "/ingest/pump-1", body=json.dumps([{"value": 1}]).encode(),
                                 headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 503, r.body)
                self.assertEqual(r.json()["error"]["type"], "not_stored")
                self.assertIn("readings whose sender waits for an acknowledgement are refused", gw.log_text())
                time.sleep(0.3)
                self.assertEqual(rx.records(), [])  # nothing of it ran either

    def test_a_queue_kept_in_memory_holds_the_ingest_log_until_its_records_are_delivered(self):
        # Only queues/ is in the way: the ingest log works, the sink's records wait in memory.
        # The log was trimmed as soon as they were queued there, so a kill -9 lost readings
        # answered 202. It keeps them now until the receiver has them.
        with open(os.path.join(self.data, "queues"), "w") as f:
            f.write("in the way")
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.assertTrue(wait_until(lambda: "unusable" in self.sink(gw).get("queue_error", ""), timeout=5))
                self.post(gw, "pump-1", list(range(50)))
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 50, timeout=5))
                time.sleep(0.5)  # trims are tried every 100 ms
                self.assertGreater(self.ingest(gw)["frames"], 0, self.ingest(gw))
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            os.remove(os.path.join(self.data, "queues"))
            rx.status = 200
            with Gateway(text, admin_port=admin) as gw2:
                self.assertTrue(wait_until(lambda: len({r["value"] for r in rx.records()}) == 50, timeout=10),
                                len(rx.records()))
                # Delivered now: the log is trimmed, as with a queue on disk.
                self.assertTrue(wait_until(lambda: self.ingest(gw2)["frames"] == 0, timeout=5), self.ingest(gw2))

    def test_a_sink_name_too_long_for_a_file_name_still_gets_a_durable_queue(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port)
            # 255 bytes (the most a name may have is 256), 763 once percent-encoded for a file
            # name, and alike for their first 254 bytes.
            long_a, long_b = "a" + "+" * 253 + "x", "a" + "+" * 253 + "y"
            text = text.replace("  - name: uplink\n", "  - name: %s\n" % long_a).replace(
                "to: [ uplink ]", "to: [ %s, %s ]" % (long_a, long_b))
            text = text.replace("sinks:\n", "sinks:\n  - { name: %s, kind: http, url: http://%s:%d/ingest, "
                                "queue: { durable: true } }\n" % (long_b, LOCALHOST, rx.port))
            with Gateway(text, admin_port=admin) as gw:
                # A durable queue opens on its sink's worker after the gateway is ready: `open` first.
                self.assertTrue(wait_until(lambda: all(s["open"] for s in gw.admin("GET", "/edge", token=TOKEN)
                                                       .json()["sinks"]), timeout=5))
                sinks = gw.admin("GET", "/edge", token=TOKEN).json()["sinks"]
                self.assertEqual([s["durable"] for s in sinks], [True, True], sinks)
                self.assertNotEqual(sinks[0]["queue_dir"], sinks[1]["queue_dir"])
                self.assertTrue(all(len(os.path.basename(s["queue_dir"])) < 255 for s in sinks))

    def test_two_gateways_cannot_share_one_data_dir(self):
        # The second used to run with every queue in memory (each queue's own lock held), so
        # its 202s promised what a crash would lose. It now waits a few seconds for the first
        # to let go (a restart that came early), then refuses to start, naming the holder.
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port)
            with Gateway(text, admin_port=admin) as first:
                self.post(first, "pump-1", list(range(100)))
                self.assertTrue(wait_until(lambda: self.sink(first)["queued_records"] == 100, timeout=5))
                other, _, other_admin = self.config(rx.port)  # same data_dir, other ports
                second = Gateway(other, admin_port=other_admin, start_timeout=15)
                started = time.monotonic()
                with self.assertRaises(RuntimeError) as refused:
                    second.start()
                self.assertGreaterEqual(time.monotonic() - started, 4.5)  # it waited for the first
                self.assertIn("in use by process %d" % first.proc.pid, str(refused.exception))
                self.assertIn("two gateways cannot share one edge.data_dir", str(refused.exception))
                self.assertIn("waiting up to 5000 ms", str(refused.exception))
                second.stop()
                first.proc.send_signal(signal.SIGKILL)
                first.proc.wait(5)
            rx.status = 200
            with Gateway(text, admin_port=admin):
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 100, timeout=10))
                time.sleep(0.3)
                self.assertEqual([r["value"] for r in rx.records()], list(range(100)))  # none lost, none foreign

    def test_a_restart_that_comes_early_waits_for_the_data_dir_and_keeps_its_queues_on_disk(self):
        # A supervisor started the new gateway while the old one still held edge.data_dir:
        # it waits for the lock, and then every queue is durable (not in memory for good).
        import fcntl
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port)
            os.makedirs(self.data, exist_ok=True)
            held = open(os.path.join(self.data, "gateway.lock"), "a+")
            fcntl.flock(held, fcntl.LOCK_EX)  # the old process, shutting down
            threading.Timer(1.5, lambda: (fcntl.flock(held, fcntl.LOCK_UN), held.close())).start()
            started = time.monotonic()
            with Gateway(text, admin_port=admin, start_timeout=15) as gw:
                self.assertGreaterEqual(time.monotonic() - started, 1.4)
                self.assertIn("waiting up to 5000 ms for it to let go", gw.log_text())
                self.assertTrue(wait_until(lambda: self.sink(gw)["open"], timeout=5))
                s = self.sink(gw)
                self.assertTrue(s["durable"], s)
                self.assertNotIn("queue_error", s)
                self.post(gw, "pump-1", [1, 2, 3])
                self.assertTrue(wait_until(lambda: self.sink(gw)["queued_records"] == 3, timeout=5))
                with open(os.path.join(self.data, "gateway.lock")) as f:
                    self.assertEqual(f.read().strip(), str(gw.proc.pid))

    def test_a_cap_smaller_than_a_segment_says_so_once(self):
        with Receiver() as rx:
            rx.status = 503
            text, port, admin = self.config(rx.port, max_bytes="4KiB")
            with Gateway(text, admin_port=admin) as gw:
                for chunk in range(20):
                    self.post(gw, "pump-1", list(range(chunk * 500, chunk * 500 + 500)))
                self.assertTrue(wait_until(lambda: self.sink(gw)["dropped"] > 5000, timeout=5), self.sink(gw))
                time.sleep(0.3)
                self.assertEqual(gw.log_text().count("holds queue.max_bytes"), 1, gw.log_text()[-3000:])


WINDOW = "      - window: { tumbling: 1s, by: [ device, metric ], aggregates: [ count, sum ] }"


class NotStored(DurableCase):
    @contextlib.contextmanager
    def files_limited_to_256k(self):
        """Gateways started meanwhile cannot grow a file past 256 KiB: a file size limit stands
        in for a full disk (write(2) fails with EFBIG past it)."""
        import harness
        wrapper = os.path.join(self.data, "ganglion-fsize")
        with open(wrapper, "w") as f:
            f.write("#!/bin/bash\ntrap '' XFSZ\nulimit -f 256\nexec %s \"$@\"\n" % harness.BIN)
        os.chmod(wrapper, 0o755)
        real, harness.BIN = harness.BIN, wrapper
        try:
            yield
        finally:
            harness.BIN = real

    def test_queue_error_is_cleared_once_the_disk_takes_the_records_again(self):
        # Outsider finding: after a full disk, everything delivered and nothing held in memory,
        # queue_error still said the disk refused records.
        with self.files_limited_to_256k(), Receiver() as rx:
            rx.status = 503  # the uplink is down: the queue grows to the limit
            text, port, admin = self.config(rx.port)
            with Gateway(text.replace("data_dir: %s" % self.data, "data_dir: %s/d" % self.data),
                         admin_port=admin) as gw:
                sent = 0
                while self.sink(gw).get("held_in_memory", 0) == 0 and sent < 20000:
                    self.post(gw, "pump-1", list(range(sent, sent + 100)))
                    sent += 100
                s = self.sink(gw)
                self.assertGreater(s["write_failures"], 0, s)
                self.assertIn("refused", s.get("queue_error", ""), s)
                rx.status = 200
                self.assertTrue(wait_until(lambda: len(rx.records()) == sent, timeout=30), (len(rx.records()), sent))
                self.assertTrue(wait_until(lambda: "queue_error" not in self.sink(gw), timeout=5), self.sink(gw))
                self.assertEqual(self.sink(gw)["held_in_memory"], 0)
                self.assertIn("the durable queue takes records again", gw.log_text())

    def test_readings_the_ingest_log_refused_are_not_run(self):
        # Outsider finding: readings answered 503 not_stored still ran through the pipeline,
        # so the client's retry (as told) counted them twice under new ids.
        with self.files_limited_to_256k():
            with Receiver() as rx:
                text, port, admin = self.config(rx.port)
                with Gateway(text.replace("data_dir: %s" % self.data, "data_dir: %s/d" % self.data),
                             admin_port=admin) as gw:
                    body = json.dumps([{"value": i, "attrs": {"note": "x" * 20}} for i in range(10000)]).encode()
                    r = http_request(gw.port, "POST", "/ingest/pump-1", body=body,
                                     headers={"Content-Type": "application/json"})
                    self.assertEqual(r.status, 503, r.body)
                    self.assertIn(b"not_stored", r.body)
                    p = gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]
                    self.assertEqual(p["not_stored"], 10000)
                    self.assertEqual(p["readings_in"], 0)
                    self.post(gw, "pump-1", [1, 2, 3])  # small enough: taken and run
                    self.assertTrue(wait_until(lambda: len(rx.records()) == 3, timeout=5), len(rx.records()))
                    time.sleep(0.3)
                    self.assertEqual([r["value"] for r in rx.records()], [1, 2, 3])


class IngestLog(DurableCase):
    """A pipeline feeding a durable sink logs readings before the sender is acknowledged:
    what sits in an open window when the process dies is run again at the next start."""

    def pipeline(self, gw):
        return gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]

    def fill_open_window(self, gw, base):
        """300 readings of pump-1 in the window starting at `base`, in ten payloads."""
        for chunk in range(10):
            body = json.dumps([{"value": 1, "ts": base + chunk * 50 + i} for i in range(30)]).encode()
            r = http_request(gw.port, "POST", "/ingest/pump-1", body=body, headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 202, r.body)

    def test_no_acknowledged_reading_is_lost_when_reloads_change_the_pipeline_under_load(self):
        # A reload that changes the pipeline hands its ingest log to the successor, and
        # payloads arriving meanwhile are forwarded to it. An outside test lost a whole
        # acknowledged payload in about 1 reload of 85: forwarded before the successor held
        # the log, it was acknowledged unlogged and run before the successor had its sinks.
        import threading
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            other = text.replace("value > -1000000", "value > -1000001")
            acked, stop = [], threading.Event()

            def load():
                n = 0
                while not stop.is_set():
                    values = list(range(n, n + 20))
                    n += 20
                    r = http_request(port, "POST", "/ingest/pump-1", body=json.dumps([{"value": v} for v in values]).encode(),
                                     headers={"Content-Type": "application/json"})
                    if r.status == 202:
                        acked.extend(values)

            with Gateway(text, admin_port=admin) as gw:
                sender = threading.Thread(target=load)
                sender.start()
                try:
                    for i in range(100):
                        gw.reload_file(other if i % 2 == 0 else text)
                        self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                        time.sleep(0.02)
                finally:
                    stop.set()
                    sender.join(10)
                self.assertGreater(len(acked), 1000)

                def missing():
                    return sorted(set(acked) - {r["value"] for r in rx.records()})
                self.assertTrue(wait_until(lambda: not missing(), timeout=10),
                                "%d of %d acknowledged readings lost, from %s" % (len(missing()), len(acked), missing()[:3]))

    def test_acknowledged_readings_in_an_open_window_survive_kill_9(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, stages=WINDOW)
            gw = Gateway(text, admin_port=admin)
            base = (int(time.time()) - 60) * 1000  # one old second: the window is open until wall time closes it
            with gw:
                self.fill_open_window(gw, base)
                self.assertIn("ingest_log", self.pipeline(gw))
                gw.proc.send_signal(signal.SIGKILL)  # well within the window's second of wall time
                gw.proc.wait(5)
            self.assertEqual(rx.records(), [])
            with Gateway(text, admin_port=admin) as gw2:
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 1, timeout=5))
                time.sleep(0.3)
                recs = rx.records()
                self.assertEqual(len(recs), 1, recs)
                self.assertEqual(recs[0]["count"], 300)  # every acknowledged reading, once
                self.assertEqual(recs[0]["ts"], base)
                self.assertEqual(self.pipeline(gw2)["ingest_log"]["replayed"], 300)
                self.assertIn("runs again 300 readings", gw2.log_text())
                # Once the window's record is on disk in the sink's queue, the log is trimmed.
                self.assertTrue(wait_until(lambda: self.pipeline(gw2)["ingest_log"]["frames"] == 0, timeout=5),
                                self.pipeline(gw2))

    def test_damage_in_the_ingest_log_is_skipped_and_reported(self):
        # As a sink queue's damage is: in the log and GET /edge, and the pipeline goes on.
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, stages=WINDOW)
            gw = Gateway(text, admin_port=admin)
            base = (int(time.time()) - 60) * 1000
            with gw:
                self.fill_open_window(gw, base)
                gw.proc.send_signal(signal.SIGKILL)  # the window open: the log holds all ten
                gw.proc.wait(5)
            segs = sorted(glob.glob(os.path.join(self.data, "ingest", "raw", "*.seg")))
            self.assertTrue(segs)
            with open(segs[0], "r+b") as f:
                f.seek(os.path.getsize(segs[0]) // 2)
                f.write(b"\xff" * 64)
            with Gateway(text, admin_port=admin) as gw2:
                log = self.pipeline(gw2)["ingest_log"]
                self.assertGreater(log["corrupt_bytes"], 0)
                self.assertIn(os.path.basename(segs[0]), log["last_corruption"])
                self.assertIn("pipeline 'raw': damaged ingest log data skipped", gw2.log_text())
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 1, timeout=5))
                self.assertLess(rx.records()[0]["count"], 300)  # the damaged payload is lost, the rest run
                self.assertGreater(rx.records()[0]["count"], 200)

    def test_the_log_is_trimmed_and_a_clean_restart_replays_nothing(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, stages=WINDOW)
            with Gateway(text, admin_port=admin) as gw:
                base = (int(time.time()) - 60) * 1000
                for i in range(5):
                    body = json.dumps([{"value": 2, "ts": base + i}]).encode()
                    self.assertEqual(http_request(gw.port, "POST", "/ingest/pump-1", body=body,
                                                  headers={"Content-Type": "application/json"}).status, 202)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 1, timeout=5))
                self.assertTrue(wait_until(lambda: self.pipeline(gw)["ingest_log"]["frames"] == 0, timeout=5),
                                self.pipeline(gw))
            with Gateway(text, admin_port=admin) as gw2:
                time.sleep(1.5)
                self.assertEqual(len(rx.records()), 1)
                self.assertEqual(self.pipeline(gw2)["ingest_log"]["replayed"], 0)

    def test_ids_stay_unique_across_restarts(self):
        # Killed at once after delivery, a reading may come again (at least once), always
        # under its own id: one id never names two readings, and every reading arrives.
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            for round_ in range(3):
                gw = Gateway(text, admin_port=admin)
                with gw:
                    self.post(gw, "pump-1", list(range(round_ * 100, round_ * 100 + 100)))
                    target = (round_ + 1) * 100
                    self.assertTrue(wait_until(lambda: len({r["id"] for r in rx.records()}) >= target, timeout=5))
                    gw.proc.send_signal(signal.SIGKILL)
                    gw.proc.wait(5)
            with Gateway(text, admin_port=admin):
                time.sleep(0.5)
            by_id = {}
            for r in rx.records():
                self.assertEqual(by_id.setdefault(r["id"], r["value"]), r["value"])
            self.assertEqual(sorted(by_id.values()), list(range(300)))

DETECT = """      - filter: "value > -1000000"
      - detect: { name: spike, method: robust_zscore, field: value, history: 20, warmup: 20, threshold: 6 }"""
NORMAL = [10 + (i % 5) * 0.1 for i in range(30)]


class DetectorState(DurableCase):
    """A detector's history survives restarts (docs/edge.md "Detector state"): no second
    warm-up after SIGTERM, kill -9 or a reload that changes the pipeline."""

    def config(self, sink_port, state_every="30s", stages=DETECT, **kw):
        text, port, admin = super().config(sink_port, stages=stages, **kw)
        return text.replace("edge:\n", "edge:\n  state_every: %s\n" % state_every), port, admin

    def state_file(self):
        return os.path.join(self.data, "state", "raw.state")

    def events(self, rx):
        return [r for r in rx.records() if r.get("detector") == "spike" and "rule" not in r]

    def learn(self, gw, rx):
        """Thirty normal readings of pump-1, delivered: its history is warm."""
        self.post(gw, "pump-1", NORMAL)
        self.assertTrue(wait_until(lambda: len(rx.records()) == 30, timeout=5))

    def learn_and_stop(self, text, admin, rx):
        """A gateway that learns, then stops cleanly (its state saved)."""
        gw = Gateway(text, admin_port=admin)
        with gw:
            self.learn(gw, rx)
            gw.stop()

    def spike_is_judged(self, gw, rx):
        # Two readings where a warm-up would need twenty: only a restored history judges them.
        self.post(gw, "pump-1", [10.1, 50])
        self.assertTrue(wait_until(lambda: len(self.events(rx)) == 1, timeout=5), rx.records()[-3:])
        event = self.events(rx)[0]
        self.assertEqual(event["value"], 50)
        self.assertGreater(event["score"], 6)

    def test_the_history_survives_sigterm(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            self.learn_and_stop(text, admin, rx)
            self.assertTrue(os.path.getsize(self.state_file()) > 20 * 8)
            with Gateway(text, admin_port=admin) as gw2:
                self.assertIn("resumes the saved state of 1 series", gw2.log_text())
                self.spike_is_judged(gw2, rx)

    def test_a_large_state_is_saved_less_often_than_state_every(self):
        # docs/edge.md "Detector state across restarts": each save writes the whole file, and
        # saves write at most about 100 KiB/s on average (flash wears by what is written): a
        # state of some 300 KB with state_every 100ms is saved every few seconds.
        stages = DETECT.replace("history: 20, warmup: 20", "history: 100, warmup: 20")
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, state_every="100ms", stages=stages)
            with Gateway(text, admin_port=admin) as gw:
                t0 = int(time.time() * 1000) - 1_000_000

                def post_round(k, values=1):
                    lines = "".join("temperature,device=d%d value=%d %d\n" % (d, 10 + (v + d) % 3, (t0 + k * 1000 + v) * 1_000_000)
                                    for d in range(300) for v in range(values))
                    r = http_request(gw.port, "POST", "/ingest/x", body=lines.encode(),
                                     headers={"Content-Type": "text/plain"})
                    self.assertEqual(r.status, 202, r.body)

                for k in range(4):
                    post_round(k - 10, values=25)  # every history full (100 values)
                self.assertTrue(wait_until(lambda: os.path.exists(self.state_file())
                                           and os.path.getsize(self.state_file()) > 200_000, timeout=10))
                inodes = {os.stat(self.state_file()).st_ino}
                end = time.monotonic() + 2.5
                k = 1
                while time.monotonic() < end:  # the detectors learn all along
                    post_round(k)
                    k += 1
                    for _ in range(5):
                        inodes.add(os.stat(self.state_file()).st_ino)  # each save renames a new file in
                        time.sleep(0.02)
                self.assertLessEqual(len(inodes), 2, "%d saves in 2.5 s" % len(inodes))

    def test_the_history_survives_kill_9(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, state_every="200ms")
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.learn(gw, rx)
                self.assertTrue(wait_until(lambda: os.path.exists(self.state_file()), timeout=5))
                time.sleep(0.5)  # a save after the last reading
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            with Gateway(text, admin_port=admin) as gw2:
                self.spike_is_judged(gw2, rx)

    def test_the_ingest_log_keeps_what_the_saved_state_has_not_learned(self):
        # No save in the gateway's life (state_every 1h): after kill -9 the detector learns
        # the readings again from the ingest log, each once, and judges at once.
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, state_every="1h")
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.learn(gw, rx)
                time.sleep(0.3)
                self.assertEqual(self.ingest(gw)["frames"], 1)  # kept: the state has not been saved
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            self.assertFalse(os.path.exists(self.state_file()))
            with Gateway(text, admin_port=admin) as gw2:
                self.assertEqual(self.ingest(gw2)["replayed"], 30)
                self.spike_is_judged(gw2, rx)
                # The detector's history is the 30 readings once, not twice: the spike's
                # baseline is their median.
                self.assertAlmostEqual(self.events(rx)[0]["baseline"], 10.2, places=6)
                # A clean stop saves the state; then the log is trimmed.
                gw2.stop()
            self.assertTrue(os.path.exists(self.state_file()))
            with Gateway(text, admin_port=admin) as gw3:
                self.assertEqual(self.ingest(gw3)["replayed"], 0)

    def test_a_changed_pipeline_keeps_its_detectors_history(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            with Gateway(text, admin_port=admin) as gw:
                self.learn(gw, rx)
                changed = text.replace('"value > -1000000"', '"value > -999999"')
                self.assertNotEqual(changed, text)
                gw.reload_file(changed)
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.spike_is_judged(gw, rx)

    def test_a_damaged_state_file_is_said_and_the_detector_warms_up_again(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            self.learn_and_stop(text, admin, rx)
            with open(self.state_file(), "r+b") as f:
                f.seek(40)
                f.write(b"\xff\xff\xff\xff")
            with Gateway(text, admin_port=admin) as gw2:
                self.assertIn("detectors warm up again", gw2.log_text())
                self.assertIn("damaged", gw2.log_text())
                self.post(gw2, "pump-1", [10.1, 50])  # warming up: not judged
                self.assertTrue(wait_until(lambda: len(rx.records()) == 32, timeout=5))
                self.assertEqual(self.events(rx), [])
                self.post(gw2, "pump-1", NORMAL)  # warmed up again
                self.assertTrue(wait_until(lambda: len(rx.records()) == 62, timeout=5))
                # The next save replaces the damaged file.
                gw2.stop()
            with Gateway(text, admin_port=admin) as gw3:
                self.assertIn("resumes the saved state of 1 series", gw3.log_text())

    RULE = """rules:
  - name: alarm
    when: "event.detector == 'spike'"
    hold_off: 1h
    actions:
      - forward: { to: uplink }
"""

    def rule(self, gw):
        return [r for r in gw.admin("GET", "/edge", token=TOKEN).json()["rules"] if r["name"] == "alarm"][0]

    def alarms(self, rx):
        return [r for r in rx.records() if r.get("rule") == "alarm"]

    def test_a_rule_hold_off_survives_sigterm_and_kill_9(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, state_every="200ms")
            text = text.replace("routes:\n", self.RULE + "routes:\n")
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.post(gw, "pump-1", NORMAL)
                self.spike_is_judged(gw, rx)
                self.assertTrue(wait_until(lambda: len(self.alarms(rx)) == 1, timeout=5))
                gw.stop()
            with Gateway(text, admin_port=admin) as gw2:
                # Said when its worker gives the pipeline its rules, which may follow "serving".
                self.assertTrue(wait_until(lambda: "its rules resume 1 hold-offs" in gw2.log_text(), timeout=5),
                                gw2.log_text())
                self.post(gw2, "pump-1", [60])  # within the hour: held back
                self.assertTrue(wait_until(lambda: self.rule(gw2)["suppressed"] == 1, timeout=5), self.rule(gw2))
                self.assertEqual(self.rule(gw2)["fired"], 0)
                # Another device has a hold-off of its own.
                self.post(gw2, "pump-2", NORMAL + [50])
                self.assertTrue(wait_until(lambda: self.rule(gw2)["fired"] == 1, timeout=5), self.rule(gw2))
                time.sleep(0.6)  # saved (state_every 200ms)
                gw2.proc.send_signal(signal.SIGKILL)
                gw2.proc.wait(5)
            with Gateway(text, admin_port=admin) as gw3:
                self.post(gw3, "pump-2", [70])
                self.post(gw3, "pump-1", [70])
                self.assertTrue(wait_until(lambda: self.rule(gw3)["suppressed"] == 2, timeout=5), self.rule(gw3))
                self.assertEqual(self.rule(gw3)["fired"], 0)
                self.assertEqual(len(self.alarms(rx)), 2)

    def post_lines(self, gw, lines):
        r = http_request(gw.port, "POST", "/ingest/x", body="\n".join(lines).encode(),
                         headers={"Content-Type": "text/plain"}, timeout=30)
        self.assertEqual(r.status, 202, r.body)

    def detect_stage(self, gw):
        return self.pipeline_status(gw)["stages"][1]

    def pipeline_status(self, gw):
        return gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]

    def test_a_burst_of_reloads_hands_the_histories_down_the_line(self):
        # Outsider finding: ten reloads back to back, each changing the pipeline, left the
        # last one with no history at all (and saved that).
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, durable=False)
            base = (int(time.time()) - 3600) * 1000
            with Gateway(text, admin_port=admin) as gw:
                lines = ["temperature,device=d%d value=%r %d" % (d, 10 + (i % 5) * 0.1, (base + i) * 10**6)
                         for i in range(25) for d in range(2000)]
                for at in range(0, len(lines), 10000):
                    self.post_lines(gw, lines[at:at + 10000])
                self.assertTrue(wait_until(lambda: self.pipeline_status(gw)["series"] == 2000, timeout=10))
                # No wait for the readings to run: those a replaced pipeline had not run yet
                # go to its successor (in memory: no ingest log runs them again).
                for i in range(10):
                    gw.reload_file(text.replace("threshold: 6", "threshold: %d" % (7 + i % 2)))
                    self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                time.sleep(0.5)
                self.post_lines(gw, ["temperature,device=d1 value=500 %d" % ((base + 100) * 10**6)])
                self.assertTrue(wait_until(lambda: self.detect_stage(gw)["events"] == 1, timeout=5),
                                self.pipeline_status(gw))
                self.assertEqual(self.pipeline_status(gw)["series"], 2000)
                # Every reading reached the sink once (none lost in the hand-overs).
                self.assertTrue(wait_until(lambda: len(rx.records()) >= 50_001, timeout=10), (len(rx.records()), self.pipeline_status(gw), gw.admin("GET", "/edge", token=TOKEN).json()["sinks"]))
                time.sleep(0.3)
                self.assertEqual(len({r["id"] for r in rx.records() if r["kind"] == "reading"}), 50_001)

    def test_a_reading_timed_ahead_does_not_blind_its_series_after_a_restart(self):
        # Outsider finding: a reading four minutes ahead (inside max_future) made every later
        # reading of its series look like a replay after a restart: neither judged nor learned.
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.post(gw, "pump-1", NORMAL)
                ahead = int(time.time() * 1000) + 240_000
                r = http_request(gw.port, "POST", "/ingest/pump-1", body=json.dumps({"value": 10.1, "ts": ahead}),
                                 headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 202)
                self.assertTrue(wait_until(lambda: len(rx.records()) == 31, timeout=5))
                gw.stop()
            with Gateway(text, admin_port=admin) as gw2:
                self.spike_is_judged(gw2, rx)
                self.assertEqual(self.detect_stage(gw2)["replayed"], 0)

    def test_a_fifo_in_place_of_the_state_file_does_not_hold_the_start(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            os.makedirs(os.path.dirname(self.state_file()))
            os.mkfifo(self.state_file())
            with Gateway(text, admin_port=admin) as gw:
                self.assertIn("is not a regular file", gw.log_text())
                self.post(gw, "pump-1", [1, 2])
                self.assertTrue(wait_until(lambda: len(rx.records()) == 2, timeout=5))

    def test_a_planted_link_at_the_temporary_file_is_not_followed(self):
        victim = os.path.join(self.data, "victim.txt")
        with open(victim, "w") as f:
            f.write("keep me")
        os.makedirs(os.path.dirname(self.state_file()))
        os.symlink(victim, self.state_file() + ".tmp")
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                # A leftover temporary file (a save a crash cut) is removed at start.
                self.assertFalse(os.path.lexists(self.state_file() + ".tmp"))
                os.symlink(victim, self.state_file() + ".tmp")  # planted while it runs
                self.learn(gw, rx)
                gw.stop()
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me")
        self.assertFalse(os.path.lexists(self.state_file() + ".tmp"))
        self.assertGreater(os.path.getsize(self.state_file()), 20 * 8)

    def test_another_pipelines_state_file_is_refused(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            self.learn_and_stop(text, admin, rx)
            other = text.replace("name: raw", "name: other")
            shutil.copy(self.state_file(), os.path.join(self.data, "state", "other.state"))
            with Gateway(other, admin_port=admin) as gw2:
                self.assertIn("it holds pipeline 'raw's state, not this one's", gw2.log_text())
                self.post(gw2, "pump-1", [10.1, 50])  # warming up: not judged
                self.assertTrue(wait_until(lambda: len(rx.records()) == 32, timeout=5))
                self.assertEqual(self.events(rx), [])

    def test_series_that_had_not_warmed_up_are_not_restored(self):
        # Outsider finding: a flood of invented devices (one reading each) was saved and
        # restored, filling the series table again at every start.
        with Receiver() as rx:
            text, port, admin = self.config(rx.port)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.post(gw, "pump-1", NORMAL)
                self.post_lines(gw, ["temperature,device=flood%d value=1" % d for d in range(500)])
                self.assertTrue(wait_until(lambda: self.pipeline_status(gw)["series"] == 501, timeout=5))
                gw.stop()
            with Gateway(text, admin_port=admin) as gw2:
                self.assertIn("saved state of 1 series", gw2.log_text())
                self.assertTrue(wait_until(lambda: self.pipeline_status(gw2)["series"] == 1, timeout=5))

    def test_a_removed_pipeline_takes_its_state_file_with_it(self):
        with Receiver() as rx:
            text, port, admin = self.config(rx.port, state_every="200ms")
            with Gateway(text, admin_port=admin) as gw:
                self.post(gw, "pump-1", NORMAL)
                self.assertTrue(wait_until(lambda: os.path.exists(self.state_file()), timeout=5))
                renamed = text.replace("name: raw", "name: other")
                self.assertNotEqual(renamed, text)
                gw.reload_file(renamed)
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertTrue(wait_until(lambda: not os.path.exists(self.state_file()), timeout=5))


MQTT_CONFIG = """
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
    client_id: gw-durable
    reconnect: { initial: 100ms, max: 300ms }
    subscribe:
      - { topic: "plant/+/vibration", qos: 1, format: json, metric: vibration }
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 500, max_delay: 50ms }
    retry: { initial: 50ms, max: 100ms }
    queue: { durable: true, max_bytes: 64MiB }
pipelines:
  - name: pump-health
    from: [ plant ]
    stages:
      - window: { tumbling: 5s, by: [ device, metric ], aggregates: [ count ] }
    to: [ uplink ]
edge:
  data_dir: @DATA@
"""


class MqttKill9(DurableCase):
    def test_every_message_the_broker_published_is_counted_after_a_kill_mid_stream(self):
        total = 1500
        base = (int(time.time()) - 3600) * 1000
        per_window = {}
        lines = []
        for i in range(total):
            # 250 readings per five-second window (the first and last partial). Five seconds, not one: a window also closes after
            # one window length of wall time without readings, and the acknowledgements wait for
            # fsync, which a loaded CI disk can hold for a second; the readings after such a pause
            # would be late for their closed window (counted and dropped, by design).
            ts = base + i * 20
            start = ts // 5000 * 5000  # windows start on whole multiples of their length
            per_window[start] = per_window.get(start, 0) + 1
            lines.append(json.dumps({"value": 1, "ts": ts}))
        # The broker keeps every message for the absent client (its default drops past 1,000).
        with Mosquitto(extra="max_queued_messages 0") as broker, Receiver() as rx:
            admin = free_port()
            text = render(MQTT_CONFIG, host=LOCALHOST, port=free_port(), admin=admin, token=TOKEN,
                          url=broker.url(), sink=rx.port, data=self.data)
            gw = Gateway(text, admin_port=admin)
            with gw:
                self.assertTrue(wait_until(lambda: any(c.get("connected") for c in gw.admin(
                    "GET", "/edge", token=TOKEN).json()["connectors"]), timeout=5))
                publisher = threading.Thread(target=broker.publish_many,
                                             args=("plant/pump-1/vibration", lines), kwargs={"qos": 1})
                publisher.start()
                self.assertTrue(wait_until(lambda: gw.admin("GET", "/edge", token=TOKEN).json()
                                           ["pipelines"][0]["readings_in"] >= 500, timeout=10))
                gw.proc.send_signal(signal.SIGKILL)  # mid-stream: windows open, acks in flight
                gw.proc.wait(5)
                publisher.join(30)
            with Gateway(text, admin_port=admin) as gw2:
                def counted():
                    best = {}
                    for r in rx.records():
                        best[r["ts"]] = max(best.get(r["ts"], 0), r["count"])
                    return best
                # The last window closes after a second of wall time without readings.
                late = lambda: sum(st["late"] for st in gw2.admin("GET", "/edge", token=TOKEN).json()  # noqa: E731
                                   ["pipelines"][0]["stages"])
                # The last window closes after five seconds of wall time without readings.
                def complete():
                    best = counted()
                    return all(best.get(start, 0) >= n for start, n in per_window.items())
                self.assertTrue(wait_until(complete, timeout=25),
                                (counted(), late(), gw2.log_text()[-2000:], broker.log()[-2000:]))
                best = counted()
                for start, n in per_window.items():
                    self.assertGreaterEqual(best.get(start, 0), n, (start, late()))  # nothing acknowledged was lost
                # At least once: a reading logged but not yet acknowledged when the process died
                # comes again from the broker; the broker holds at most 256 unacknowledged.
                self.assertLessEqual(sum(best.values()), total + 256)



SLOW_SYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
/* fdatasync as a slow disk does it: SLOW_FDATASYNC_MS of waiting first. */
int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  const char* ms = getenv("SLOW_FDATASYNC_MS");
  if (ms) usleep((useconds_t)atoi(ms) * 1000u);
  return real(fd);
}
"""


def slow_sync_library(directory):
    """Builds the LD_PRELOAD shim that makes every fdatasync wait (the C compiler that built the
    gateway is there to build it)."""
    source = os.path.join(directory, "slow_sync.c")
    library = os.path.join(directory, "slow_sync.so")
    with open(source, "w") as f:
        f.write(SLOW_SYNC_C)
    import subprocess
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O1", "-o", library, source, "-ldl"],
                   check=True, timeout=60)
    return library


class MqttSlowDisk(DurableCase):
    def test_the_connector_reads_on_while_the_ingest_log_syncs(self):
        # Acknowledgements wait for the fsync; reading does not: the messages that come while
        # a sync is pending are read and appended at once (and share the next sync), so a slow
        # disk does not hold the broker back until its queue for the client overflows.
        library = slow_sync_library(self.data)
        with Mosquitto(extra="max_queued_messages 0") as broker, Receiver() as rx:
            admin = free_port()
            text = render(MQTT_CONFIG, host=LOCALHOST, port=free_port(), admin=admin, token=TOKEN,
                          url=broker.url(), sink=rx.port, data=self.data)
            gw = Gateway(text, admin_port=admin, env={"LD_PRELOAD": library, "SLOW_FDATASYNC_MS": "3000"})
            with gw:
                def plant():
                    return [c for c in gw.admin("GET", "/edge", token=TOKEN).json()["connectors"]
                            if c["name"] == "plant"][0]
                self.assertTrue(wait_until(lambda: plant().get("connected"), timeout=5))
                base = (int(time.time()) - 3600) * 1000
                broker.publish("plant/pump-1/vibration", json.dumps({"value": 1, "ts": base}), qos=1)
                self.assertTrue(wait_until(lambda: plant()["messages"] == 1, timeout=5))
                # Its sync takes 3 s; these come meanwhile.
                broker.publish_many("plant/pump-1/vibration",
                                    [json.dumps({"value": 1, "ts": base + i}) for i in range(1, 21)], qos=1)
                self.assertTrue(wait_until(lambda: plant()["messages"] == 21, timeout=1.5), plant())
                # Each is acknowledged once on disk: none comes twice, all arrive.
                self.assertTrue(wait_until(
                    lambda: gw.admin("GET", "/edge", token=TOKEN).json()["pipelines"][0]["readings_in"] == 21,
                    timeout=5))
                time.sleep(7)  # the syncs complete and the broker has its PUBACKs
                self.assertEqual(plant()["redelivered"], 0)
                self.assertEqual(plant()["messages"], 21)


if __name__ == "__main__":
    unittest.main()
