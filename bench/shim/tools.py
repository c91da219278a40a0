#!/usr/bin/env python3
"""Small load tools for bench/shim (stdlib only: asyncio + ssl).

  tools.py jwt SECRET_FILE SUB              print an HS256 user JWT (aud authenticated, 1 h)
  tools.py claims JWT                       print the JWT's claims JSON (what the shim forwards)
  tools.py idle --port P --cacert C --path PATH --jwt J --pid PID --n N
        open N TLS keep-alive connections, one GET on each, keep them open; print VmRSS of PID
        before, with all N open, and after closing (kB), as "rss_before_kb ...", etc.
  tools.py sse --port P --cacert C --thread T[,T2,...] --jwt J --n N --m M [--gap-ms G]
               [--pid SHIM_PID --pg-pid POSTMASTER_PID]
        open N event streams, spread evenly over the given threads (stream i on thread i mod T),
        then POST M messages one by one, round-robin over the threads (each after the previous
        one was delivered to every stream of its thread, or after a timeout); print per-delivery
        latencies and the fan-out spread per message. One JWT (one principal) for every stream
        and every POST. With --pid/--pg-pid: CPU of the shim and of the whole cluster while the
        messages are posted, per message and per delivery.
Everything goes to 127.0.0.1 only.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import ssl
import sys
import time
import uuid
from datetime import datetime

HOST = "127.0.0.1"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret: str, sub: str, lifetime: int = 3600) -> str:
    now = int(time.time())
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": sub, "aud": "authenticated", "role": "authenticated",
              "email": f"{sub}@example.com", "iat": now, "exp": now + lifetime}
    body = b64u(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


def claims_of(jwt: str) -> str:
    p = jwt.split(".")[1]
    p += "=" * (-len(p) % 4)
    # default separators (", ", ": "): pgbench would read ":name" inside the JSON as a variable
    return json.dumps(json.loads(base64.urlsafe_b64decode(p)))


def ctx(cacert):
    c = ssl.create_default_context(cafile=cacert)
    c.set_alpn_protocols(["http/1.1"])
    return c


def rss_kb(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        body = await reader.readexactly(int(hdrs["content-length"]))
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        raise RuntimeError(f"response without length: {lines[0]}")
    return status, hdrs, body


def request_bytes(method, path, jwt, body=None):
    h = [f"{method} {path} HTTP/1.1", "Host: localhost", f"Authorization: Bearer {jwt}"]
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        h += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(h) + "\r\n\r\n").encode() + data


async def idle(a):
    sslctx = ctx(a["cacert"])
    pid = int(a["pid"])
    n = int(a["n"])
    before = rss_kb(pid)
    conns, fails = [], 0
    sem = asyncio.Semaphore(32)

    async def one():
        nonlocal fails
        async with sem:
            try:
                r, w = await asyncio.open_connection(HOST, int(a["port"]), ssl=sslctx,
                                                     server_hostname="localhost")
                w.write(request_bytes("GET", a["path"], a["jwt"]))
                st, _, _ = await read_response(r)
                if st != 200:
                    fails += 1
                conns.append((r, w))
            except Exception as e:  # noqa: BLE001
                fails += 1
                print(f"# connection failed: {e!r}", file=sys.stderr)

    t0 = time.time()
    await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(2)
    during = rss_kb(pid)
    await asyncio.sleep(3)
    during2 = rss_kb(pid)
    print(f"rss_before_kb {before}")
    print(f"rss_open_kb {max(during, during2)}")
    print(f"open_connections {len(conns)}")
    print(f"non200_or_failed {fails}")
    print(f"open_seconds {time.time() - t0:.1f}")
    for _, w in conns:
        w.close()
    await asyncio.sleep(2)
    print(f"rss_after_close_kb {rss_kb(pid)}")


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def ticks_of(pid, children=False) -> int:
    """utime+stime (+ cutime+cstime with children=True) of pid, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    t = int(st[11]) + int(st[12])
    if children:
        t += int(st[13]) + int(st[14])
    return t


def cluster_ticks(pm) -> int:
    """The postmaster with its reaped children, plus its live children (as suite.sh pg_ticks)."""
    t = ticks_of(pm, children=True)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(st[1]) == pm:
            t += int(st[11]) + int(st[12])
    return t


async def sse(a):
    sslctx = ctx(a["cacert"])
    port, jwt = int(a["port"]), a["jwt"]
    threads = [t for t in a["thread"].split(",") if t]
    if len(set(threads)) != len(threads):
        raise SystemExit("sse: the same thread is given twice")
    n, m = int(a["n"]), int(a["m"])
    nt = len(threads)
    per = {t: 0 for t in threads}          # streams per thread
    for i in range(n):
        per[threads[i % nt]] += 1
    gap = float(a.get("gap-ms", "100")) / 1000.0
    recv = {}          # (thread, seq) -> list of receive times (ns)
    created = {}       # (thread, seq) -> created_at (ns since epoch, database clock)
    waiters = {}       # (thread, seq) -> asyncio.Event set when every stream of the thread got it
    ready = 0
    open_failures = []
    ready_ev = asyncio.Event()
    opening = asyncio.Semaphore(int(a.get("open-at-once", "50")))

    async def stream(thread, after):
        nonlocal ready
        path = f"/api/v1/chat/threads/{thread}/events/stream"
        nonlocal open_failures
        async with opening:
            for attempt in range(3):
                try:
                    r, w = await asyncio.open_connection(HOST, port, ssl=sslctx, server_hostname="localhost")
                    w.write(request_bytes("GET", f"{path}?after_seq={after}", jwt))
                    head = await r.readuntil(b"\r\n\r\n")
                    break
                except (ConnectionError, asyncio.IncompleteReadError) as e:
                    # counted and reported; a stream that fails three times fails the run
                    open_failures.append(repr(e))
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.2)
        if b" 200 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        ready += 1
        if ready == n:
            ready_ev.set()
        buf = b""
        while True:
            data = await r.read(65536)
            if not data:
                return
            t = time.time_ns()
            buf += data
            # chunked framing: the SSE text is still readable line by line; chunk-size lines are
            # hex-only lines, which never start with "id:" or "data:".
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                seq, cat = None, None
                for line in frame.split(b"\n"):
                    line = line.strip(b"\r")
                    if line.startswith(b"id:"):
                        seq = int(line[3:].strip())
                    elif line.startswith(b"data:"):
                        try:
                            d = json.loads(line[5:].strip())
                            cat = d.get("created_at")
                        except ValueError:
                            pass
                if seq is None:
                    continue
                k = (thread, seq)
                recv.setdefault(k, []).append(t)
                if cat and k not in created:
                    created[k] = int(datetime.fromisoformat(cat.replace("Z", "+00:00")).timestamp() * 1e9)
                if len(recv[k]) == per[thread] and k in waiters:
                    waiters[k].set()

    # start after each thread's current last event so the backlog is empty
    r, w = await asyncio.open_connection(HOST, port, ssl=sslctx, server_hostname="localhost")
    after = {}
    for t in threads:
        w.write(request_bytes("GET", f"/api/v1/chat/threads/{t}", jwt))
        st, _, body = await read_response(r)
        if st != 200:
            raise RuntimeError(f"GET thread {st}: {body[:300]!r}")
        after[t] = int(json.loads(body).get("last_seq", 0))
    t_open = time.time()
    tasks = [asyncio.create_task(stream(threads[i % nt], after[threads[i % nt]])) for i in range(n)]
    waiting = asyncio.create_task(ready_ev.wait())
    done, _ = await asyncio.wait([waiting, *tasks], timeout=max(60, n / 5), return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        for x in done:
            if x.exception():
                raise x.exception()
        raise RuntimeError(f"only {ready} of {n} streams open")
    open_secs = time.time() - t_open
    await asyncio.sleep(1.0)
    pid, pm = a.get("pid"), a.get("pg-pid")

    def cpu():
        return (ticks_of(int(pid)) if pid else 0, cluster_ticks(int(pm)) if pm else 0, time.time())

    async def polls():
        """The shim's stream poll counters by kind, from /metrics (loopback may read it)."""
        mr, mw = await asyncio.open_connection(HOST, port, ssl=sslctx, server_hostname="localhost")
        mw.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        st, _, body = await read_response(mr)
        mw.close()
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("ama_shim_stream_polls_total{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = float(line.rsplit(" ", 1)[1])
        return out

    # the streams' cost with nothing posted (heartbeats, each stream's own re-check every
    # --sse-recheck-secs), to tell it apart from the cost of the messages
    idle_secs = float(a.get("idle-secs", "10"))
    i0, p0 = cpu(), await polls()
    await asyncio.sleep(idle_secs)
    i1, p1 = cpu(), await polls()
    # a fresh connection for the POSTs: the shim may close a keep-alive connection that sent
    # nothing for the header-read timeout (10 s), as long as the idle window
    w.close()
    r, w = await asyncio.open_connection(HOST, port, ssl=sslctx, server_hostname="localhost")
    posted = {}        # (thread, seq) -> POST response arrival (ns)
    sent = {}          # (thread, seq) -> just before the POST was written (ns)
    timeouts = 0
    c0 = cpu()
    t0 = time.time()
    for i in range(m):
        th = threads[i % nt]
        t_send = time.time_ns()
        w.write(request_bytes("POST", f"/api/v1/chat/threads/{th}/messages", jwt,
                              {"content": f"sse bench {i} {uuid.uuid4()}"}))
        st, _, body = await read_response(r)
        t_resp = time.time_ns()
        if st != 200:
            raise RuntimeError(f"POST {st}: {body[:300]!r}")
        k = (th, int(json.loads(body)["thread_seq"]))
        posted[k], sent[k] = t_resp, t_send
        ev = waiters.setdefault(k, asyncio.Event())
        if len(recv.get(k, [])) >= per[th]:
            ev.set()
        try:
            await asyncio.wait_for(ev.wait(), 10)
        except asyncio.TimeoutError:
            timeouts += 1
        await asyncio.sleep(gap)
    post_secs = time.time() - t0
    c1 = cpu()
    p2 = await polls()
    lat_resp, lat_created, lat_sent, spread = [], [], [], []
    for k, ts in recv.items():
        if k not in posted:
            continue
        lat_resp += [(t - posted[k]) / 1e6 for t in ts]
        lat_sent += [(t - sent[k]) / 1e6 for t in ts]
        if k in created:
            lat_created += [(t - created[k]) / 1e6 for t in ts]
        spread.append((max(ts) - min(ts)) / 1e6)
    expected = sum(per[t] for t, _ in posted)
    got = sum(len(recv.get(k, [])) for k in posted)
    print(f"streams {n}")
    print(f"threads {nt} streams_per_thread {min(per.values())}-{max(per.values())} one_principal_for_all")
    print(f"messages {m}")
    print(f"deliveries {got} expected {expected} timeouts {timeouts}")
    print(f"streams_open_seconds {open_secs:.1f} posting_seconds {post_secs:.1f}")
    print(f"stream_open_failures_retried {len(open_failures)} {sorted(set(open_failures))}")
    for name, xs in [("after_post_response_ms", lat_resp), ("after_created_at_ms", lat_created),
                     ("after_post_sent_ms", lat_sent), ("fanout_spread_ms", spread)]:
        print(f"{name} p50 {pct(xs, 50):.2f} p99 {pct(xs, 99):.2f} max {max(xs) if xs else float('nan'):.2f} n {len(xs)}")
    def d(x, y, k):
        return y.get(k, 0) - x.get(k, 0)
    print(f"stream_polls idle_{i1[2] - i0[2]:.0f}s shared {d(p0, p1, 'shared'):.0f} own {d(p0, p1, 'own'):.0f};"
          f" while_posting_{c1[2] - c0[2]:.0f}s shared {d(p1, p2, 'shared'):.0f} own {d(p1, p2, 'own'):.0f}")
    if pid or pm:
        hz = os.sysconf("SC_CLK_TCK")
        idle_rate = [(i1[k] - i0[k]) * 1e6 / hz / (i1[2] - i0[2]) for k in (0, 1)]     # µs per second
        busy = [(c1[k] - c0[k]) * 1e6 / hz for k in (0, 1)]                            # µs
        net = [busy[k] - idle_rate[k] * (c1[2] - c0[2]) for k in (0, 1)]
        print(f"cpu_idle_streams_ms_per_s shim {idle_rate[0] / 1e3:.0f} pg {idle_rate[1] / 1e3:.0f}")
        print(f"cpu_while_posting_us_per_message shim {busy[0] / max(m, 1):.0f} pg {busy[1] / max(m, 1):.0f};"
              f" less the idle streams' rate: shim {net[0] / max(m, 1):.0f} pg {net[1] / max(m, 1):.0f}"
              f" (shim {net[0] / max(got, 1):.0f} per delivery)")
    for t in tasks:
        t.cancel()
    w.close()


def parse(argv):
    a, i = {}, 0
    while i < len(argv):
        k = argv[i].lstrip("-")
        a[k] = argv[i + 1]
        i += 2
    return a


def main():
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "jwt":
        print(mint(open(rest[0]).read().strip(), rest[1]))
    elif cmd == "claims":
        print(claims_of(rest[0]))
    elif cmd == "idle":
        asyncio.run(idle(parse(rest)))
    elif cmd == "sse":
        asyncio.run(sse(parse(rest)))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
