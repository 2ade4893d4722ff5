-- wrk script for bench/load.py (make bench): one request (a JSON POST, or a GET), rotating over many API tokens.
--
--   wrk -t2 -c32 -d40s -s bench/load.lua http://127.0.0.1:8000 -- TOKENS_FILE METHOD PATH BODY WINDOW_MS [BUCKET_MS]
--
-- (BODY "-" for none.) Every connection sends requests for WINDOW_MS, then stops sending and
-- waits for its last answer; each thread prints "BENCH_DRAINED" once nothing of its own is in
-- flight, and load.py then ends wrk with SIGINT (wrk's -d is only the longest wait). So no
-- request is left unanswered when wrk exits, and the 2xx count printed here can be compared
-- exactly with the audit rows the server wrote. Each thread rotates over the tokens in
-- TOKENS_FILE (one API key per line; one line for the one-user load) from its own offset.
-- req/s counts the answers received within the window. done() prints one line,
-- "BENCH_RESULT {json}", that load.py parses; answers are counted by class (2xx, 503, other
-- 5xx, other). With BUCKET_MS (the outage runs, bench/faults.py) it also prints
-- one "BENCH_TIMELINE BUCKET_MS slice 2xx 503 5xx other;..." line per thread: its answers in each
-- BUCKET_MS slice of CLOCK_MONOTONIC (the clock of Python's time.monotonic()) by class, so the
-- first 2xx after a restart can be found. (Strings, because wrk crashes copying nested tables.)

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

-- Main state: hand every thread an id, keep the threads for done().
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

-- Thread states.
local requests = {}
local next_index = 0
local window_ms = 0
local deadline = nil
local drained = false
-- Read by done() through thread:get(), hence globals; the timeline's finished slices are text,
-- the current one is slice and its counts by class c1..c4 (2xx, 503, other 5xx, other).
sent, answered, in_window, ok, non2xx, s503, s5xx = 0, 0, 0, 0, 0, 0, 0
bucket_ms, timeline, slice, c1, c2, c3, c4 = 0, "", -1, 0, 0, 0, 0

function init(args)
  local tokens_file, method, path, body = args[1], args[2], args[3], args[4]
  window_ms = tonumber(args[5])
  bucket_ms = tonumber(args[6] or "0")
  if body == "-" then
    body = nil
  end
  for key in io.lines(tokens_file) do
    if key ~= "" then
      local headers = { ["Authorization"] = "Token " .. key, ["User-Agent"] = "wrk-bench" }
      if body then
        headers["Content-Type"] = "application/json"
      end
      table.insert(requests, wrk.format(method, path, headers, body))
    end
  end
  assert(#requests > 0, "no API tokens in " .. tokens_file)
  -- Threads start far apart in the rotation, so they do not send the same user in step.
  next_index = math.floor(thread_id * #requests / 2) % #requests
end

local function report_if_drained()
  if not drained and sent == answered then
    drained = true
    io.write("BENCH_DRAINED\n")
    io.flush()
  end
end

function delay()
  local now = now_ms()
  if deadline == nil then
    deadline = now + window_ms
  end
  if now >= deadline then
    report_if_drained()
    return 3600 * 1000 -- stop sending; load.py (or wrk's -d) ends the run
  end
  return 0
end

function request()
  -- wrk calls request() once before the run to check for pipelining: not a request sent.
  -- Every real one comes after delay(), which sets the deadline.
  if deadline ~= nil then
    sent = sent + 1
  end
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function response(status, headers, body)
  local now = now_ms()
  local late = now >= deadline
  answered = answered + 1
  if not late then
    in_window = in_window + 1
  end
  if bucket_ms > 0 and math.floor(now / bucket_ms) ~= slice then
    if slice >= 0 then
      timeline = timeline .. string.format("%d %d %d %d %d;", slice, c1, c2, c3, c4)
    end
    slice, c1, c2, c3, c4 = math.floor(now / bucket_ms), 0, 0, 0, 0
  end
  if status >= 200 and status < 300 then
    ok, c1 = ok + 1, c1 + 1
  else
    non2xx = non2xx + 1
    if status == 503 then
      s503, c2 = s503 + 1, c2 + 1
    elseif status >= 500 then
      s5xx, c3 = s5xx + 1, c3 + 1
    else
      c4 = c4 + 1
    end
  end
  if late then
    report_if_drained()
  end
end

function done(summary, latency, requests_stats)
  local totals = { sent = 0, answered = 0, in_window = 0, ok = 0, non2xx = 0, s503 = 0, s5xx = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
    if thread:get("bucket_ms") > 0 then
      local last = string.format("%d %d %d %d %d;", thread:get("slice"), thread:get("c1"), thread:get("c2"),
        thread:get("c3"), thread:get("c4"))
      io.write("BENCH_TIMELINE ", thread:get("bucket_ms"), " ", thread:get("timeline"), last, "\n")
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"sent": %d, "answered": %d, "answered_in_window": %d, "ok": %d, "non2xx": %d, '
      .. '"s503": %d, "s5xx": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}}\n',
    totals.sent, totals.answered, totals.in_window, totals.ok, totals.non2xx, totals.s503, totals.s5xx,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    errors.connect, errors.read, errors.write, errors.timeout, errors.status
  ))
end
