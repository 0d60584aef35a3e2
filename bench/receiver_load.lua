-- wrk script: POST pre-signed NetBox-shaped webhooks, cycling through the bodies in BODIES_FILE
-- (one "signature<TAB>body" per line).
local bodies = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%x+)\t(.*)$")
    table.insert(bodies, {sig = sig, body = body})
  end
end

function request()
  i = i % #bodies + 1
  local b = bodies[i]
  return wrk.format("POST", "/webhook", {["Content-Type"] = "application/json", ["X-Hook-Signature"] = b.sig}, b.body)
end

done = function(summary, latency, requests)
  local codes = summary.errors.status
  io.write(string.format("RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, codes,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
