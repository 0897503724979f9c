import hashlib, json, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
# What the mock answers depends on the key (the Authorization header):
BAD = {"Bearer sk-proj-bad0000000000000000000000000000000000dead"}  # 401 invalid_api_key
RATE_LIMITED = {"Bearer sk-proj-b0b0b0b0c1c1c1c1d2d2d2d2e3e3e3e3f4f4f4f4a5a5"}  # 429 with Retry-After
NO_QUOTA = {"Bearer sk-proj-7e57000011112222333344445555666677778888beef"}  # 429 insufficient_quota
RETRY_AFTER_SEC = 900
HEALED = set()  # keys of BAD that POST /__mock/heal made good again (the background re-check finds that)

def tokens(req):
    """Token figures that differ between requests but stay the same for the same request."""
    seed = int(hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:8], 16)
    prompt = 20 + seed % 900
    completion = 5 + (seed >> 10) % 400
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
    def key_fault(self):
        """Answers for the keys that do not work; True when one was sent."""
        auth = self.headers.get("Authorization")
        if auth in BAD and auth not in HEALED:
            self.reply(401, {"error": {"message": "Incorrect API key provided: sk-proj-****dead. You can find your API key at https://platform.openai.com/account/api-keys.",
                                       "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
            return True
        if auth in RATE_LIMITED:
            self.reply(429, {"error": {"message": "Rate limit reached for requests. Limit: 3 / min. Please try again in 15m.",
                                       "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
                       [("Retry-After", str(RETRY_AFTER_SEC))])
            return True
        if auth in NO_QUOTA:
            self.reply(429, {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                                       "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
            return True
        return False
    def do_GET(self):
        if self.key_fault():
            return
        if self.path.startswith("/groq/"):  # the providers shots: a second provider's model list
            ids = ["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "gemma2-9b-it", "qwen-qwq-32b",
                   "deepseek-r1-distill-llama-70b", "mistral-saba-24b"]
            return self.reply(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
        self.reply(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0)); req = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/__mock/heal":
            HEALED.update(BAD)
            return self.reply(200, {"healed": len(HEALED)})
        if self.key_fault():
            return
        if "embeddings" in self.path:
            return self.reply(404, {"error": {"message": "The model `text-embedding-4` does not exist", "type": "invalid_request_error"}})
        usage = tokens(req)
        if req.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for word in ["Hel", "lo", "!"]:
                self.wfile.write(("data: " + json.dumps({"choices": [{"delta": {"content": word}}]}) + "\n\n").encode()); self.wfile.flush(); time.sleep(0.1)
            if (req.get("stream_options") or {}).get("include_usage"):
                self.wfile.write(("data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n").encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
            return
        time.sleep(0.05)
        self.reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": req.get("model", "?"),
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
                         "usage": usage})
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
