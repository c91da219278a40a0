#!/usr/bin/env python3
"""Load the shim with a read route, freeze the whole PostgreSQL cluster (SIGSTOP the postmaster and
every backend), thaw it (SIGCONT), and record every request (stdlib only: asyncio + ssl).

  frozen.py --port P --cacert C --path PATH --jwt J --data PGDATA --deadline-ms D
            [--conns 16] [--interval-ms 50] [--warm 5] [--freeze 10] [--after 10] [--raw FILE]
            [--pg-port PORT]

Each of --conns keep-alive TLS connections sends the GET, waits for the answer, then waits until
--interval-ms after the request began (so about conns * 1000 / interval requests a second while
the database answers). A separate probe GETs /health every 500 ms. A request that has no answer
after D + 10 s is given up and counted as hung (the bound that matters is D + 1 s). Prints a
summary (key value lines) and, with --raw, one line per request: start and end (s, relative to
SIGSTOP), status, Retry-After. With --pg-port, also the connections waiting in the postmaster's
accept queue just before SIGCONT (connection attempts made during the freeze).
Everything goes to 127.0.0.1 only; the cluster is always thawed before this exits.
"""
import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools import HOST, ctx, parse, pct, read_response, request_bytes  # noqa: E402


def cluster_pids(data):
    with open(os.path.join(data, "postmaster.pid")) as f:
        postmaster = int(f.readline().strip())
    kids = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == postmaster:
            kids.append(int(e))
    return postmaster, kids


def accept_queue(port):
    """Connections waiting in the accept queue of the socket listening on 127.0.0.1:port (the
    rx_queue of a listening socket in /proc/net/tcp), or -1."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            x = line.split()
            if x[1] == want and x[3] == "0A":
                return int(x[4].split(":")[1], 16)
    return -1


def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


async def main(a):
    port, path, jwt = int(a["port"]), a["path"], a["jwt"]
    deadline = float(a["deadline-ms"]) / 1000.0
    conns = int(a.get("conns", "16"))
    interval = float(a.get("interval-ms", "50")) / 1000.0
    warm, freeze, after = (float(a.get(k, d)) for k, d in (("warm", "5"), ("freeze", "10"), ("after", "10")))
    give_up = deadline + 10.0
    sslctx = ctx(a["cacert"])
    reqs = []          # (start, end, status, retry_after)
    health = []        # (start, end, status)
    stop = asyncio.Event()
    req = request_bytes("GET", path, jwt)

    async def open_conn():
        return await asyncio.wait_for(
            asyncio.open_connection(HOST, port, ssl=sslctx, server_hostname="localhost"), give_up)

    async def worker():
        conn = None
        while not stop.is_set():
            t0 = time.monotonic()
            status, retry = "err", ""
            try:
                if conn is None:
                    conn = await open_conn()
                r, w = conn
                w.write(req)
                st, hdrs, _ = await asyncio.wait_for(read_response(r), give_up - (time.monotonic() - t0))
                status, retry = str(st), hdrs.get("retry-after", "")
                if hdrs.get("connection", "").lower() == "close":
                    w.close()
                    conn = None
            except asyncio.TimeoutError:
                status = "hung"
                conn = None
            except Exception as e:  # noqa: BLE001
                status = "err:" + type(e).__name__
                conn = None
            t1 = time.monotonic()
            reqs.append((t0, t1, status, retry))
            await asyncio.sleep(max(0.0, interval - (t1 - t0)))

    async def probe():
        h = request_bytes("GET", "/health", "x").replace(b"Authorization: Bearer x\r\n", b"")
        conn = None
        while not stop.is_set():
            t0 = time.monotonic()
            status = "err"
            try:
                if conn is None:
                    conn = await open_conn()
                conn[1].write(h)
                st, _, _ = await asyncio.wait_for(read_response(conn[0]), give_up)
                status = str(st)
            except Exception as e:  # noqa: BLE001
                status = "err:" + type(e).__name__
                conn = None
            health.append((t0, time.monotonic(), status))
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(worker()) for _ in range(conns)] + [asyncio.create_task(probe())]
    frozen = []
    try:
        await asyncio.sleep(warm)
        # the postmaster first, so it forks nothing new, then every child (twice, for stragglers)
        postmaster, kids = cluster_pids(a["data"])
        t_stop = time.monotonic()
        os.kill(postmaster, signal.SIGSTOP)
        frozen = [postmaster]
        for _ in range(2):
            _, kids = cluster_pids(a["data"])
            new = [k for k in kids if k not in frozen]
            signal_all(new, signal.SIGSTOP)
            frozen += new
            await asyncio.sleep(0.05)
        await asyncio.sleep(freeze - 0.1)
        queued = accept_queue(int(a["pg-port"])) if "pg-port" in a else -1
        t_cont = time.monotonic()
        signal_all(frozen, signal.SIGCONT)
        await asyncio.sleep(after)
    finally:
        if frozen:
            signal_all(frozen, signal.SIGCONT)
    stop.set()
    # let every request in flight finish (each is bounded by give_up)
    await asyncio.wait(tasks, timeout=give_up + 1)
    for t in tasks:
        t.cancel()

    def ms(x):
        return f"{x * 1000:.0f}"

    def lat(rows):
        return [(e - s) for s, e, *_ in rows]

    before = [x for x in reqs if x[0] < t_stop and x[1] < t_stop]
    inflight = [x for x in reqs if x[0] < t_stop <= x[1]]
    during = [x for x in reqs if t_stop <= x[0] < t_cont]
    later = [x for x in reqs if x[0] >= t_cont]
    print(f"deadline_ms {ms(deadline)}")
    print(f"frozen_processes {len(frozen)}")
    print(f"freeze_s {t_cont - t_stop:.2f}")
    print(f"postmaster_accept_queue_at_sigcont {queued}")

    def counts(rows):
        c = {}
        for x in rows:
            c[x[2]] = c.get(x[2], 0) + 1
        return " ".join(f"{k}:{v}" for k, v in sorted(c.items())) or "none"

    print(f"before requests {len(before)} statuses {counts(before)} p50_ms {ms(pct(lat(before), 50))} p99_ms {ms(pct(lat(before), 99))}")
    print(f"in_flight_at_freeze requests {len(inflight)} statuses {counts(inflight)} max_ms {ms(max(lat(inflight), default=0))}")
    print(f"during requests {len(during)} statuses {counts(during)}")
    s503 = [x for x in during + inflight if x[2] == "503"]
    l503 = lat(s503)
    print(f"during_503 n {len(s503)} with_retry_after {sum(1 for x in s503 if x[3])} retry_after_values {sorted(set(x[3] for x in s503))}"
          f" p50_ms {ms(pct(l503, 50))} p99_ms {ms(pct(l503, 99))} max_ms {ms(max(l503, default=float('nan')))}")
    over = [x for x in reqs if x[1] - x[0] > deadline + 1.0]
    print(f"over_deadline_plus_1s {len(over)} (of {len(reqs)} requests; hung = no answer in deadline + 10 s: "
          f"{sum(1 for x in reqs if x[2] == 'hung')})")
    first200 = min((x[1] for x in reqs if x[2] == "200" and x[1] >= t_cont), default=None)
    first200_started = min((x[1] for x in later if x[2] == "200"), default=None)
    print(f"after requests {len(later)} statuses {counts(later)} p50_ms {ms(pct(lat(later), 50))} p99_ms {ms(pct(lat(later), 99))}")
    print("recovery_first_200_after_sigcont_ms " + (ms(first200 - t_cont) if first200 else "never"))
    print("recovery_first_200_of_a_request_begun_after_sigcont_ms " + (ms(first200_started - t_cont) if first200_started else "never"))
    last_non200 = max((x[1] for x in later if x[2] != "200"), default=None)
    print("after_last_non_200_ms " + (ms(last_non200 - t_cont) if last_non200 else "none"))
    hd = [x for x in health if t_stop <= x[0] < t_cont]
    print(f"health_during n {len(hd)} statuses {counts(hd)} max_ms {ms(max(lat(hd), default=float('nan')))}")
    if "raw" in a:
        with open(a["raw"], "w") as f:
            f.write("# start_s end_s status retry_after (seconds relative to SIGSTOP; SIGCONT at "
                    f"{t_cont - t_stop:.3f})\n")
            for s, e, st, ra in sorted(reqs):
                f.write(f"{s - t_stop:.3f} {e - t_stop:.3f} {st} {ra or '-'}\n")


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
