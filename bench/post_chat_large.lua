-- wrk script for the KeyRelay benchmark: like post_chat.lua, with a ~20 KiB chat body (a long
-- conversation), larger than one HTTP/2 DATA frame (16 KiB). Same BENCH_RESULT line.

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer client-key"
-- BENCH_BODY_KB (default 20) sets the size of the long message.
local filler = string.rep("lorem ipsum dolor sit amet ", math.floor((tonumber(os.getenv("BENCH_BODY_KB")) or 20) * 1024 / 27))
wrk.body = '{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":64,"messages":['
  .. '{"role":"system","content":"You are a terse assistant. Answer in one sentence."},'
  .. '{"role":"user","content":"Summarise this document."},'
  .. '{"role":"assistant","content":"Please paste it."},'
  .. '{"role":"user","content":"' .. filler .. '"},'
  .. '{"role":"user","content":"Keep it short, please."}'
  .. ']}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d "
      .. "p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
