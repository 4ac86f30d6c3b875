// The stack the end-to-end tests run against: tests/integration/fake_provider.py as the only
// upstream, and the real gateway binary ($GANGLION_BIN) in front of it, both started by
// start_stack.py, which takes scripting commands on stdin (see its docstring).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export class Stack {
  async start() {
    this.proc = spawn(process.env.PYTHON || 'python3', [join(HERE, 'start_stack.py')], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: process.env,
    });
    this.waiters = [];
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const lines = createInterface({ input: this.proc.stdout });
    lines.on('line', (line) => {
      const next = this.waiters.shift();
      if (next) next.resolve(JSON.parse(line));
    });
    this.proc.once('exit', (code, signal) => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`start_stack.py exited (${code ?? signal})`));
    });
    const ports = await Promise.race([
      this.nextLine(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('stack not up after 20 s')), 20000).unref()),
    ]);
    this.gatewayPort = ports.gateway;
    this.providerPort = ports.provider;
    return this;
  }

  /** The gateway's address, http://127.0.0.1:PORT (no trailing slash). */
  get gateway() { return `http://127.0.0.1:${this.gatewayPort}`; }

  nextLine() {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  async command(cmd) {
    const answer = this.nextLine();
    this.proc.stdin.write(JSON.stringify(cmd) + '\n');
    const got = await answer;
    if (got.error) throw new Error(`stack command ${JSON.stringify(cmd)}: ${got.error}`);
    return got;
  }

  script(behaviour) { return this.command({ script: behaviour }); }
  clear() { return this.command({ clear: true }); }
  /** The last request the provider saw: {method, path, json}. */
  async last() { return (await this.command({ last: true })).last; }
  /** Every request the provider saw since the last clear(), oldest first. */
  async requests() { return (await this.command({ requests: true })).requests; }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.stdin.end();  // the launcher stops the gateway and the provider on EOF
    const timer = setTimeout(() => this.proc.kill('SIGTERM'), 10000);
    await this.exited;
    clearTimeout(timer);
  }
}
