-- wrk: one API request over and over, keeping the shim's Server-Timing header of every response.
-- Env: METHOD (GET), URLPATH, AUTH (the Authorization header), BODY (for POST; "%n" is replaced by
-- a counter so each message is new), TIMING_OUT (file prefix: each wrk thread appends the headers
-- it sees to TIMING_OUT.<thread>). Prints the client's latency summary (µs):
--   RESULT requests N secs S rps R p50_us .. p99_us .. mean_us .. status_errors E socket_errors S
local method, path = os.getenv("METHOD") or "GET", os.getenv("URLPATH")
local auth, body, prefix = os.getenv("AUTH"), os.getenv("BODY"), os.getenv("TIMING_OUT")
local headers = { ["Authorization"] = auth }
if body and body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
local n, tid = 0, 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function init(args)
  seed = (tid or 0) * 1000000000 + math.random(1, 999999) * 1000
  -- one file per thread (a fresh table's address differs in each thread's Lua state)
  if prefix then out = io.open(prefix .. "." .. tostring({}):gsub("[^%w]", ""), "w") end
end
function request()
  n = n + 1
  local b = body and body:gsub("%%n", tostring(seed + n)) or nil
  return wrk.format(method, path, headers, b)
end
function response(status, hdrs, b)
  local st = hdrs["server-timing"] or hdrs["Server-Timing"]
  if out and st then out:write(st, "\n"); out:flush() end
end
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests %d secs %.3f rps %.1f p50_us %d p99_us %d mean_us %.1f status_errors %d socket_errors %d\n",
    summary.requests, secs, summary.requests / secs, latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
