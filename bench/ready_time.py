#!/usr/bin/env python3
"""Start a server, time how long until its port accepts a TCP connection, stop it.

    ready_time.py --port P [--timeout S] [--log FILE] -- command args...

Prints the start-to-ready time in milliseconds (one number) on stdout and exits 0,
or prints a reason on stderr and exits 1 (the process exited, or the timeout
passed). The clock starts just before exec; the port is polled every 1 ms with a
plain connect(). The server runs in its own process group, which gets SIGTERM
(then SIGKILL after 5 s) once the measurement is done.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--log", default=os.devnull, help="file for the server's stdout+stderr")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")

    with open(args.log, "ab") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = t0 + args.timeout
            while True:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.settimeout(1.0)
                    s.connect((args.host, args.port))
                    elapsed = time.perf_counter() - t0
                    break
                except OSError:
                    pass
                finally:
                    s.close()
                if proc.poll() is not None:
                    print(f"process exited with status {proc.returncode} before port {args.port} was ready",
                          file=sys.stderr)
                    return 1
                if time.perf_counter() > deadline:
                    print(f"port {args.port} not ready after {args.timeout} s", file=sys.stderr)
                    return 1
                time.sleep(0.001)
        finally:
            stop(proc)
    print(f"{elapsed * 1000.0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
