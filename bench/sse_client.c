/*
 * sse_client: a streaming (server-sent events) load client for the KeyRelay benchmark.
 *
 * Opens CONNS connections to 127.0.0.1:PORT at once (single thread, epoll, non-blocking) and on
 * each sends REQUESTS chat-completion requests one after another over keep-alive, each asking the
 * bench mock (bench/mock_upstream.c) for a stream of CHUNKS events spaced INTERVAL_MS apart. It
 * decodes the answer (chunked, Content-Length or close-delimited framing), counts the
 * "data: {...}" events and the final "data: [DONE]", and times each response:
 *   ttfb  = from the request (the connect() for a connection's first request) to the first body byte
 *   total = from the request to the end of the response
 * A response is complete when it is a 200 with all CHUNKS events, [DONE] and a proper end; it is in
 * time when it is complete and total <= DEADLINE_MS. The first WARMUP responses of each connection
 * are not counted.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -o sse_client sse_client.c
 * Usage: sse_client -p PORT [-n CONNS=1] [-r REQUESTS=1] [-w WARMUP=0] [-c CHUNKS=50]
 *                   [-i INTERVAL_MS=0] [-d DEADLINE_MS=0 (none)] [-t TIMEOUT_S=30]
 * Prints one line:
 *   SSE_RESULT conns=.. responses=.. complete=.. in_time=.. failed=.. ttfb_p50_us=.. ttfb_p99_us=..
 *   total_p50_us=.. total_p99_us=.. total_max_us=.. first_error="..."
 * Exit status: 0 when every counted response was complete, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CONNECTING, ST_SENDING, ST_HEAD, ST_BODY, ST_DONE };
enum framing { FR_CHUNKED, FR_LENGTH, FR_CLOSE };
enum chunk_state { CK_SIZE, CK_DATA, CK_DATA_END, CK_TRAILER, CK_END };

#define HEAD_MAX 16384
#define TAIL_KEEP 11 /* strlen("data: [DONE]") - 1 */

struct conn {
    int fd;
    enum state st;
    size_t sent;
    int requests_left; /* including the one in flight */
    int responses;     /* finished on this connection */
    long long t_start, t_first;
    char head[HEAD_MAX];
    size_t head_len;
    int status;
    enum framing fr;
    long long body_left; /* FR_LENGTH: bytes left; FR_CHUNKED: bytes left in the current chunk */
    enum chunk_state ck;
    char line[64];
    size_t line_len;
    char tail[TAIL_KEEP];
    size_t tail_len;
    long events;
    int done_seen;
};

static char g_request[4096];
static size_t g_request_len;
static long g_chunks = 50;
static long long g_deadline_us;
static int g_warmup;
static long long *g_ttfb, *g_total;
static long g_nttfb, g_ntotal;
static long g_responses, g_complete, g_in_time, g_failed;
static char g_first_error[200];

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void note_error(const char *what)
{
    if (!g_first_error[0])
        snprintf(g_first_error, sizeof g_first_error, "%s", what);
}

/* Counts "data: {" and "data: [DONE]" in decoded body bytes, across read boundaries. */
static void scan_body(struct conn *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (!c->t_first)
        c->t_first = now_ns();
    char buf[TAIL_KEEP + 65536];
    while (len > 0) {
        size_t take = len < 65536 ? len : 65536;
        memcpy(buf, c->tail, c->tail_len);
        memcpy(buf + c->tail_len, data, take);
        size_t n = c->tail_len + take;
        for (size_t i = 0; i + 7 <= n; ++i) {
            if (buf[i] != 'd' || memcmp(buf + i, "data: ", 6) != 0)
                continue;
            if (buf[i + 6] == '{' && i + 7 > c->tail_len)
                ++c->events;
            else if (i + 12 <= n && memcmp(buf + i + 6, "[DONE]", 6) == 0 && i + 12 > c->tail_len)
                c->done_seen = 1;
        }
        c->tail_len = n < TAIL_KEEP ? n : TAIL_KEEP;
        memcpy(c->tail, buf + n - c->tail_len, c->tail_len);
        data += take;
        len -= take;
    }
}

static void finish_response(struct conn *c, int ok_framing)
{
    long long t_end = now_ns();
    int counted = c->responses >= g_warmup;
    ++c->responses;
    --c->requests_left;
    if (!counted)
        return;
    ++g_responses;
    int complete = ok_framing && c->status == 200 && c->events == g_chunks && c->done_seen;
    if (c->t_first)
        g_ttfb[g_nttfb++] = (c->t_first - c->t_start) / 1000;
    if (complete) {
        long long total = (t_end - c->t_start) / 1000;
        g_total[g_ntotal++] = total;
        ++g_complete;
        if (!g_deadline_us || total <= g_deadline_us)
            ++g_in_time;
    } else {
        ++g_failed;
        char msg[160];
        snprintf(msg, sizeof msg, "incomplete response: status %d, %ld of %ld events, done=%d, framing %s",
                 c->status, c->events, g_chunks, c->done_seen, ok_framing ? "ok" : "cut");
        note_error(msg);
    }
}

static void reset_response(struct conn *c)
{
    c->sent = 0;
    c->head_len = 0;
    c->status = 0;
    c->line_len = 0;
    c->tail_len = 0;
    c->events = 0;
    c->done_seen = 0;
    c->t_first = 0;
}

static int parse_head(struct conn *c)
{
    char *eoh = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    if (!eoh)
        return 0;
    size_t hlen = (size_t)(eoh - c->head) + 4;
    if (c->head_len < 12 || memcmp(c->head, "HTTP/1.", 7) != 0)
        return -1;
    c->status = atoi(c->head + 9);
    c->fr = FR_CLOSE;
    for (char *p = memchr(c->head, '\n', hlen); p && p < eoh; p = memchr(p + 1, '\n', (size_t)(eoh - p))) {
        char *line = p + 1;
        if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
            char *eol = memchr(line, '\n', (size_t)(eoh + 2 - line));
            if (eol && memmem(line, (size_t)(eol - line), "chunked", 7)) {
                c->fr = FR_CHUNKED;
                c->ck = CK_SIZE;
                c->body_left = 0;
            }
        } else if (strncasecmp(line, "Content-Length:", 15) == 0 && c->fr != FR_CHUNKED) {
            c->fr = FR_LENGTH;
            c->body_left = atoll(line + 15);
        }
    }
    return (int)hlen;
}

/* Decodes body bytes; returns 1 when the response ended, 0 for more, -1 on a framing error. */
static int feed_body(struct conn *c, const char *p, size_t n)
{
    if (c->fr == FR_CLOSE) {
        scan_body(c, p, n);
        return 0;
    }
    if (c->fr == FR_LENGTH) {
        size_t take = (long long)n < c->body_left ? n : (size_t)c->body_left;
        scan_body(c, p, take);
        c->body_left -= (long long)take;
        return c->body_left == 0 ? 1 : 0;
    }
    while (n > 0) {
        if (c->ck == CK_DATA) {
            size_t take = (long long)n < c->body_left ? n : (size_t)c->body_left;
            scan_body(c, p, take);
            p += take;
            n -= take;
            c->body_left -= (long long)take;
            if (c->body_left == 0)
                c->ck = CK_DATA_END;
            continue;
        }
        /* line-based states: collect up to CRLF */
        char ch = *p++;
        --n;
        if (ch != '\n') {
            if (c->line_len + 1 >= sizeof c->line)
                return -1;
            c->line[c->line_len++] = ch;
            continue;
        }
        if (c->line_len > 0 && c->line[c->line_len - 1] == '\r')
            --c->line_len;
        c->line[c->line_len] = '\0';
        size_t len = c->line_len;
        c->line_len = 0;
        if (c->ck == CK_SIZE) {
            char *endp = NULL;
            long long size = strtoll(c->line, &endp, 16);
            if (endp == c->line || size < 0)
                return -1;
            if (size == 0) {
                c->ck = CK_TRAILER;
            } else {
                c->ck = CK_DATA;
                c->body_left = size;
            }
        } else if (c->ck == CK_DATA_END) {
            if (len != 0)
                return -1;
            c->ck = CK_SIZE;
        } else if (c->ck == CK_TRAILER) {
            if (len == 0) {
                c->ck = CK_END;
                return 1;
            }
        }
    }
    return 0;
}

static int want_events(int ep, struct conn *c, unsigned events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = c;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void close_conn(int ep, struct conn *c, const char *error)
{
    if (error) {
        note_error(error);
        /* the response in flight and every request not yet sent on this connection fail */
        while (c->requests_left > 0) {
            if (c->responses++ >= g_warmup) {
                ++g_responses;
                ++g_failed;
            }
            --c->requests_left;
        }
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->st = ST_DONE;
}

static void try_send(int ep, struct conn *c)
{
    while (c->sent < g_request_len) {
        ssize_t n = send(c->fd, g_request + c->sent, g_request_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_events(ep, c, EPOLLIN | EPOLLOUT);
            return;
        } else {
            char msg[96];
            snprintf(msg, sizeof msg, "send: %s", strerror(errno));
            close_conn(ep, c, msg);
            return;
        }
    }
    c->st = ST_HEAD;
    want_events(ep, c, EPOLLIN);
}

static void on_readable(int ep, struct conn *c)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (n == 0 && c->st == ST_BODY && c->fr == FR_CLOSE) {
                finish_response(c, 1);
                close_conn(ep, c, c->requests_left > 0 ? "server closed a close-delimited keep-alive" : NULL);
                return;
            }
            char msg[96];
            snprintf(msg, sizeof msg, n == 0 ? "server closed the connection mid-response" : "recv: %s",
                     strerror(errno));
            if (c->st == ST_BODY) { /* count what arrived as an incomplete response */
                finish_response(c, 0);
            }
            close_conn(ep, c, msg);
            return;
        }
        const char *p = buf;
        size_t left = (size_t)n;
        while (left > 0) {
            if (c->st == ST_HEAD) {
                size_t take = left < sizeof c->head - c->head_len ? left : sizeof c->head - c->head_len;
                memcpy(c->head + c->head_len, p, take);
                size_t before = c->head_len;
                c->head_len += take;
                int h = parse_head(c);
                if (h < 0 || (h == 0 && c->head_len == sizeof c->head)) {
                    close_conn(ep, c, "bad response head");
                    return;
                }
                if (h == 0) {
                    left -= take;
                    p += take;
                    continue;
                }
                size_t used = (size_t)h - before;
                p += used;
                left -= used;
                c->st = ST_BODY;
                if (c->fr == FR_LENGTH && c->body_left == 0) {
                    finish_response(c, 1);
                    goto next_request;
                }
                continue;
            }
            if (c->st != ST_BODY) {
                close_conn(ep, c, "data after the end of a response");
                return;
            }
            /* feed the body decoder byte-exact: it returns at the response end */
            size_t consumed = left;
            int r;
            if (c->fr == FR_CHUNKED) {
                /* feed_body stops only at the end; anything after it is unexpected */
                r = feed_body(c, p, left);
            } else if (c->fr == FR_LENGTH) {
                consumed = (long long)left < c->body_left ? left : (size_t)c->body_left;
                r = feed_body(c, p, consumed);
            } else {
                r = feed_body(c, p, left);
            }
            if (r < 0) {
                finish_response(c, 0);
                close_conn(ep, c, "bad chunked framing");
                return;
            }
            p += consumed;
            left -= consumed;
            if (r == 0)
                continue;
            finish_response(c, 1);
        next_request:
            if (c->requests_left <= 0) {
                close_conn(ep, c, NULL);
                return;
            }
            reset_response(c);
            c->st = ST_SENDING;
            c->t_start = now_ns();
            try_send(ep, c);
            if (c->st == ST_DONE)
                return;
            if (left > 0) {
                close_conn(ep, c, "unexpected bytes after a response");
                return;
            }
        }
    }
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static long long pct(long long *v, long n, double p)
{
    if (n == 0)
        return -1;
    long idx = (long)(p * (double)n + 0.999999) - 1; /* nearest rank */
    if (idx < 0)
        idx = 0;
    if (idx >= n)
        idx = n - 1;
    return v[idx];
}

int main(int argc, char **argv)
{
    int port = 0, conns = 1, requests = 1, timeout_s = 30;
    long interval_ms = 0, deadline_ms = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:n:r:w:c:i:d:t:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'n': conns = atoi(optarg); break;
        case 'r': requests = atoi(optarg); break;
        case 'w': g_warmup = atoi(optarg); break;
        case 'c': g_chunks = atol(optarg); break;
        case 'i': interval_ms = atol(optarg); break;
        case 'd': deadline_ms = atol(optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-n CONNS] [-r REQUESTS] [-w WARMUP] [-c CHUNKS] [-i INTERVAL_MS] "
                            "[-d DEADLINE_MS] [-t TIMEOUT_S]\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || conns < 1 || requests < 1 || g_warmup < 0 || g_warmup >= requests
        || g_chunks < 0 || interval_ms < 0 || timeout_s < 1) {
        fprintf(stderr, "sse_client: bad arguments (see the usage at the top of sse_client.c)\n");
        return 2;
    }
    g_deadline_us = deadline_ms * 1000;

    /* As many descriptors as allowed: the benchmark opens 1000 streams at once. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    char body[1024];
    int blen = snprintf(body, sizeof body,
                        "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"bench_chunks\":%ld,\"bench_interval_ms\":%ld,"
                        "\"messages\":[{\"role\":\"system\",\"content\":\"You are a terse assistant.\"},"
                        "{\"role\":\"user\",\"content\":\"What is a reverse proxy?\"},"
                        "{\"role\":\"assistant\",\"content\":\"A server that forwards requests.\"},"
                        "{\"role\":\"user\",\"content\":\"And why would I run one locally?\"},"
                        "{\"role\":\"user\",\"content\":\"Keep it short, please.\"}]}",
                        g_chunks, interval_ms);
    g_request_len = (size_t)snprintf(g_request, sizeof g_request,
                                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                     "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                                     "Authorization: Bearer client-key\r\nContent-Length: %d\r\n\r\n%s",
                                     port, blen, body);

    long max_resp = (long)conns * (requests - g_warmup);
    g_ttfb = calloc((size_t)max_resp, sizeof *g_ttfb);
    g_total = calloc((size_t)max_resp, sizeof *g_total);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!g_ttfb || !g_total || !cs || ep < 0) {
        perror("sse_client");
        return 1;
    }

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int open_conns = 0;
    for (int i = 0; i < conns; ++i) {
        struct conn *c = &cs[i];
        c->requests_left = requests;
        c->t_start = now_ns();
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "socket: %s", strerror(errno));
            note_error(msg);
            g_responses += requests - g_warmup;
            g_failed += requests - g_warmup;
            c->st = ST_DONE;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLOUT;
        ev.data.ptr = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        ++open_conns;
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
            c->st = ST_SENDING;
            try_send(ep, c);
        } else if (errno == EINPROGRESS) {
            c->st = ST_CONNECTING;
        } else {
            char msg[96];
            snprintf(msg, sizeof msg, "connect: %s", strerror(errno));
            close_conn(ep, c, msg);
        }
    }

    long long deadline = now_ns() + (long long)timeout_s * 1000000000LL;
    struct epoll_event events[256];
    for (;;) {
        int active = 0;
        for (int i = 0; i < conns; ++i)
            active += cs[i].st != ST_DONE;
        if (!active)
            break;
        long long left_ms = (deadline - now_ns()) / 1000000;
        if (left_ms <= 0) {
            for (int i = 0; i < conns; ++i)
                if (cs[i].st != ST_DONE) {
                    if (cs[i].st == ST_BODY)
                        finish_response(&cs[i], 0);
                    close_conn(ep, &cs[i], "timed out");
                }
            break;
        }
        int k = epoll_wait(ep, events, 256, left_ms > 1000 ? 1000 : (int)left_ms);
        if (k < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (int j = 0; j < k; ++j) {
            struct conn *c = events[j].data.ptr;
            if (c->st == ST_DONE)
                continue;
            if (c->st == ST_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    char msg[96];
                    snprintf(msg, sizeof msg, "connect: %s", strerror(err));
                    close_conn(ep, c, msg);
                    continue;
                }
                c->st = ST_SENDING;
            }
            if (c->st == ST_SENDING) {
                try_send(ep, c);
                continue;
            }
            if (events[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(ep, c);
        }
    }
    (void)open_conns;

    qsort(g_ttfb, (size_t)g_nttfb, sizeof *g_ttfb, cmp_ll);
    qsort(g_total, (size_t)g_ntotal, sizeof *g_total, cmp_ll);
    printf("SSE_RESULT conns=%d responses=%ld complete=%ld in_time=%ld failed=%ld ttfb_p50_us=%lld "
           "ttfb_p99_us=%lld total_p50_us=%lld total_p99_us=%lld total_max_us=%lld first_error=\"%s\"\n",
           conns, g_responses, g_complete, g_in_time, g_failed, pct(g_ttfb, g_nttfb, 0.5),
           pct(g_ttfb, g_nttfb, 0.99), pct(g_total, g_ntotal, 0.5), pct(g_total, g_ntotal, 0.99),
           g_ntotal ? g_total[g_ntotal - 1] : -1, g_first_error);
    return g_failed == 0 && g_complete == g_responses ? 0 : 1;
}
