#!/usr/bin/env python3
"""TLS handshake vs keep-alive, timed by one client that sets its TLS context up once.

    tls.py --port P --cacert C --path PATH [--auth 'Bearer ...'] [--n N]

For each of N new connections: TCP connect, TLS handshake (ssl.SSLSocket.do_handshake), then two
HTTP/1.1 requests on it: the first (on a fresh connection) and the second (keep-alive). Prints
medians in µs. curl's own numbers include loading the CA file and OpenSSL's set-up on every new
process; this client pays those once.
"""
import socket
import ssl
import statistics
import sys
import time


def arg(name, default=None):
    a = sys.argv
    return a[a.index(name) + 1] if name in a else default


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        rest += chunk
    return status


def main():
    port, cacert, path = int(arg("--port")), arg("--cacert"), arg("--path", "/health")
    auth, n = arg("--auth"), int(arg("--n", "200"))
    ctx = ssl.create_default_context(cafile=cacert)
    ctx.set_alpn_protocols(["http/1.1"])
    req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n" + (f"Authorization: {auth}\r\n" if auth else "") + "\r\n"
    req = req.encode()
    tcp, hs, first, second, versions = [], [], [], [], set()
    for _ in range(n):
        t0 = time.perf_counter()
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t1 = time.perf_counter()
        s = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        s.do_handshake()
        t2 = time.perf_counter()
        versions.add(f"{s.version()} {s.cipher()[0]}")
        s.sendall(req)
        st1 = read_response(s)
        t3 = time.perf_counter()
        s.sendall(req)
        st2 = read_response(s)
        t4 = time.perf_counter()
        s.close()
        assert st1 == 200 and st2 == 200, (st1, st2)
        tcp.append(t1 - t0); hs.append(t2 - t1); first.append(t3 - t2); second.append(t4 - t3)
    m = lambda xs: statistics.median(xs) * 1e6
    print(f"# {n} connections to {path}; {', '.join(sorted(versions))}")
    print(f"tcp_connect_us {m(tcp):.1f}")
    print(f"tls_handshake_us {m(hs):.1f}")
    print(f"first_request_us {m(first):.1f}")
    print(f"keepalive_request_us {m(second):.1f}")


if __name__ == "__main__":
    main()
