"""The Modbus TCP connector (docs/edge.md "Modbus") against a Modbus TCP server the harness
starts on a free port: every register type, byte and word order, scale and offset; exceptions
and timeouts counted per register; a device that stops answering does not stall another; a
server that goes away and comes back; config errors with their line."""

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCALHOST, Gateway, ModbusServer, Receiver, assert_refused_at, check_config, free_port,  # noqa: E402
                     http_request, render, wait_until)

TOKEN = "Modbus-Adm1n-T0ken-0123456789"

CONFIG = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - name: pump-plc
    kind: modbus_tcp
    address: @HOST@:@PLC@
    unit_id: 1
    poll: 100ms
    timeout: 300ms
    reconnect: { initial: 100ms, max: 300ms }
    registers:
      - { name: flow, table: holding, address: 0, type: float32, word_order: big, unit: m3/h }
      - { name: flow_cdab, table: holding, address: 2, type: float32, word_order: little }
      - { name: temperature, table: input, address: 10, type: int16, scale: 0.1, unit: degC }
      - { name: hours, table: input, address: 20, type: uint32, byte_order: little }
      - { name: running, table: coil, address: 5 }
      - { name: missing, table: holding, address: 100 }
  - name: other-plc
    kind: modbus_tcp
    address: @HOST@:@OTHER@
    device: boiler-2
    poll: 100ms
    timeout: 300ms
    registers:
      - { name: pressure, table: holding, address: 0, type: uint16, scale: 0.01 }
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 1000, max_delay: 50ms }
pipelines:
  - { name: raw, from: [ pump-plc, other-plc ], stages: [], to: [ uplink ] }
access_log: { enabled: false }
"""


def regs_of(fmt, value):
    raw = struct.pack(fmt, value)
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def connector(gw, name):
    for c in gw.admin("GET", "/edge", token=TOKEN).json()["connectors"]:
        if c["name"] == name:
            return c
    raise AssertionError(name)


def register(gw, connector_name, name):
    return next(r for r in connector(gw, connector_name)["registers"] if r["name"] == name)


class ModbusPolling(unittest.TestCase):
    def setUp(self):
        self.plc = ModbusServer().start()
        self.other = ModbusServer().start()
        self.plc.set_registers(self.plc.holding, 0, regs_of(">f", 12.5))
        cdab = regs_of(">f", -3.25)
        self.plc.set_registers(self.plc.holding, 2, [cdab[1], cdab[0]])
        self.plc.set_registers(self.plc.inputs, 10, regs_of(">h", -215))
        le = regs_of("<I", 123456)  # bytes of each register swapped, words most significant first
        self.plc.set_registers(self.plc.inputs, 20, [le[1], le[0]])
        self.plc.coils[5] = 1
        self.other.set_registers(self.other.holding, 0, [10132])

    def tearDown(self):
        self.plc.stop()
        self.other.stop()

    def gateway(self, rx, extra_registers=0):
        port, admin = free_port(), free_port()
        text = render(CONFIG, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, PLC=self.plc.port,
                      OTHER=self.other.port, SINK=rx.port)
        more = "".join("      - { name: extra%d, table: holding, address: %d }\n" % (i, 200 + i)
                       for i in range(extra_registers))
        text = text.replace("      - { name: missing, table: holding, address: 100 }\n",
                            "      - { name: missing, table: holding, address: 100 }\n" + more)
        return Gateway(text, admin_port=admin)

    @contextlib.contextmanager
    def reading_a_silent_device(self, rx, timeout="300ms", extra_registers=0):
        """A running gateway whose poller is in a read of pump-plc that waits its `timeout`:
        the device went silent after two polls."""
        gw = self.gateway(rx, extra_registers)
        gw.config_text = gw.config_text.replace("timeout: 300ms", "timeout: " + timeout, 1)
        with gw:
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["polls"] >= 2, timeout=5))
            self.plc.silent = True
            time.sleep(0.5)
            yield gw

    def latest(self, rx, device, metric):
        found = [r for r in rx.records() if r["device"] == device and r["metric"] == metric]
        return found[-1] if found else None

    def test_every_type_and_order_is_read_as_written(self):
        with Receiver() as rx, self.gateway(rx) as gw:
            self.assertTrue(wait_until(lambda: self.latest(rx, "boiler-2", "pressure"), timeout=5))
            self.assertTrue(wait_until(lambda: self.latest(rx, "pump-plc", "running"), timeout=5))
            self.assertEqual(self.latest(rx, "pump-plc", "flow")["value"], 12.5)
            self.assertEqual(self.latest(rx, "pump-plc", "flow")["attrs"], {"unit": "m3/h"})
            self.assertEqual(self.latest(rx, "pump-plc", "flow_cdab")["value"], -3.25)
            self.assertAlmostEqual(self.latest(rx, "pump-plc", "temperature")["value"], -21.5)
            self.assertEqual(self.latest(rx, "pump-plc", "hours")["value"], 123456)
            self.assertEqual(self.latest(rx, "pump-plc", "running")["value"], 1)
            self.assertAlmostEqual(self.latest(rx, "boiler-2", "pressure")["value"], 101.32)
            self.assertIsNone(self.latest(rx, "pump-plc", "missing"))
            # A register the device lacks: its exception is counted, the others go on.
            missing = register(gw, "pump-plc", "missing")
            self.assertGreater(missing["exceptions"], 0)
            self.assertEqual(missing["last_exception"], 2)
            self.assertIn("register 'missing' (holding 100)", connector(gw, "pump-plc")["last_error"])
            # New values are picked up by the next polls.
            self.plc.set_registers(self.plc.holding, 0, regs_of(">f", 99.0))
            self.assertTrue(wait_until(lambda: self.latest(rx, "pump-plc", "flow")["value"] == 99.0, timeout=5))

    def test_registers_failing_at_every_poll_log_each_error_once_a_minute(self):
        # Four registers the device lacks, failing in turn at every poll: an outside test saw
        # one log line per register per poll (441 lines in 8 s at poll: 20ms).
        with Receiver() as rx, self.gateway(rx, extra_registers=3) as gw:
            self.assertTrue(wait_until(lambda: register(gw, "pump-plc", "extra2")["exceptions"] >= 10, timeout=5))
            lines = [line for line in gw.log_text().split("\n") if "Illegal data address" in line]
            self.assertEqual(len(lines), 4, lines)
            self.assertEqual(len({line.split("register ")[1] for line in lines}), 4, lines)

    def test_a_connector_stopped_through_the_admin_api_polls_no_more_until_started(self):
        with Receiver() as rx, self.gateway(rx) as gw:
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["polls"] >= 2, timeout=5))
            r = gw.admin("POST", "/edge/connectors/pump-plc/stop", token=TOKEN)
            self.assertEqual(r.status, 200, r.body)
            time.sleep(0.3)  # a poll under way finishes
            c = connector(gw, "pump-plc")
            self.assertTrue(c["stopped"])
            self.assertFalse(c["connected"])
            polls, other = c["polls"], connector(gw, "other-plc")["polls"]
            flows = len([r for r in rx.records() if r["metric"] == "flow"])
            time.sleep(0.6)
            self.assertEqual(connector(gw, "pump-plc")["polls"], polls)  # counters kept, no polls
            self.assertEqual(len([r for r in rx.records() if r["metric"] == "flow"]), flows)
            self.assertGreater(connector(gw, "other-plc")["polls"], other)  # the other device goes on
            self.assertEqual(gw.admin("POST", "/edge/connectors/pump-plc/start", token=TOKEN).status, 200)
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["polls"] > polls + 1, timeout=5))
            self.assertTrue(wait_until(lambda: len([r for r in rx.records() if r["metric"] == "flow"]) > flows,
                                       timeout=5))
            self.assertFalse(connector(gw, "pump-plc")["stopped"])

    def test_a_device_that_stops_answering_does_not_stall_another(self):
        with Receiver() as rx, self.gateway(rx) as gw:
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["polls"] >= 3, timeout=5))
            self.plc.silent = True
            time.sleep(0.5)
            before = connector(gw, "other-plc")["polls"]
            time.sleep(2)
            after = connector(gw, "other-plc")["polls"]
            self.assertGreaterEqual(after - before, 14)  # about 20 at 100 ms: not held up by the silent one
            flow = register(gw, "pump-plc", "flow")
            self.assertGreater(flow["timeouts"], 0)
            self.assertIn("no answer in time", connector(gw, "pump-plc")["last_error"])
            self.assertGreater(connector(gw, "pump-plc")["skipped_polls"], 0)  # 6 reads of 300 ms per 100 ms poll
            self.plc.silent = False
            reads = register(gw, "pump-plc", "flow")["reads"]
            self.assertTrue(wait_until(lambda: register(gw, "pump-plc", "flow")["reads"] > reads + 2, timeout=5))

    def test_one_late_answer_costs_one_reading_not_the_stream(self):
        self.plc.latency = 0.005  # a device that takes 5 ms to answer: late answers stay queued
        with Receiver() as rx, self.gateway(rx) as gw:
            self.assertTrue(wait_until(lambda: register(gw, "pump-plc", "flow")["reads"] >= 3, timeout=5))
            for _ in range(3):
                self.plc.delay_next = 0.4  # past the 300 ms timeout: the answer comes late
                time.sleep(1)
            reads = register(gw, "pump-plc", "flow")["reads"]
            # Back in step at once (the old code took every later answer for the one before and
            # refused it, for as long as the connection lasted).
            self.assertTrue(wait_until(lambda: register(gw, "pump-plc", "flow")["reads"] >= reads + 5, timeout=3),
                            connector(gw, "pump-plc"))
            self.assertTrue(wait_until(lambda: "last_error" not in connector(gw, "pump-plc") or
                                       "missing" in connector(gw, "pump-plc")["last_error"], timeout=3))

    def test_a_silent_device_does_not_hold_up_shutdown(self):
        # A round of 21 reads: 6 s of timeouts when silent.
        with Receiver() as rx, self.reading_a_silent_device(rx, extra_registers=15) as gw:
            started = time.monotonic()
            gw.stop()
            self.assertLess(time.monotonic() - started, 1.5)  # one timeout, not a round of them

    def test_a_read_on_a_silent_device_is_cut_short_by_shutdown_whatever_its_timeout(self):
        # The read of a device that never answers used to hold the process for its whole
        # timeout after "stopped" (a minute with timeout: 60s), keeping edge.data_dir's locks:
        # a supervisor's new instance found them held. stop() now shuts the socket down.
        with Receiver() as rx, self.reading_a_silent_device(rx, timeout="30s") as gw:
            started = time.monotonic()
            self.assertEqual(gw.stop(), 0)
            self.assertLess(time.monotonic() - started, 5)
            self.assertNotIn("no answer in time", gw.log_text())  # the cut read is not the device's fault

    def test_stop_and_start_do_not_wait_on_a_read_a_silent_device_holds(self):
        # The stopped poller's thread is in a read of 3 s; the start that follows used to join
        # it on the main thread first, and every admin request and reload waited with it.
        with Receiver() as rx, self.reading_a_silent_device(rx, timeout="3s") as gw:
            for action in ("stop", "start", "stop", "start"):
                started = time.monotonic()
                r = gw.admin("POST", "/edge/connectors/pump-plc/" + action, token=TOKEN, timeout=10)
                self.assertEqual(r.status, 200, r.body)
                self.assertLess(time.monotonic() - started, 1.0, action)
            self.plc.silent = False
            polls = connector(gw, "pump-plc")["polls"]
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["polls"] > polls + 1, timeout=10))

    def test_a_connect_to_a_host_that_drops_syns_is_cut_short_by_stop_and_shutdown(self):
        # A listener whose accept queue is full drops SYNs, as a firewall does: libmodbus's own
        # connect waited out the whole timeout (30 s here) before a stop or shutdown could act.
        blackhole = socket.socket()
        blackhole.bind((LOCALHOST, 0))
        blackhole.listen(0)
        fillers = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect((LOCALHOST, blackhole.getsockname()[1]))
            except BlockingIOError:
                pass
            fillers.append(f)
        try:
            with Receiver() as rx:
                gw = self.gateway(rx)
                other = "address: %s:%d\n" % (LOCALHOST, self.other.port)
                gw.config_text = gw.config_text.replace(
                    other + "    device: boiler-2\n    poll: 100ms\n    timeout: 300ms",
                    "address: %s:%d\n    device: boiler-2\n    poll: 100ms\n    timeout: 30s"
                    % (LOCALHOST, blackhole.getsockname()[1]))
                self.assertIn("timeout: 30s", gw.config_text)
                with gw:
                    self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["polls"] >= 2, timeout=5))
                    time.sleep(0.3)
                    self.assertFalse(connector(gw, "other-plc")["connected"])
                    for action in ("stop", "start"):
                        started = time.monotonic()
                        r = gw.admin("POST", "/edge/connectors/other-plc/" + action, token=TOKEN, timeout=10)
                        self.assertEqual(r.status, 200, r.body)
                        self.assertLess(time.monotonic() - started, 1.0, action)
                    time.sleep(0.3)  # connecting again
                    started = time.monotonic()
                    self.assertEqual(gw.stop(), 0)
                    self.assertLess(time.monotonic() - started, 3)
                    self.assertNotIn("cannot connect to", gw.log_text())  # the cut connect is no failure
        finally:
            for f in fillers:
                f.close()
            blackhole.close()

    def test_a_server_that_goes_away_is_connected_to_again(self):
        with Receiver() as rx, self.gateway(rx) as gw:
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["connected"], timeout=5))
            self.plc.stop()
            self.assertTrue(wait_until(lambda: not connector(gw, "pump-plc")["connected"], timeout=5))
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["connect_failures"] >= 2, timeout=5))
            self.plc.start()
            self.assertTrue(wait_until(lambda: connector(gw, "pump-plc")["connected"], timeout=5))
            reads = register(gw, "pump-plc", "flow")["reads"]
            self.assertTrue(wait_until(lambda: register(gw, "pump-plc", "flow")["reads"] > reads, timeout=5))


WRITES = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - name: pump-plc
    kind: modbus_tcp
    address: @HOST@:@PLC@
    poll: 100ms
    timeout: 300ms
    registers:
      - { name: flow, table: holding, address: 0, type: float32 }
      - { name: setpoint, table: holding, address: 30, type: int16, scale: 0.1, writable: true }
      - { name: speed, table: holding, address: 40, type: float32, word_order: little, writable: true }
      - { name: pump_on, table: coil, address: 6, writable: true }
      - { name: gone, table: holding, address: 50, writable: true }
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 1000, max_delay: 50ms }
pipelines:
  - { name: raw, from: [ pump-plc ], stages: [ { filter: "metric == 'flow'" } ], to: [ uplink ] }
rules:
  - name: throttle
    when: "value > 20"
    hold_off: 1h
    actions:
      - write: { connector: pump-plc, register: setpoint, value: "value * 2" }
      - write: { connector: pump-plc, register: speed, value: "value / 4" }
      - write: { connector: pump-plc, register: pump_on, value: "value < 0" }
  - name: broken
    when: "value > 20"
    hold_off: 1h
    actions:
      - write: { connector: pump-plc, register: gone, value: "1" }
access_log: { enabled: false }
"""


class ModbusWrites(unittest.TestCase):
    def test_rules_write_registers_the_config_marks_writable(self):
        plc = ModbusServer().start()
        try:
            plc.set_registers(plc.holding, 0, regs_of(">f", 25.5))
            plc.set_registers(plc.holding, 30, [0])
            plc.set_registers(plc.holding, 40, [0, 0])
            plc.coils[6] = 1  # address 50 is not there: the device answers exception 2
            with Receiver() as rx:
                port, admin = free_port(), free_port()
                text = render(WRITES, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, PLC=plc.port, SINK=rx.port)
                with Gateway(text, admin_port=admin) as gw:
                    def rules():
                        return {r["name"]: r for r in gw.admin("GET", "/edge", token=TOKEN).json()["rules"]}
                    self.assertTrue(wait_until(lambda: rules()["throttle"]["writes"] == 3, timeout=5), rules())
                    self.assertEqual(plc.holding[30], 510)  # 51.0 at a scale of 0.1
                    speed = regs_of(">f", 25.5 / 4)
                    self.assertEqual([plc.holding[40], plc.holding[41]], [speed[1], speed[0]])  # CDAB
                    self.assertEqual(plc.coils[6], 0)  # the condition was false: 0
                    kinds = sorted((w[0], w[1]) for w in plc.writes)
                    self.assertEqual(kinds, [("coil", 6), ("holding", 30), ("holding", 40)])
                    self.assertTrue(wait_until(lambda: rules()["broken"]["failed_actions"] == 1, timeout=5))
                    self.assertIn("writing register 'gone' (holding 50)", rules()["broken"]["last_error"])
                    regs = {r["name"]: r for r in connector(gw, "pump-plc")["registers"]}
                    self.assertEqual((regs["setpoint"]["writes"], regs["gone"]["write_failures"]), (1, 1))
                    self.assertNotIn("writes", regs["flow"])  # not writable: no write counters
                    # Hold-off: one write per hour however long the flow stays high.
                    time.sleep(0.5)
                    self.assertEqual(len(plc.writes), 3)
        finally:
            plc.stop()

    def test_writes_are_refused_at_load_unless_marked_writable(self):
        port, admin = free_port(), free_port()
        text = render(WRITES, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, PLC=free_port(), SINK=free_port())
        cases = [
            ("register: setpoint, value", "register: flow, value",
             "rule 'throttle' writes register 'flow' of connector 'pump-plc', which is not marked writable: true"),
            ("register: setpoint, value", "register: nope, value",
             "rule 'throttle' writes register 'nope', which connector 'pump-plc' does not have"),
            ("- write: { connector: pump-plc, register: setpoint", "- write: { connector: nowhere, register: setpoint",
             "rule 'throttle' writes through unknown connector 'nowhere'"),
            ('value: "value * 2"', 'value: "device"', "write.value gives a string, not a number"),
            ('value: "value * 2"', 'value: "valu * 2"', "unknown field 'valu'"),
            ("register: setpoint, value: \"value * 2\" }", "register: setpoint }", "write needs a 'value'"),
        ]
        assert_refused_at(self, text, cases)


ON_DEMAND = """
listeners:
  - name: public
    address: @HOST@:@PORT@
admin:
  address: @HOST@:@ADMIN@
  token: @TOKEN@
connectors:
  - { name: lab, kind: http, metric: command }
  - name: plc
    kind: modbus_tcp
    address: @HOST@:@PLC@
    poll: 200ms
    timeout: 300ms
    reconnect: { initial: 100ms, max: 500ms }
    registers:
      - { name: level, table: holding, address: 0 }
      - { name: setpoint, table: holding, address: 1, writable: true }
      - { name: pump_on, table: coil, address: 2, writable: true }
pipelines:
  - { name: commands, from: [ lab, plc ] }
rules:
  - name: set
    when: "device == 'ctl'"
    actions:
      - write: { connector: plc, register: setpoint, value: "value" }
  - name: switch
    when: "device == 'switch'"
    actions:
      - write: { connector: plc, register: pump_on, value: "value" }
access_log: { enabled: false }
routes:
  - { name: ingest, match: { path_prefix: /ingest/ }, ingest: lab }
"""


class ModbusWritesOnDemand(unittest.TestCase):
    """Writes fired through HTTP ingest, against a device that misbehaves (outsider findings,
    session 17)."""

    def start(self, plc, rx):
        port, admin = free_port(), free_port()
        text = render(ON_DEMAND, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, PLC=plc.port)
        return Gateway(text, admin_port=admin)

    def fire(self, gw, device, values):
        r = http_request(gw.port, "POST", "/ingest/" + device, body=json.dumps([{"value": v} for v in values]).encode(),
                         headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 202, r.body)

    def rules(self, gw):
        return {r["name"]: r for r in gw.admin("GET", "/edge", token=TOKEN).json()["rules"]}

    def test_a_stop_while_a_write_waits_on_a_silent_device_is_clean(self):
        # The poll thread outlived the runtime and the process died of SIGSEGV at exit.
        plc = ModbusServer().start()
        try:
            plc.set_registers(plc.holding, 0, [7, 0])
            with Receiver() as rx:
                gw = self.start(plc, rx)
                with gw:
                    self.assertTrue(wait_until(lambda: connector(gw, "plc")["polls"] >= 2, timeout=5))
                    plc.silent = True
                    self.fire(gw, "ctl", list(range(100)))
                    time.sleep(0.5)
                    gw.proc.send_signal(signal.SIGTERM)
                    self.assertEqual(gw.proc.wait(timeout=10), 0, gw.log_text()[-800:])
        finally:
            plc.stop()

    def test_a_write_while_the_device_is_down_fails_at_once_and_reconnects_keep_backing_off(self):
        # A waiting write woke the reconnect pause at once, again and again: thousands of
        # connects a second, and the write never failed.
        plc = ModbusServer().start()
        plc_port = plc.port
        plc.stop()
        with Receiver() as rx:
            port, admin = free_port(), free_port()
            text = render(ON_DEMAND, HOST=LOCALHOST, PORT=port, ADMIN=admin, TOKEN=TOKEN, PLC=plc_port)
            with Gateway(text, admin_port=admin) as gw:
                self.assertTrue(wait_until(lambda: connector(gw, "plc")["connect_failures"] >= 2, timeout=5))
                self.fire(gw, "ctl", [5])
                self.assertTrue(wait_until(lambda: self.rules(gw)["set"]["failed_actions"] == 1, timeout=3),
                                self.rules(gw)["set"])
                self.assertIn("not connected", self.rules(gw)["set"]["last_error"])
                before = connector(gw, "plc")["connect_failures"]
                time.sleep(2)
                # Pauses of 100 to 500 ms: at most about 20 attempts in 2 s, not thousands.
                self.assertLess(connector(gw, "plc")["connect_failures"] - before, 25)

    def test_coils_take_only_0_or_1_and_a_flood_keeps_the_newest_writes(self):
        plc = ModbusServer().start()
        plc.latency = 0.01  # each write takes a moment: the flood outruns them
        try:
            plc.set_registers(plc.holding, 0, [7, 0])
            plc.coils[2] = 0
            with Receiver() as rx:
                with self.start(plc, rx) as gw:
                    self.assertTrue(wait_until(lambda: connector(gw, "plc")["polls"] >= 1, timeout=5))
                    self.fire(gw, "switch", [2])
                    self.assertTrue(wait_until(lambda: self.rules(gw)["switch"]["failed_actions"] == 1, timeout=3))
                    self.assertIn("2 does not fit a coil (0 or 1", self.rules(gw)["switch"]["last_error"])
                    self.fire(gw, "switch", [1])
                    self.assertTrue(wait_until(lambda: plc.coils.get(2) == 1, timeout=3))
                    # 1,000 setpoints at once: the last one asked for is the one the device ends with.
                    self.fire(gw, "ctl", list(range(1000)))
                    self.assertTrue(wait_until(lambda: plc.holding.get(1) == 999, timeout=10),
                                    (plc.holding.get(1), self.rules(gw)["set"]))
                    self.assertTrue(wait_until(
                        lambda: self.rules(gw)["set"]["writes"] + self.rules(gw)["set"]["failed_actions"] == 1000,
                        timeout=5), self.rules(gw)["set"])
                    regs = {r["name"]: r for r in connector(gw, "plc")["registers"]}
                    rule = self.rules(gw)["set"]
                    self.assertEqual(regs["setpoint"]["write_failures"], rule["failed_actions"])
                    self.assertIn("newer ones came", rule["last_error"])
                    metrics = gw.admin("GET", "/metrics", token=TOKEN).text
                    self.assertIn('ganglion_edge_rule_total{rule="set",outcome="write"} %d' % rule["writes"], metrics)
        finally:
            plc.stop()


class ModbusConfigErrors(unittest.TestCase):
    def check(self, text):
        return check_config(text)

    def test_bad_register_maps_are_refused_with_their_line(self):
        text = render(CONFIG, HOST=LOCALHOST, PORT=free_port(), ADMIN=free_port(), TOKEN=TOKEN, PLC=1502,
                      OTHER=1503, SINK=free_port())
        code, out = self.check(text)
        self.assertEqual(code, 0, out)
        cases = [
            ("table: coil, address: 5 }", "table: coil, address: 5, type: float32 }", "a coil holds one bit: its type is bool"),
            ("table: holding, address: 100 }", "table: holding, address: 65535, type: float32 }",
             "a float32 at 65535 runs past address 65535"),
            ("table: input, address: 10, type: int16", "table: input, address: 10, writable: true, type: int16",
             "input registers are read-only"),
            ("type: uint32, byte_order: little", "type: uint48, byte_order: little", "type must be one of int16"),
            ("type: uint32, byte_order: little", "type: uint32, byte_order: middle", "byte_order must be big or little"),
            ("table: holding, address: 100 }", "table: eeprom, address: 100 }", "table must be one of holding"),
            ("{ name: flow_cdab,", "{ name: flow,", "duplicate register name 'flow'"),
            ("scale: 0.1, unit: degC", "scale: lots, unit: degC", "scale must be a finite number"),
            ("{ name: missing, table: holding, address: 100 }", "{ name: missing, table: holding }",
             "a register needs an 'address'"),
            ("{ name: missing, table: holding, address: 100 }", "{ name: '', table: holding, address: 100 }",
             "a register's name (its readings' metric) must be 1 to 256 characters"),
            ("type: int16, scale: 0.1", "type: int16, word_order: little, scale: 0.1",
             "word_order applies to 32- and 64-bit types, not int16"),
            ("table: coil, address: 5 }", "table: coil, address: 5, scale: 10 }", "a bool is 0 or 1, without scale"),
        ]
        assert_refused_at(self, text, cases)
        code, out = self.check(text.replace("    unit_id: 1\n", "    unit_id: 1\n    url: mqtt://x\n"))
        self.assertIn("'url' is a field of mqtt connectors, not modbus_tcp ones", out)
        code, out = self.check(text.replace("kind: modbus_tcp\n    address: 127.0.0.1:1502\n", "kind: modbus_tcp\n"))
        self.assertIn("a modbus_tcp connector needs 'address'", out)
        code, out = self.check(text.replace("    device: boiler-2\n", "    device: boiler-2\n    metric: x\n"))
        self.assertIn("'metric' is a field of http, mqtt or coap connectors, not modbus_tcp ones", out)


if __name__ == "__main__":
    unittest.main()
