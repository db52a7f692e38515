-- wrk script: POST the body in $WRK_BODY with $WRK_CTYPE (default application/json) and, if set,
-- $WRK_HEADER_LENGTH as Inference-Header-Content-Length (Triton's binary tensor extension); at the end,
-- print one JSON line (prefixed RESULT) with requests, duration, latency percentiles and errors.
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CTYPE") or "application/json"
if os.getenv("WRK_HEADER_LENGTH") then
  wrk.headers["Inference-Header-Content-Length"] = os.getenv("WRK_HEADER_LENGTH")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
