#!/usr/bin/env python3
"""Load generator of bench/functions.sh (stdlib only).

  cold   URL N METRICS_URL FUNCTION [GET]  N invocations, each when the function has no instance
                                      (waits for the gateway's instances gauge to be 0)
  scaleup URL N METRICS_URL FUNCTION  N invocations of a --min 1 --concurrency 1 function, each
                                      while its one instance is busy (a new instance starts,
                                      from the parked zygote)
  seq    URL N                        N sequential GETs, each on a new connection
  burst  HOST PORT PATH N             N requests at once (one connection each); status counts
                                      and latency per status
  cmd    N ARGV...                    N runs of a command (stdin: b"bench"), wall time each
Prints one line per result: `name key=value ...` (milliseconds).
"""
import asyncio
import http.client
import subprocess
import sys
import threading
import time
import urllib.parse


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(name, xs):
    print(
        f"{name} n={len(xs)} p50={pct(xs, 50):.2f} p90={pct(xs, 90):.2f} "
        f"p99={pct(xs, 99):.2f} max={max(xs) if xs else float('nan'):.2f}"
    )


def request(url, body=b"bench"):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    path = u.path + ("?" + u.query if u.query else "")
    t0 = time.perf_counter()
    c.request("POST" if body is not None else "GET", path, body=body)
    r = c.getresponse()
    data = r.read()
    t1 = time.perf_counter()
    c.close()
    return r.status, data, (t1 - t0) * 1000.0


def gauge(metrics_url, series):
    u = urllib.parse.urlsplit(metrics_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", u.path)
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def cold(url, n, metrics_url, fn, method="POST"):
    series = 'berth_function_instances{function="%s"}' % fn
    times = []
    for _ in range(n):
        deadline = time.time() + 10
        while gauge(metrics_url, series) not in (0.0, None):
            if time.time() > deadline:
                sys.exit("the function's instance never went away")
            time.sleep(0.02)
        # The instance process is gone too (the gauge drops before the stop completes).
        time.sleep(0.05)
        status, data, ms = request(url, body=b"bench" if method == "POST" else None)
        if status != 200:
            sys.exit(f"cold invocation: {status} {data[:200]!r}")
        times.append(ms)
    summary("cold", times)


def scaleup(url, n, metrics_url, fn):
    series = 'berth_function_instances{function="%s"}' % fn
    times = []
    for _ in range(n):
        deadline = time.time() + 10
        while gauge(metrics_url, series) != 1.0:
            if time.time() > deadline:
                sys.exit("the function never went back to one instance")
            time.sleep(0.02)
        # The spare of a function in use is parked again (a create takes a few ms).
        time.sleep(0.3)
        busy = threading.Thread(target=request, args=(url + "?sleep=0.5",))
        busy.start()
        time.sleep(0.1)
        status, data, ms = request(url)
        busy.join()
        if status != 200:
            sys.exit(f"scale-up invocation: {status} {data[:200]!r}")
        times.append(ms)
    summary("scaleup", times)


def seq(url, n):
    times = []
    for _ in range(n):
        status, data, ms = request(url, body=None)
        if status != 200:
            sys.exit(f"{url}: {status} {data[:200]!r}")
        times.append(ms)
    summary("seq", times)


async def one(host, port, path, start):
    await start.wait()
    t0 = time.perf_counter()
    try:
        r, w = await asyncio.open_connection(host, port)
        w.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n"
            f"Connection: close\r\n\r\nburst".encode()
        )
        await w.drain()
        line = await r.readline()
        await r.read()
        w.close()
        status = int(line.split()[1]) if line else 0
    except Exception as e:  # a lost request is a result, not a crash
        print(f"error {e!r}", file=sys.stderr)
        status = 0
    return status, (time.perf_counter() - t0) * 1000.0


async def burst_main(host, port, path, n):
    start = asyncio.Event()
    tasks = [asyncio.create_task(one(host, port, path, start)) for _ in range(n)]
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    start.set()
    res = await asyncio.gather(*tasks)
    wall = (time.perf_counter() - t0) * 1000.0
    by = {}
    for status, ms in res:
        by.setdefault(status, []).append(ms)
    counts = " ".join(f"{k}={len(v)}" for k, v in sorted(by.items()))
    print(f"burst n={n} wall={wall:.0f} {counts}")
    for k, v in sorted(by.items()):
        summary(f"burst-{k}", v)


def cmd(n, argv):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.run(argv, input=b"bench", capture_output=True)
        ms = (time.perf_counter() - t0) * 1000.0
        if p.returncode != 0:
            sys.exit(f"{argv}: exit {p.returncode}: {p.stderr[:300]!r}")
        times.append(ms)
    summary("cmd", times)


def main():
    a = sys.argv[1:]
    if a[0] == "cold":
        cold(a[1], int(a[2]), a[3], a[4], *a[5:6])
    elif a[0] == "scaleup":
        scaleup(a[1], int(a[2]), a[3], a[4])
    elif a[0] == "seq":
        seq(a[1], int(a[2]))
    elif a[0] == "burst":
        asyncio.run(burst_main(a[1], int(a[2]), a[3], int(a[4])))
    elif a[0] == "cmd":
        cmd(int(a[1]), a[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
