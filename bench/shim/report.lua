-- Machine-readable summary (latencies in microseconds), including p99.9.
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests %d secs %.3f rps %.1f p50_us %d p99_us %d p999_us %d mean_us %.1f max_us %d status_errors %d socket_errors %d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
