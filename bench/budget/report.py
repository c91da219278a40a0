#!/usr/bin/env python3
"""Budget report (docs/performance.md): the phases of one request inside the database, by
subtraction, from db.sh's raw file.

    report.py db RAW      RAW lines: "round variant metric value"

Metrics per variant: cpu_us (the serving backend's on-CPU time per request, from
/proc/PID/schedstat), lat_ms (pgbench's mean latency), wait_us (runqueue wait per request), tps.
Each phase is the median over rounds of (A - B), A and B measured in the same round, on cpu_us;
the wall-latency column is the same subtraction on pgbench's latency. Shares are of the median
total. Prints markdown.
"""
import statistics
import sys
from collections import defaultdict


def load(path):
    d = defaultdict(dict)  # (variant, metric) -> {round: value}
    for line in open(path):
        p = line.split()
        if len(p) != 4:
            continue
        try:
            d[(p[1], p[2])][p[0]] = float(p[3])
        except ValueError:
            pass
    return d


def main():
    raw = load(sys.argv[2])

    def series(v, metric):
        xs = raw[(v, metric)]
        return {r: x * 1000.0 for r, x in xs.items()} if metric == "lat_ms" else dict(xs)

    def med(terms, metric="cpu_us"):
        ss = [(sgn, series(v, metric)) for sgn, v in terms]
        rounds = set.intersection(*(set(x) for _, x in ss))
        vals = [sum(sgn * x[r] for sgn, x in ss) for r in rounds]
        return (statistics.median(vals), min(vals), max(vals)) if vals else (float("nan"),) * 3

    loads = [raw[("load1", "load")][r] for r in sorted(raw[("load1", "load")], key=int)]
    env = raw[("meta", "envelope_bytes")].get("0", 0)
    print(f"rounds: {len(loads)}; load average (1 min) at the start of each round: "
          + ", ".join(f"{x:.2f}" for x in loads))
    print()
    print("| variant | backend CPU µs per request | pgbench latency µs | runqueue wait µs | TPS |")
    print("|---|---:|---:|---:|---:|")
    names = sorted({v for (v, m) in raw if m == "cpu_us"})
    for v in names:
        m = lambda k: statistics.median(series(v, k).values())
        print(f"| {v} | {m('cpu_us'):.1f} | {m('lat_ms'):.1f} | {m('wait_us'):.1f} | {m('tps'):.0f} |")
    print()

    route_poll = [(1, "p_request"), (-1, "p_noop")]
    xfer = [(1, "o_xfer"), (-1, "o_noxfer")]
    owner_route = [(1, "o_route"), (-1, "o_ctx")]
    rls_stmt = [(1, "r_json"), (-1, "r_select1"), (-1, "ro_json"), (1, "ro_select1")]
    poll = [
        ("round trip and statement floor (`SELECT 1`, autocommit)", [(1, "p_select1")]),
        ("PL/pgSQL call of six arguments", [(1, "p_w0"), (-1, "p_select1")]),
        ("SECURITY DEFINER + `SET search_path`", [(1, "p_w1"), (-1, "p_w0")]),
        ("the 7 context `SET` clauses", [(1, "p_w8"), (-1, "p_w1")]),
        ("route lookup + context settings (`_request_begin`, no credential)", [(1, "p_begin_none"), (-1, "p_w8")]),
        ("authentication: JWT claims to user, plan probe", [(1, "p_begin_jwt"), (-1, "p_begin_none")]),
        ("rate limit (ledger, `events_read`)", [(1, "p_begin_rl"), (-1, "p_begin_jwt")]),
        ("role switch + route call (no-op route) + envelope", [(1, "p_nosub"), (-1, "p_begin_rl")]),
        ("subtransaction (the EXCEPTION block)", [(1, "p_noop"), (-1, "p_nosub")]),
        ("the route, as the request role, and its answer's transfer", route_poll),
    ]
    poll_split = [
        (f"transfer of the {env:.0f}-byte envelope to the client", xfer),
        ("route SQL: the page's rows (owner)", [(1, "o_rows"), (-1, "o_select1")]),
        ("JSON shaping: ROW + `_ts` + `json_agg` (owner)", [(1, "o_json"), (-1, "o_rows")]),
        ("  of which `ama._ts` (50 calls)", [(1, "o_json"), (-1, "o_nots")]),
        ("RLS on the route's statement", rls_stmt),
        ("the route's PL/pgSQL around its statement (owner)", owner_route + [(-1, "o_json"), (1, "o_select1")]),
        ("rest: the route as the request role beyond the above",
         route_poll + [(-1, "o_xfer"), (1, "o_noxfer"), (-1, "o_route"), (1, "o_ctx")]
         + [(-sgn, v) for sgn, v in rls_stmt]),
    ]
    route_send = [(1, "s_request"), (-1, "s_noop")]
    send = [
        ("round trip and statement floor (`SELECT 1`, autocommit)", [(1, "p_select1")]),
        ("wrapper: call, SECURITY DEFINER, 8 `SET` clauses", [(1, "s_w8"), (-1, "p_select1")]),
        ("route lookup + context settings (`_request_begin`, no credential)", [(1, "s_begin_none"), (-1, "s_w8")]),
        ("authentication: agent token (SHA-256, index probe, owner's plan)", [(1, "s_begin_agent"), (-1, "s_begin_none")]),
        ("rate limit (ledger, `thread_write`)", [(1, "s_begin_rl"), (-1, "s_begin_agent")]),
        ("role switch + route call (no-op route) + envelope", [(1, "s_nosub"), (-1, "s_begin_rl")]),
        ("subtransaction (the EXCEPTION block)", [(1, "s_noop"), (-1, "s_nosub")]),
        ("the route, as the request role, with its commit", route_send),
    ]
    send_split = [
        ("bare `INSERT ... RETURNING` (owner; trigger, commit)", [(1, "o_send_insert"), (-1, "o_select1")]),
        ("the route's PL/pgSQL around the insert (owner)",
         [(1, "o_send_route"), (-1, "o_send_ctx"), (-1, "o_send_insert"), (1, "o_select1")]),
        ("rest: the route as the request role (RLS, role) beyond the owner's",
         route_send + [(-1, "o_send_route"), (1, "o_send_ctx")]),
    ]
    for title, rows, split, total in (("events poll (50 of 1,000, JWT user)", poll, poll_split, "p_request"),
                                      ("agent send (agent token)", send, send_split, "s_request")):
        tot = med([(1, total)])[0]
        wtot = med([(1, total)], "lat_ms")[0]
        print(f"### {title}: backend CPU {tot:.0f} µs per request, pgbench latency {wtot:.0f} µs (`{total}`, medians)")
        print()
        print("| phase | CPU µs (median of rounds) | range over rounds | share of CPU | latency µs (same subtraction) |")
        print("|---|---:|---:|---:|---:|")
        s = 0.0
        for name, terms in rows:
            m, lo, hi = med(terms)
            s += m
            print(f"| {name} | {m:.1f} | {lo:.1f} .. {hi:.1f} | {100 * m / tot:.1f}% | {med(terms, 'lat_ms')[0]:.0f} |")
        print(f"| sum of the phases | {s:.1f} | | {100 * s / tot:.1f}% | |")
        print()
        print("| the route, split | CPU µs | range | share of CPU total | latency µs |")
        print("|---|---:|---:|---:|---:|")
        for name, terms in split:
            m, lo, hi = med(terms)
            print(f"| {name} | {m:.1f} | {lo:.1f} .. {hi:.1f} | {100 * m / tot:.1f}% | {med(terms, 'lat_ms')[0]:.0f} |")
        print()


if __name__ == "__main__":
    main()
