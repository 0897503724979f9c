/*
 * mock_upstream: a tiny, fast OpenAI-style upstream for benchmarking KeyRelay.
 *
 * Single thread, epoll, non-blocking sockets, HTTP/1.1 keep-alive, listens on
 * 127.0.0.1 only. Every request (any method, any path) gets 200 with a fixed
 * chat-completion JSON body. The request head is read up to the blank line,
 * then Content-Length bytes of body are read and discarded before answering.
 * Chunked request bodies (as Go's http.Client sends a body of unknown length) are decoded;
 * another Transfer-Encoding is answered with 501 and the connection closed.
 * Requests that arrive pipelined in the same read are answered in order.
 *
 * Server-sent events: a request whose body (its first 4 KiB) contains "stream":true gets a
 * text/event-stream answer with chunked framing instead: "bench_chunks":N events (default 50), each
 * one chat.completion.chunk "data: {...}" event in its own HTTP chunk, then "data: [DONE]" and the
 * last chunk. "bench_interval_ms":M (default 0) spaces them: event k is sent at k*M ms after the
 * request, [DONE] at N*M ms, so N=50, M=100 is a 5-second stream. With M=0 all events are queued
 * at once (one write). Timed streams are driven by the epoll timeout (1 ms
 * resolution, absolute schedule, so errors do not add up); later requests pipelined behind a
 * stream wait for it.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -o mock_upstream mock_upstream.c
 * Usage: mock_upstream PORT [DUMP_FILE]
 * With DUMP_FILE, requests carrying an "X-Bench-Dump" header are appended there (head and body),
 * so a benchmark can check what the proxy really forwarded. Other requests are not recorded.
 * Prints "mock_upstream listening on 127.0.0.1:PORT" when ready; SIGTERM/SIGINT stop it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 16384         /* request head limit */
#define IN_BUF (MAX_HEAD + 4096)
#define MAX_EVENTS 256
#define BODY_CAPTURE 4096      /* request body bytes kept to look for the SSE options */
#define SSE_MAX_CHUNKS 100000

static const char BODY[] =
    "{\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hello from the KeyRelay benchmark mock upstream.\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":11,"
    "\"total_tokens\":53},\"system_fingerprint\":\"fp_bench\"}";

static char g_response[1024];
static size_t g_response_len;

static const char ERR_501[] = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char ERR_431[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char ERR_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct conn {
    int fd;
    char in[IN_BUF];
    size_t in_len;
    long long body_left;   /* >0: bytes of request body still to discard */
    int have_head;         /* head parsed, waiting for body */
    enum { CH_NONE, CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER } chunk_state; /* chunked request body */
    int close_after;       /* Connection: close (or HTTP/1.0 without keep-alive) */
    char *out;             /* pending output */
    size_t out_len, out_off, out_cap;
    int closing;           /* close once output is flushed */
    int dumping;           /* this request's body goes to the dump file */
    char body[BODY_CAPTURE + 1]; /* start of the current request's body, NUL-terminated */
    size_t body_len;
    /* timed SSE stream in progress (stream_idx >= 0): events left to send, schedule */
    long stream_idx;
    long stream_sent, stream_total;
    long long stream_start_ns, stream_interval_ns;
};

static struct conn **g_streams; /* connections with a timed stream in progress */
static long g_nstreams, g_streams_cap;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static FILE *g_dump;

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static int out_append(struct conn *c, const char *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 2048;
        while (cap < c->out_len + len)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p)
            return -1;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static void stream_remove(struct conn *c)
{
    if (c->stream_idx < 0)
        return;
    g_streams[c->stream_idx] = g_streams[--g_nstreams];
    g_streams[c->stream_idx]->stream_idx = c->stream_idx;
    c->stream_idx = -1;
}

static void conn_free(int ep, struct conn *c)
{
    stream_remove(c);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Case-insensitive search for a header line "name:" in the head; returns value start or NULL. */
static const char *find_header(const char *head, size_t head_len, const char *name, size_t *value_len)
{
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', head_len); /* skip request line */
    const char *end = head + head_len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                ++v;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                --ve;
            *value_len = (size_t)(ve - v);
            return v;
        }
        p = eol < end ? eol : NULL;
    }
    return NULL;
}

static int contains_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= len; ++i)
        if (strncasecmp(v + i, token, tl) == 0)
            return 1;
    return 0;
}

static const char SSE_HEAD[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                               "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";

/* Appends SSE event number k (or [DONE] when k < 0) as one HTTP chunk. */
static int sse_append_event(struct conn *c, long k)
{
    char ev[512], chunk[600];
    int n;
    if (k < 0)
        n = snprintf(ev, sizeof ev, "data: [DONE]\n\n");
    else
        n = snprintf(ev, sizeof ev,
                     "data: {\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion.chunk\","
                     "\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,"
                     "\"delta\":{\"content\":\"token%ld \"},\"finish_reason\":null}]}\n\n",
                     k);
    int m = snprintf(chunk, sizeof chunk, "%x\r\n%s\r\n", n, ev);
    if (k < 0)
        m += snprintf(chunk + m, sizeof chunk - (size_t)m, "0\r\n\r\n");
    return out_append(c, chunk, (size_t)m);
}

static long json_long(const char *body, const char *key, long dflt)
{
    const char *p = strstr(body, key);
    if (!p)
        return dflt;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        ++p;
    char *endp = NULL;
    long v = strtol(p, &endp, 10);
    return endp == p ? dflt : v;
}

/* Is the request just read an SSE request? Then queue its start; returns 1 when a timed stream began. */
static int sse_start(struct conn *c, int *handled)
{
    *handled = 0;
    if (!strstr(c->body, "\"stream\":true") && !strstr(c->body, "\"stream\": true"))
        return 0;
    *handled = 1;
    long chunks = json_long(c->body, "\"bench_chunks\"", 50);
    long interval_ms = json_long(c->body, "\"bench_interval_ms\"", 0);
    if (chunks < 0 || chunks > SSE_MAX_CHUNKS)
        chunks = 50;
    if (interval_ms < 0 || interval_ms > 600000)
        interval_ms = 0;
    if (out_append(c, SSE_HEAD, sizeof SSE_HEAD - 1) < 0)
        return -1;
    if (interval_ms == 0 || chunks == 0) {
        for (long k = 0; k < chunks; ++k)
            if (sse_append_event(c, k) < 0)
                return -1;
        return sse_append_event(c, -1) < 0 ? -1 : 0;
    }
    if (sse_append_event(c, 0) < 0) /* event 0 goes out with the head */
        return -1;
    if (g_nstreams == g_streams_cap) {
        long cap = g_streams_cap ? g_streams_cap * 2 : 256;
        struct conn **p = realloc(g_streams, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        g_streams = p;
        g_streams_cap = cap;
    }
    c->stream_idx = g_nstreams;
    g_streams[g_nstreams++] = c;
    c->stream_sent = 1;
    c->stream_total = chunks;
    c->stream_start_ns = now_ns();
    c->stream_interval_ns = interval_ms * 1000000LL;
    return 1;
}

/* Consume complete requests from c->in; queue responses. Returns -1 to close immediately. */
static int process_input(struct conn *c)
{
    size_t pos = 0;
    for (;;) {
        if (c->closing || c->stream_idx >= 0)
            break;
        if (c->have_head && c->chunk_state != CH_NONE && c->chunk_state != CH_DATA) {
            /* chunked request body: a size line, the CRLF after a chunk's data, or a trailer line */
            const char *line = c->in + pos;
            const char *eol = memmem(line, c->in_len - pos, "\r\n", 2);
            if (!eol) {
                if (c->in_len - pos >= MAX_HEAD) {
                    out_append(c, ERR_400, sizeof ERR_400 - 1);
                    c->closing = 1;
                }
                break;
            }
            size_t line_len = (size_t)(eol - line);
            pos += line_len + 2;
            if (c->chunk_state == CH_SIZE) {
                char tmp[32];
                size_t hex_len = 0;
                while (hex_len < line_len && line[hex_len] != ';' && line[hex_len] != ' ')
                    ++hex_len;
                char *endp = NULL;
                long long size = -1;
                if (hex_len > 0 && hex_len < sizeof tmp) {
                    memcpy(tmp, line, hex_len);
                    tmp[hex_len] = '\0';
                    size = strtoll(tmp, &endp, 16);
                    if (*endp != '\0')
                        size = -1;
                }
                if (size < 0) {
                    out_append(c, ERR_400, sizeof ERR_400 - 1);
                    c->closing = 1;
                    break;
                }
                c->chunk_state = size == 0 ? CH_TRAILER : CH_DATA;
                c->body_left = size;
                continue;
            }
            if (c->chunk_state == CH_DATA_END) {
                if (line_len != 0) {
                    out_append(c, ERR_400, sizeof ERR_400 - 1);
                    c->closing = 1;
                    break;
                }
                c->chunk_state = CH_SIZE;
                continue;
            }
            if (line_len != 0) /* CH_TRAILER: skip trailer fields up to the empty line */
                continue;
            c->chunk_state = CH_NONE;
        } else if (c->have_head) {
            size_t avail = c->in_len - pos;
            size_t take = (long long)avail < c->body_left ? avail : (size_t)c->body_left;
            if (c->dumping && take > 0)
                fwrite(c->in + pos, 1, take, g_dump);
            if (c->body_len < BODY_CAPTURE && take > 0) {
                size_t keep = take < BODY_CAPTURE - c->body_len ? take : BODY_CAPTURE - c->body_len;
                memcpy(c->body + c->body_len, c->in + pos, keep);
                c->body_len += keep;
                c->body[c->body_len] = '\0';
            }
            pos += take;
            c->body_left -= (long long)take;
            if (c->body_left > 0)
                break;
            if (c->chunk_state == CH_DATA) {
                c->chunk_state = CH_DATA_END;
                continue;
            }
        }
        if (c->have_head) { /* the whole request is in: answer it */
            c->have_head = 0;
            if (c->dumping) {
                fputs("\n", g_dump);
                fflush(g_dump);
                c->dumping = 0;
            }
            int handled = 0;
            int streaming = sse_start(c, &handled);
            c->body_len = 0;
            c->body[0] = '\0';
            if (streaming < 0)
                return -1;
            if (!handled && out_append(c, g_response, g_response_len) < 0)
                return -1;
            if (streaming)
                continue; /* the loop stops at its top until the stream ends */
            if (c->close_after)
                c->closing = 1;
            continue;
        }
        /* looking for end of head */
        const char *start = c->in + pos;
        size_t avail = c->in_len - pos;
        const char *eoh = memmem(start, avail, "\r\n\r\n", 4);
        if (!eoh) {
            if (avail >= MAX_HEAD) {
                out_append(c, ERR_431, sizeof ERR_431 - 1);
                c->closing = 1;
            }
            break;
        }
        size_t head_len = (size_t)(eoh - start) + 4;
        const char *sp = memchr(start, ' ', head_len);
        if (!sp) {
            out_append(c, ERR_400, sizeof ERR_400 - 1);
            c->closing = 1;
            break;
        }
        size_t vlen = 0;
        const char *v;
        long long clen = 0;
        int chunked = 0;
        if ((v = find_header(start, head_len, "Transfer-Encoding", &vlen))) {
            if (!contains_token(v, vlen, "chunked")) {
                out_append(c, ERR_501, sizeof ERR_501 - 1);
                c->closing = 1;
                break;
            }
            chunked = 1;
        } else if ((v = find_header(start, head_len, "Content-Length", &vlen))) {
            char tmp[32];
            if (vlen == 0 || vlen >= sizeof tmp) {
                out_append(c, ERR_400, sizeof ERR_400 - 1);
                c->closing = 1;
                break;
            }
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            char *endp = NULL;
            clen = strtoll(tmp, &endp, 10);
            if (*endp != '\0' || clen < 0) {
                out_append(c, ERR_400, sizeof ERR_400 - 1);
                c->closing = 1;
                break;
            }
        }
        const char *eol = memchr(start, '\n', head_len);
        int http10 = eol && eol - start >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
        c->close_after = 0;
        if ((v = find_header(start, head_len, "Connection", &vlen))) {
            if (contains_token(v, vlen, "close"))
                c->close_after = 1;
            else if (http10 && !contains_token(v, vlen, "keep-alive"))
                c->close_after = 1;
        } else if (http10) {
            c->close_after = 1;
        }
        if (g_dump && find_header(start, head_len, "X-Bench-Dump", &vlen)) {
            fwrite(start, 1, head_len, g_dump);
            c->dumping = 1;
        }
        pos += head_len;
        c->have_head = 1;
        c->body_left = chunked ? 0 : clen;
        c->chunk_state = chunked ? CH_SIZE : CH_NONE;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return 0;
}

/* Write pending output. Returns 1 if all written, 0 if would block, -1 on error. */
static int flush_output(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    c->out_off = c->out_len = 0;
    return 1;
}

static int update_events(int ep, struct conn *c, int want_out)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Handle readiness on a client connection. Returns -1 when the connection should be freed. */
static int on_conn(int ep, struct conn *c, unsigned events)
{
    if (events & (EPOLLERR))
        return -1;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        for (;;) {
            if (c->in_len == sizeof c->in) {
                /* buffer full: only possible while discarding a large body or with a huge head */
                if (process_input(c) < 0)
                    return -1;
                if (c->in_len == sizeof c->in)
                    break; /* head too large, 431 queued */
            }
            ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
            if (n > 0) {
                c->in_len += (size_t)n;
                continue;
            }
            if (n == 0) {
                /* peer closed its side: answer what we have, then close */
                if (process_input(c) < 0)
                    return -1;
                flush_output(c);
                return -1;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        if (process_input(c) < 0)
            return -1;
    }
    int r = flush_output(c);
    if (r < 0)
        return -1;
    if (r == 1 && c->closing)
        return -1;
    if (update_events(ep, c, r == 0) < 0)
        return -1;
    return 0;
}

/* Sends the events that are due on timed streams; returns the epoll timeout (ms) until the next one. */
static int pump_streams(int ep)
{
    long long now = now_ns(), next = -1;
    for (long i = 0; i < g_nstreams;) {
        struct conn *c = g_streams[i];
        int failed = 0, finished = 0;
        while (c->stream_sent <= c->stream_total
               && c->stream_start_ns + c->stream_sent * c->stream_interval_ns <= now) {
            if (sse_append_event(c, c->stream_sent < c->stream_total ? c->stream_sent : -1) < 0) {
                failed = 1;
                break;
            }
            ++c->stream_sent;
        }
        if (!failed && c->stream_sent > c->stream_total) {
            finished = 1;
            stream_remove(c); /* swaps another stream into slot i */
            if (c->close_after)
                c->closing = 1;
        }
        int r = failed ? -1 : flush_output(c);
        if (r >= 0 && finished && !c->closing)
            r = process_input(c) < 0 ? -1 : flush_output(c); /* requests that waited behind the stream */
        if (r < 0 || (r == 1 && c->closing) || update_events(ep, c, r == 0) < 0) {
            conn_free(ep, c);
            continue; /* slot i now holds another stream (or i == g_nstreams) */
        }
        if (finished)
            continue;
        long long due = c->stream_start_ns + c->stream_sent * c->stream_interval_ns;
        if (next < 0 || due < next)
            next = due;
        ++i;
    }
    if (next < 0)
        return 500;
    long long ms = (next - now + 999999) / 1000000;
    return ms < 0 ? 0 : ms > 500 ? 500 : (int)ms;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PORT [DUMP_FILE]\n", argv[0]);
        return 2;
    }
    char *endp = NULL;
    long port = strtol(argv[1], &endp, 10);
    if (*endp != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "mock_upstream: bad port %s\n", argv[1]);
        return 2;
    }

    if (argc == 3 && !(g_dump = fopen(argv[2], "a"))) {
        perror(argv[2]);
        return 1;
    }

    int n = snprintf(g_response, sizeof g_response,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: keep-alive\r\n\r\n%s",
                     sizeof BODY - 1, BODY);
    if (n < 0 || (size_t)n >= sizeof g_response)
        return 1;
    g_response_len = (size_t)n;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    if (listen(lfd, 1024) < 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* NULL marks the listening socket */
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("epoll_ctl");
        return 1;
    }
    printf("mock_upstream listening on 127.0.0.1:%ld\n", port);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    while (!g_stop) {
        int timeout_ms = pump_streams(ep);
        int k = epoll_wait(ep, events, MAX_EVENTS, timeout_ms);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < k; ++i) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) {
                        if (errno == EINTR)
                            continue;
                        break; /* EAGAIN, or EMFILE etc.: retry on the next wakeup */
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(cfd);
                        continue;
                    }
                    nc->fd = cfd;
                    nc->stream_idx = -1;
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN | EPOLLRDHUP;
                    cev.data.ptr = nc;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev) < 0) {
                        close(cfd);
                        free(nc);
                    }
                }
                continue;
            }
            if (on_conn(ep, c, events[i].events) < 0)
                conn_free(ep, c);
        }
    }
    close(ep);
    close(lfd);
    if (g_dump)
        fclose(g_dump);
    return 0;
}
