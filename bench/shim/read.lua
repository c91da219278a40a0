-- wrk: authenticated READ route (events.poll). Env: JWT, THREAD, AFTER_SEQ.
local jwt, thread, after = os.getenv("JWT"), os.getenv("THREAD"), os.getenv("AFTER_SEQ") or "0"
wrk.method = "GET"
wrk.path = "/api/v1/chat/threads/" .. thread .. "/events?after_seq=" .. after .. "&limit=50"
wrk.headers["Authorization"] = "Bearer " .. jwt
dofile(os.getenv("BENCH_SHIM_DIR") .. "/report.lua")
