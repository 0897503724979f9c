#!/usr/bin/env python3
"""Memory of KeyRelay while many clients read a large event stream slowly (issue 16's back-pressure targets).

Starts a local upstream that answers every GET with a 23 MB text/event-stream, and `keyrelay --headless` in front
of it on free ports; then N clients (default 100) read through KeyRelay at RATE bytes/s each (default 40 KB/s;
0 = never read) for SECONDS (default 10) with a 32 KiB receive buffer. Prints KeyRelay's RSS before and its peak
while the clients read (sampled every 200 ms), and how many clients were cut off.

Usage: bench/slow_clients.py BUILD_DIR/app/keyrelay [--clients N] [--rate BYTES_PER_S] [--seconds S]
"""
import argparse, asyncio, http.server, os, socket, socketserver, subprocess, sys, tempfile, threading, time

EVENT = b'data: {"choices":[{"delta":{"content":"' + b"x" * 200 + b'"}}]}\n\n'
STREAM = EVENT * (23 * 1024 * 1024 // len(EVENT))


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(STREAM)))
        self.end_headers()
        try:
            self.wfile.write(STREAM)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


async def client(port, index, rate, seconds, results):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16384)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    writer.write(f"GET /v1/files/{index}/content HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    got, closed, start = 0, False, time.monotonic()
    while time.monotonic() - start < seconds:
        if rate == 0:
            await asyncio.sleep(0.2)
            continue
        try:
            data = await asyncio.wait_for(reader.read(4096), 1.0)
        except asyncio.TimeoutError:
            continue
        if not data:
            closed = True
            break
        got += len(data)
        ahead = got - rate * (time.monotonic() - start)
        if ahead > 0:
            await asyncio.sleep(ahead / rate)
    results.append((got, closed))
    writer.close()


async def run(args, port, pid):
    before = rss_kib(pid)
    results, peak = [], before
    tasks = [asyncio.create_task(client(port, i, args.rate, args.seconds, results)) for i in range(args.clients)]
    while not all(task.done() for task in tasks):
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.2)
    cut = sum(1 for _, closed in results if closed)
    print(f"{args.clients} clients at {args.rate} B/s for {args.seconds} s: RSS before {before / 1024:.1f} MB, "
          f"peak {peak / 1024:.1f} MB, growth {(peak - before) / 1024:.1f} MB; cut off: {cut}; "
          f"bytes read per client: {min(g for g, _ in results)}..{max(g for g, _ in results)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=int, default=40 * 1024)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    upstream_port, proxy_port = free_port(), free_port()
    server = ThreadingServer(("127.0.0.1", upstream_port), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as work:
        keys = os.path.join(work, "keys.txt")
        with open(os.open(keys, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("sk-bench-fake-key-one-0000000000\n")
        env = dict(os.environ, KEYRELAY_KEYSTORE="file", XDG_CONFIG_HOME=os.path.join(work, "xdg"))
        proxy = subprocess.Popen([args.binary, "--headless", "--quiet", "--listen", f"127.0.0.1:{proxy_port}",
                                  "--upstream", f"http://127.0.0.1:{upstream_port}", "--keys-file", keys],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", proxy_port), 0.1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # One whole stream first: what a request needs is loaded before measuring.
            with socket.create_connection(("127.0.0.1", proxy_port)) as warm:
                warm.sendall(f"GET /v1/files/warm/content HTTP/1.1\r\nHost: 127.0.0.1:{proxy_port}\r\n"
                             "Connection: close\r\n\r\n".encode())
                while warm.recv(1 << 20):
                    pass
            time.sleep(2)  # the idle trim after the last request
            asyncio.run(run(args, proxy_port, proxy.pid))
        finally:
            proxy.terminate()
            proxy.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
