#!/usr/bin/env python3
"""Shares of a profile by phase (docs/performance.md), from inferno-collapse-perf output.

    shares.py shim|pg COLLAPSED [CPU_US_PER_REQUEST]

Each sample is given to the first phase (in the order below) whose pattern matches any frame of
its stack, so the phases add up to 100%. With the process's CPU time per request, prints µs too.
"""
import re
import sys

SHIM = [
    ("TLS handshake (rustls server handshake)", r"rustls::server::hs|rustls::server::tls13::Expect|rustls::server::tls12::Expect"),
    ("envelope parse (`Reply::parse`: serde_json over the whole envelope)", r"ama_shim::db::reply::Reply::parse"),
    ("credential: JWT verification (cached) or token format", r"ama_shim::jwt::|ama_shim::credential::"),
    ("route match, query and args", r"ama_shim::routes::|matchit::"),
    ("response build (`envelope_response`, headers)", r"ama_shim::response::"),
    ("pool checkout (deadpool)", r"deadpool::managed::Pool<.*>::(get|timeout_get)|deadpool::managed::.*recycle"),
    ("database I/O: tokio-postgres encode/decode and its socket (kernel included)", r"tokio_postgres::|postgres_protocol::"),
    ("response write: TLS encryption + socket send (kernel included)", r"as tokio::io::async_write::AsyncWrite>::poll_write|TlsStream<IO> as tokio::io::async_write"),
    ("request read: socket receive + TLS decryption (kernel included)", r"as tokio::io::async_read::AsyncRead>::poll_read|TlsStream<IO> as tokio::io::async_read"),
    ("HTTP/1.1 parse and serialise (hyper)", r"hyper::proto::h1::role|httparse::|hyper::proto::h1::encode"),
    ("handler and the rest of the shim (metrics, access log, context)", r"ama_shim::"),
    ("tokio runtime: scheduling, wakeups, timers, epoll (kernel included)", r"tokio::|mio::|epoll_wait|futex|schedule"),
]
PG = [
    ("`_request_begin`: authentication, rate limit, context settings", r"ama_pg::request::request_begin|request_begin_wrapper"),
    ("JSON shaping: `json_agg`, `ama._ts`, `json_build_object`", r"json_agg_transfn|json_agg_finalfn|escape_json|json_build_object|ama_pg::route_call::ts|composite_to_json|datum_to_json"),
    ("RLS: membership probes of the policies (`_can_read`)", r"ama_pg::membership"),
    ("planning the route's statements (a custom plan per call)", r"pg_plan_query|standard_planner|pg_plan_queries"),
    ("executor start/end of the route's statements", r"SPI_execute_plan_with_paramlist.*(standard_ExecutorStart|standard_ExecutorEnd|ExecInitNode|ExecEndNode|FreeExecutorState|CreateExecutorState)"),
    ("the route's SQL: scans, sort, window, aggregate, UPDATE", r"SPI_execute_plan_with_paramlist.*standard_ExecutorRun"),
    ("plan cache checks and the rest of SPI", r"GetCachedPlan|SPI_"),
    ("the route's PL/pgSQL (interpreter, expressions) and `_call_route`", r"ama_call_route"),
    ("subtransaction (EXCEPTION block)", r"BeginInternalSubTransaction|ReleaseCurrentSubTransaction|RollbackAndReleaseCurrentSubTransaction|StartSubTransaction|CommitSubTransaction"),
    ("`SET` clauses: GUC save/restore of the SECURITY DEFINER call", r"AtEOXact_GUC|set_config_option|NewGUCNestLevel|ProcessGUCArray"),
    ("`request_json`'s PL/pgSQL (envelope, arguments)", r"plpgsql_call_handler|plpgsql_exec_function"),
    ("protocol: receive, bind, argument input (`exec_bind_message`)", r"exec_bind_message|secure_read|pq_getbyte|ReadCommand|pq_recvbuf"),
    ("protocol: send the answer (`printtup`, socket)", r"printtup|secure_write|pq_flush|internal_flush|pq_putmessage"),
    ("transaction start and commit", r"CommitTransactionCommand|StartTransactionCommand|finish_xact_command|start_xact_command|CommitTransaction|StartTransaction"),
    ("top-level executor and portal (the `SELECT ama.request_json(...)`)", r"PortalRun|PortalStart|standard_ExecutorStart|standard_ExecutorEnd|exec_execute_message"),
]


def main():
    which, path = sys.argv[1], sys.argv[2]
    cpu = float(sys.argv[3]) if len(sys.argv) > 3 else None
    rules = [(n, re.compile(p)) for n, p in (SHIM if which == "shim" else PG)]
    counts = {n: 0 for n, _ in rules}
    other = total = 0
    for line in open(path):
        stack, _, c = line.rstrip("\n").rpartition(" ")
        try:
            c = int(c)
        except ValueError:
            continue
        total += c
        for n, rx in rules:
            if rx.search(stack):
                counts[n] += c
                break
        else:
            other += c
    print(f"samples: {total}" + (f"; CPU per request {cpu:.1f} µs" if cpu else ""))
    print()
    print("| phase | share of samples |" + (" µs per request |" if cpu else ""))
    print("|---|---:|" + ("---:|" if cpu else ""))
    for n, _ in rules + [("other", None)]:
        c = counts.get(n, other)
        sh = 100.0 * c / total if total else 0
        print(f"| {n} | {sh:.1f}% |" + (f" {cpu * sh / 100:.1f} |" if cpu else ""))


if __name__ == "__main__":
    main()
