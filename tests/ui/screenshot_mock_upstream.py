import json, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
BAD = {"Bearer sk-proj-bad0000000000000000000000000000000000dead"}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.headers.get("Authorization") in BAD:
            return self.reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        self.reply(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0)); req = json.loads(self.rfile.read(n) or b"{}")
        if self.headers.get("Authorization") in BAD:
            return self.reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        if "embeddings" in self.path:
            return self.reply(404, {"error": {"message": "The model `text-embedding-4` does not exist", "type": "invalid_request_error"}})
        if req.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for word in ["Hel", "lo", "!"]:
                self.wfile.write(("data: " + json.dumps({"choices": [{"delta": {"content": word}}]}) + "\n\n").encode()); self.wfile.flush(); time.sleep(0.1)
            self.wfile.write(("data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}) + "\n\ndata: [DONE]\n\n").encode())
            self.close_connection = True
            return
        time.sleep(0.05)
        self.reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": req.get("model", "?"),
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
                         "usage": {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59}})
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
