-- wrk script for the KeyRelay benchmark: POST a small chat-completions request.
--
-- Five messages with a leading system message, so KeyRelay's system-message reorder rule
-- (defaults: more than 4 messages, depth 3) parses and rewrites every request body.
-- The client key is a placeholder: with a keys file KeyRelay swaps in one of its own keys.

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer client-key"
wrk.body = '{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":64,"messages":['
  .. '{"role":"system","content":"You are a terse assistant. Answer in one sentence."},'
  .. '{"role":"user","content":"What is a reverse proxy?"},'
  .. '{"role":"assistant","content":"A server that forwards client requests to other servers."},'
  .. '{"role":"user","content":"And why would I run one locally?"},'
  .. '{"role":"user","content":"Keep it short, please."}'
  .. ']}'

-- One machine-readable line after wrk's own report, so run.sh can count every error kind.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d "
      .. "p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
