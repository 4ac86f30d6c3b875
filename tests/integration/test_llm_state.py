"""LLM key state beyond one process: spend kept in SQLite across restarts (and kills), and
rates and budgets shared by several gateways on one Redis (started here on a free port)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Gateway, RedisServer, free_port, render, wait_until
from fake_provider import FakeProvider

ADMIN_TOKEN = "admin-token-for-tests"

CONFIG = """
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
providers:
  - name: main
    kind: openai
    base_url: http://@MAIN@/v1
    api_key: sk-provider-main
models:
  - name: dear
    targets: [ { provider: main, model: dear-model, price: { input: 1000, output: 1000 } } ]
keys:
  - name: team
    key: sk-gw-team
    budget: { usd: 0.05, period: month }
  - name: paced
    key: sk-gw-paced
    rpm: 4
admin:
  address: 127.0.0.1:@ADMIN@
  token: admin-token-for-tests
@STATE@
"""


def chat_body(text="echo: a b c", max_tokens=5):
    return json.dumps({"model": "dear", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": text}]})



def slowest_health_answer(test, gw, seconds, pause):
    """Polls the admin API's /healthz for `seconds`; the longest answer, in seconds (each
    must be a 200): how long something else held the admin API's thread."""
    slowest = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        test.assertEqual(gw.admin("GET", "/healthz").status, 200)
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(pause)
    return slowest

class StateCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.provider = FakeProvider(name="main").__enter__()
        cls.dir = tempfile.mkdtemp(prefix="ganglion-state-")

    @classmethod
    def tearDownClass(cls):
        cls.provider.__exit__(None, None, None)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def gateway(self, state):
        admin = free_port()
        text = render(CONFIG, port=free_port(), main=self.provider.address, admin=admin, state=state)
        return Gateway(text, admin_port=admin)

    def call(self, gw, key="sk-gw-team", **kw):
        return gw.request("POST", "/v1/chat/completions", body=chat_body(**kw),
                          headers={"Authorization": "Bearer " + key}, timeout=10)

    def key_state(self, gw, name="team"):
        """The key's row once no call holds a reservation (a call settles just after its
        last byte is sent)."""
        def read():
            keys = gw.admin("GET", "/llm/keys", token=ADMIN_TOKEN).json()["keys"]
            return {k["name"]: k for k in keys}[name]
        self.assertTrue(wait_until(lambda: read()["reserved_usd"] == "0.000000", timeout=3), read())
        return read()

    def spend_until_refused(self, gw):
        for _ in range(30):
            resp = self.call(gw)
            if resp.status == 429:
                return resp
            self.assertEqual(resp.status, 200, resp.body)
        self.fail("the budget never ran out")


class SqliteSpendTest(StateCase):
    """state.sqlite: what a key spent survives a restart, a kill, and stays exact."""

    def test_spend_survives_a_restart_and_the_budget_still_refuses(self):
        db = os.path.join(self.dir, "restart.db")
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            refused = self.spend_until_refused(gw)
            self.assertEqual(refused.json()["error"]["code"], "budget_exceeded")
            spent = self.key_state(gw)["spent_usd"]
            # Refused once what is left cannot cover the next call's bound (one token per
            # prompt byte plus its max_tokens), so some of the $0.05 stays unspent.
            self.assertGreater(float(spent), 0.01)
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            self.assertEqual(self.key_state(gw)["spent_usd"], spent)
            resp = self.call(gw)
            self.assertEqual(resp.status, 429)
            self.assertEqual(resp.json()["error"]["code"], "budget_exceeded")
            self.assertIn("spent $%s" % spent, resp.json()["error"]["message"])
        # The file is plain SQLite: operators can read it (picodollars, exact).
        rows = subprocess.run(["sqlite3", db, "SELECT key, kind, spent_pico FROM key_spend"],
                              capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(len(rows), 1)
        key, kind, pico = rows[0].split("|")
        self.assertEqual((key, kind), ("team", "month"))
        self.assertEqual("%d.%06d" % divmod(int(pico) // 10**6, 10**6), spent)

    def test_a_killed_gateway_loses_at_most_a_second(self):
        db = os.path.join(self.dir, "kill.db")
        gw = self.gateway("state: { sqlite: %s }" % db)
        with gw:
            self.assertEqual(self.call(gw).status, 200)
            spent = self.key_state(gw)["spent_usd"]
            self.assertNotEqual(spent, "0.000000")
            time.sleep(1.5)  # one flush
            gw.proc.kill()
            gw.proc.wait()
        with self.gateway("state: { sqlite: %s }" % db) as again:
            self.assertEqual(self.key_state(again)["spent_usd"], spent)

    def test_truncated_side_files_do_not_kill_the_gateway(self):
        # A backup restore or clean-up script that truncates the files beside the database:
        # with WAL, SQLite maps `-shm` into memory and the next flush died of SIGBUS.
        db = os.path.join(self.dir, "side.db")
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            self.assertEqual(self.call(gw).status, 200)
            time.sleep(1.3)  # one flush
            for suffix in ("-shm", "-wal", "-journal"):
                if os.path.exists(db + suffix):
                    os.truncate(db + suffix, 0)
            self.assertEqual(self.call(gw).status, 200)
            spent = self.key_state(gw)["spent_usd"]
            time.sleep(1.5)  # another flush
            self.assertTrue(gw.alive(), "gateway died; log:\n" + gw.log_text())
        with self.gateway("state: { sqlite: %s }" % db) as again:
            self.assertEqual(self.key_state(again)["spent_usd"], spent)

    def test_a_removed_file_is_written_again_with_the_whole_spend(self):
        # SQLite went on writing to the unlinked file: nothing was logged and the next start
        # found no spend, a budget bypass.
        db = os.path.join(self.dir, "removed.db")
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            self.assertEqual(self.call(gw).status, 200)
            time.sleep(1.3)  # one flush
            for suffix in ("", "-journal", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
            self.assertEqual(self.call(gw).status, 200)
            spent = self.key_state(gw)["spent_usd"]
            self.assertTrue(wait_until(lambda: "was removed while the gateway ran" in gw.log_text(), timeout=3),
                            gw.log_text())
            self.assertTrue(os.path.exists(db))
        with self.gateway("state: { sqlite: %s }" % db) as again:
            self.assertEqual(self.key_state(again)["spent_usd"], spent)

    def test_a_locked_database_holds_no_admin_request(self):
        # Another process holds the database's write lock for 3 s (a backup, a second tool):
        # the flush waits for it (busy timeout 2 s) on the blocking pool, never on the main
        # thread that answers the admin API; the spend is written once the lock goes.
        import sqlite3
        db = os.path.join(self.dir, "locked.db")
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            holder = sqlite3.connect(db, timeout=5, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                self.assertEqual(self.call(gw).status, 200)  # a delta for the next flush
                slowest = slowest_health_answer(self, gw, seconds=3, pause=0.05)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            self.assertLess(slowest, 0.5, "an admin request waited %.2f s on SQLite" % slowest)
            spent = self.key_state(gw)["spent_usd"]

            def stored():
                out = subprocess.run(["sqlite3", db, "SELECT spent_pico FROM key_spend"], capture_output=True,
                                     text=True).stdout.strip()
                return out and "%d.%06d" % divmod(int(out) // 10**6, 10**6) == spent
            self.assertTrue(wait_until(stored, timeout=5), "the spend was not written after the lock went")

    def test_relative_path_is_next_to_the_config(self):
        with self.gateway("state: { sqlite: spend.db }") as gw:
            self.assertEqual(self.call(gw).status, 200)
            self.assertTrue(os.path.exists(os.path.join(gw.dir, "spend.db")))
            self.assertIn("key spend kept in %s" % os.path.join(gw.dir, "spend.db"), gw.log_text())

    def test_reload_cannot_change_state(self):
        db = os.path.join(self.dir, "reload.db")
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            gw.reload_file(gw.config_text.replace("reload.db", "other.db"))
            resp = gw.admin("POST", "/reload", token=ADMIN_TOKEN)
            self.assertEqual(resp.status, 400)
            self.assertIn("'state' cannot change", resp.json()["error"]["message"])
            self.assertEqual(self.call(gw).status, 200)  # still serving on the old config

    def test_a_read_only_file_stops_the_start_with_a_reason(self):
        # SQLite opened it read-only without a word; every write failed after "key spend kept
        # in ..." was logged, and the spend of the run was lost at exit without a line.
        db = os.path.join(self.dir, "readonly.db")
        with self.gateway("state: { sqlite: %s }" % db) as gw:
            self.assertEqual(self.call(gw).status, 200)
        if subprocess.run(["chattr", "+i", db], capture_output=True).returncode != 0:
            self.skipTest("chattr +i is not permitted here (it makes the file read-only even for root)")
        try:
            admin = free_port()
            text = render(CONFIG, port=free_port(), main=self.provider.address, admin=admin,
                          state="state: { sqlite: %s }" % db)
            gw = Gateway(text, admin_port=admin, start_timeout=3)
            with self.assertRaises(RuntimeError) as ctx:
                gw.start()
            gw.stop()
            self.assertIn("read-only", str(ctx.exception))
            self.assertIn(db, str(ctx.exception))
        finally:
            subprocess.run(["chattr", "-i", db], capture_output=True)

    def test_unusable_file_stops_the_start_with_a_reason(self):
        admin = free_port()
        text = render(CONFIG, port=free_port(), main=self.provider.address, admin=admin,
                      state="state: { sqlite: /nonexistent-dir/spend.db }")
        gw = Gateway(text, admin_port=admin, start_timeout=3)
        with self.assertRaises(RuntimeError) as ctx:
            gw.start()
        gw.stop()
        self.assertIn("state.sqlite", str(ctx.exception))
        self.assertIn("/nonexistent-dir/spend.db", str(ctx.exception))

    def test_without_state_the_log_says_budgets_are_in_memory(self):
        with self.gateway("") as gw:
            self.assertTrue(wait_until(lambda: "kept in memory" in gw.log_text(), timeout=2))


SHARED_CONFIG = """
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
providers:
  - name: main
    kind: openai
    base_url: http://@MAIN@/v1
    api_key: sk-provider-main
models:
  - name: priced
    targets: [ { provider: main, model: priced-model, price: { input: 1, output: 1 } } ]
keys:
  - name: shared-budget
    key: sk-gw-shared
    budget: { usd: 0.005, period: day }
  - name: paced
    key: sk-gw-paced
    rpm: 4
  - name: free
    key: sk-gw-free
admin:
  address: 127.0.0.1:@ADMIN@
  token: admin-token-for-tests
state:
  redis: "@REDIS@"
  redis_timeout: 300ms
"""


class RedisSharedLimitsTest(unittest.TestCase):
    """state.redis: two gateways on one Redis enforce one budget and one rate per key."""

    @classmethod
    def setUpClass(cls):
        cls.provider = FakeProvider(name="main").__enter__()
        cls.redis = RedisServer(password="redis-secret-for-tests").__enter__()
        cls.gws = []
        for _ in range(2):
            admin = free_port()
            text = render(SHARED_CONFIG, port=free_port(), main=cls.provider.address, admin=admin,
                          redis=cls.redis.url())
            cls.gws.append(Gateway(text, admin_port=admin).__enter__())

    @classmethod
    def tearDownClass(cls):
        for gw in cls.gws:
            gw.__exit__(None, None, None)
        cls.redis.__exit__(None, None, None)
        cls.provider.__exit__(None, None, None)

    def setUp(self):
        self.provider.clear()
        if self.redis.proc is None:
            self.redis.start()
        self.redis.cli("FLUSHDB")

    def call(self, gw, key, max_tokens=1000, text="echo: hi"):
        body = json.dumps({"model": "priced", "max_tokens": max_tokens,
                           "messages": [{"role": "user", "content": text}]})
        return gw.request("POST", "/v1/chat/completions", body=body,
                          headers={"Authorization": "Bearer " + key}, timeout=10)

    def test_two_gateways_share_one_budget_under_concurrency(self):
        # Each call reserves about $0.001 (prompt + 1000 max tokens at $1/M): one $0.005 budget
        # has room for four at a time across both gateways, not four each.
        self.provider.script(delay=0.5, times=24)
        results = [None] * 24

        def one(i):
            results[i] = self.call(self.gws[i % 2], "sk-gw-shared")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [r.status for r in results]
        ok = statuses.count(200)
        self.assertEqual(ok + statuses.count(429), 24, statuses)
        self.assertGreaterEqual(ok, 1)
        self.assertLessEqual(ok, 4, statuses)
        refused = next(r for r in results if r.status == 429).json()["error"]
        self.assertEqual(refused["code"], "budget_exceeded")
        # Both gateways settled into the same spend; nothing is left reserved.
        def spends():
            out = []
            for gw in self.gws:
                keys = {k["name"]: k for k in gw.admin("GET", "/llm/keys", token=ADMIN_TOKEN).json()["keys"]}
                out.append((keys["shared-budget"]["spent_usd"], keys["shared-budget"]["reserved_usd"]))
            return out
        self.assertTrue(wait_until(lambda: spends()[0][1] == "0.000000", timeout=3), spends())
        first, second = spends()
        self.assertEqual(first, second)
        self.assertGreater(float(first[0]), 0)
        # Exact picodollars in Redis: the sum of what the calls cost.
        stored = self.redis.cli("HGET", "ganglion:llm:{shared-budget}", "spent")
        self.assertEqual("%d.%06d" % divmod(int(stored) // 10**6, 10**6), first[0])

    def test_two_gateways_share_one_request_rate(self):
        statuses = [self.call(self.gws[i % 2], "sk-gw-paced", max_tokens=5).status for i in range(6)]
        self.assertEqual(statuses, [200, 200, 200, 200, 429, 429])
        resp = self.call(self.gws[0], "sk-gw-paced", max_tokens=5)
        self.assertEqual(resp.json()["error"]["code"], "rate_limit_exceeded")
        self.assertIn(resp.headers["retry-after"], ("14", "15"))  # 4 per minute: one every 15 s

    def test_spend_outlives_a_gateway_restart(self):
        self.assertEqual(self.call(self.gws[0], "sk-gw-shared", max_tokens=5).status, 200)
        self.assertTrue(wait_until(lambda: self.redis.cli("HGET", "ganglion:llm:{shared-budget}", "spent"), 2))
        admin = free_port()
        text = render(SHARED_CONFIG, port=free_port(), main=self.provider.address, admin=admin,
                      redis=self.redis.url())
        with Gateway(text, admin_port=admin) as fresh:
            keys = {k["name"]: k for k in fresh.admin("GET", "/llm/keys", token=ADMIN_TOKEN).json()["keys"]}
            stored = self.redis.cli("HGET", "ganglion:llm:{shared-budget}", "spent")
            self.assertEqual(keys["shared-budget"]["spent_usd"],
                             "%d.%06d" % divmod(int(stored) // 10**6, 10**6))
            self.assertNotEqual(keys["shared-budget"]["spent_usd"], "0.000000")

    def test_redis_outage_fails_budgets_closed_and_rates_open(self):
        self.assertEqual(self.call(self.gws[0], "sk-gw-shared", max_tokens=5).status, 200)
        self.redis.stop()
        resp = self.call(self.gws[0], "sk-gw-shared", max_tokens=5)
        self.assertEqual(resp.status, 503)
        err = resp.json()["error"]
        self.assertEqual(err["code"], "limits_unavailable")
        self.assertNotIn("127.0.0.1", err["message"])  # the reason is for the log, not the client
        self.assertEqual(resp.headers["retry-after"], "1")
        # Rate-only keys keep working, limited per instance meanwhile.
        self.assertEqual(self.call(self.gws[0], "sk-gw-paced", max_tokens=5).status, 200)
        self.assertEqual(self.call(self.gws[0], "sk-gw-free", max_tokens=5).status, 200)
        self.assertIn("Redis at 127.0.0.1:%d unavailable" % self.redis.port, self.gws[0].log_text())
        # The admin view says why the shared spend is missing, key by key.
        keys = {k["name"]: k for k in self.gws[0].admin("GET", "/llm/keys", token=ADMIN_TOKEN).json()["keys"]}
        self.assertIn("cannot connect to Redis at 127.0.0.1:%d" % self.redis.port, keys["shared-budget"]["error"])
        self.assertNotIn("error", keys["paced"])
        self.assertNotIn("redis-secret-for-tests", self.gws[0].log_text())
        self.redis.start()
        self.assertTrue(wait_until(lambda: self.call(self.gws[0], "sk-gw-shared", max_tokens=5).status == 200,
                                   timeout=5, interval=0.2))
        self.assertIn("reachable again", self.gws[0].log_text())

    def test_a_silent_redis_times_out(self):
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            resp = self.call(self.gws[1], "sk-gw-shared", max_tokens=5)
            took = time.monotonic() - started
            self.assertEqual(resp.status, 503)
            self.assertLess(took, 2.0)  # redis_timeout is 300ms
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        self.assertTrue(wait_until(lambda: self.call(self.gws[1], "sk-gw-shared", max_tokens=5).status == 200,
                                   timeout=5, interval=0.2))

    def test_a_silent_redis_holds_no_other_admin_request(self):
        # GET /llm/keys reads the shared budgets from Redis, waiting up to redis_timeout
        # (300 ms) when it does not answer: on the blocking pool, so the admin API's other
        # requests (health, metrics) are answered meanwhile.
        gw = self.gws[0]
        stop = threading.Event()
        answered = []

        def read_keys():
            while not stop.is_set():
                answered.append(gw.admin("GET", "/llm/keys", token="admin-token-for-tests").status)

        self.redis.proc.send_signal(signal.SIGSTOP)
        reader = threading.Thread(target=read_keys)
        try:
            reader.start()
            time.sleep(0.1)
            slowest = slowest_health_answer(self, gw, seconds=1.5, pause=0.02)
        finally:
            stop.set()
            reader.join()
            self.redis.proc.send_signal(signal.SIGCONT)
        self.assertTrue(answered and all(status == 200 for status in answered), answered)
        self.assertLess(slowest, 0.15, "an admin request waited %.2f s on Redis" % slowest)

    def test_wrong_password_is_unavailable_and_logged_without_the_password(self):
        admin = free_port()
        text = render(SHARED_CONFIG, port=free_port(), main=self.provider.address, admin=admin,
                      redis=self.redis.url(password="not-the-password"))
        with Gateway(text, admin_port=admin) as gw:
            self.assertEqual(self.call(gw, "sk-gw-shared", max_tokens=5).status, 503)
            self.assertTrue(wait_until(lambda: "refused the connection's set-up" in gw.log_text(), 2), gw.log_text())
            self.assertNotIn("not-the-password", gw.log_text())
            config = gw.admin("GET", "/config", token=ADMIN_TOKEN).json()
            self.assertIn("<redacted>", config["state"]["redis"])
            self.assertNotIn("not-the-password", json.dumps(config))


if __name__ == "__main__":
    unittest.main(verbosity=2)
