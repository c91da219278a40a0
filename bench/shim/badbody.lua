-- wrk: authenticated POST whose body is not JSON: the shim answers 400 without a database call.
local jwt, thread = os.getenv("JWT"), os.getenv("THREAD")
local path = "/api/v1/chat/threads/" .. thread .. "/messages"
local headers = { ["Authorization"] = "Bearer " .. jwt, ["Content-Type"] = "application/json" }
function request() return wrk.format("POST", path, headers, '{"content":') end
dofile(os.getenv("BENCH_SHIM_DIR") .. "/report.lua")
