"""The first run: the shipped config/ganglion.yaml, as `scripts/run.sh` starts it, must show
the product working with nothing else installed (a welcome page at /, the admin API, the
LLM API switched on by whichever provider keys the environment has)."""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, free_port, http_request  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_TOKEN = "first-run-Admin-T0ken-42"
API_KEY = "sk-gw-first-run-key-0001"


def shipped_config(port, admin, openai_base=None):
    """config/ganglion.yaml with this run's ports (and the fake provider as OpenAI)."""
    with open(os.path.join(REPO, "config", "ganglion.yaml")) as f:
        text = f.read()
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % port).replace("127.0.0.1:9901", "127.0.0.1:%d" % admin)
    text = re.sub(r"workers: 0.*", "workers: 1", text)
    if openai_base:
        text = text.replace('{ name: openai, kind: openai,', '{ name: openai, kind: openai, base_url: "%s",' % openai_base)
    return text


class FirstRunTest(unittest.TestCase):
    def start(self, env, openai_base=None):
        port, admin = free_port(), free_port()
        base_env = {"GANGLION_ADMIN_TOKEN": ADMIN_TOKEN, "GANGLION_API_KEY": API_KEY, "OPENAI_API_KEY": "",
                    "ANTHROPIC_API_KEY": "", "GEMINI_API_KEY": ""}
        base_env.update(env)
        return Gateway(shipped_config(port, admin, openai_base), env=base_env, port=port, admin_port=admin)

    def test_without_provider_keys_the_welcome_page_says_how_to_go_on(self):
        with self.start({}) as gw:
            r = gw.request("GET", "/")
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/plain"))
            page = r.body.decode()
            self.assertIn("Ganglion", page)
            self.assertIn("LLM API is off", page)
            self.assertIn("OPENAI_API_KEY", page)
            self.assertIn("Admin API on 127.0.0.1:%d" % gw.admin_port, page)
            for secret in (ADMIN_TOKEN, API_KEY):
                self.assertNotIn(secret, page)
            # The LLM API answers (no models yet) instead of a proxy error.
            models = gw.request("GET", "/v1/models", headers={"Authorization": "Bearer " + API_KEY})
            self.assertEqual(models.status, 200, models.body)
            self.assertEqual(models.json()["data"], [])
            self.assertEqual(gw.request("POST", "/", body="x").status, 405)
            self.assertEqual(gw.admin("GET", "/metrics", token=ADMIN_TOKEN).status, 200)

    def test_a_provider_key_switches_its_models_on(self):
        with FakeProvider() as fake, self.start({"OPENAI_API_KEY": "sk-test-openai"}, fake.url + "/v1") as gw:
            page = gw.request("GET", "/").body.decode()
            self.assertIn("The LLM API is on", page)
            self.assertIn("openai (openai)", page)
            self.assertIn("off (no key in the environment): anthropic, gemini", page)
            auth = {"Authorization": "Bearer " + API_KEY}
            names = [m["id"] for m in gw.request("GET", "/v1/models", headers=auth).json()["data"]]
            self.assertEqual(sorted(names), ["any-fast", "gpt-4o-mini", "text-embedding-3-small"])
            r = gw.request("POST", "/v1/chat/completions", headers=auth,
                           body=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "echo: hi"}]}))
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["choices"][0]["message"]["content"], "hi")
            self.assertEqual(fake.last()["headers"]["authorization"], "Bearer sk-test-openai")
            self.assertEqual(gw.request("GET", "/v1/models").status, 401)  # the gateway key is required


if __name__ == "__main__":
    unittest.main(verbosity=2)
