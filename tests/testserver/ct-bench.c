/*
 * ct-bench: the load client of deploy/bench.sh. It talks ct-kv's protocol and measures on the
 * client, which is where a user feels the cost: every latency is from the request's send() to
 * the reply's arrival, clocked here with CLOCK_MONOTONIC.
 *
 *   ct-bench rr   --server IP:PORT [--connections 8] [--duration-s 10] [--warmup-s 1]
 *                 [--interval-ms 0] [--payload 32] [--timeout-s 30] [--latencies FILE]
 *   ct-bench bulk --server IP:PORT [--connections 1] [--duration-s 10] [--warmup-s 1]
 *                 [--line-bytes 16384] [--window 16] [--timeout-s 30]
 *
 * rr: one request in flight per connection; --interval-ms 0 sends the next one as soon as the
 *   reply is in (closed loop, for throughput and latency), N > 0 paces each connection (for
 *   failover stalls). Replies are checked (byte total and FNV-1a hash, as ct-kv-client does),
 *   so a wrong answer is never counted as a fast one.
 * bulk: up to --window lines of --line-bytes in flight per connection: an upload, counted in
 *   bytes the server acknowledged.
 *
 * A connection that is reset, closed, answered wrongly or not answered within --timeout-s is
 * counted as failed and not reopened: after a failover, how many connections survived is a
 * result. The last line is always
 *   BENCH mode=... connections=N survived=S failed=F resets=.. eofs=.. mismatches=.. timeouts=..
 *         connect_failures=.. requests=.. replies=.. seconds=.. rps=.. mbps=.. p50_us=.. p90_us=..
 *         p99_us=.. p999_us=.. max_us=.. longest_stall_ms=..
 * where percentiles cover the replies after the warm-up, and longest_stall_ms is the longest wait
 * for a reply on a connection that survived. --latencies FILE writes every latency (µs), one a line.
 * SIGUSR1 (sent after a failover) makes the client finish as soon as every connection has either
 * failed or been answered a request sent after the signal, so no connection is counted as a
 * survivor merely because it had not yet heard from the new server. SIGINT stops it at once.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define MAX_CONNS 2000
#define MAX_LINE 65536

enum state { CONNECTING, OPEN, FAILED };

struct conn {
    int fd;
    enum state st;
    uint64_t next_n;        /* number of the next request to send */
    uint64_t acked_n;       /* requests answered */
    uint64_t sent_total;    /* bytes sent so far (what the server's total will reach) */
    uint64_t hash;          /* FNV-1a over every byte sent */
    /* Per request in flight: when it was sent, and the total and hash the reply must carry. */
    int64_t *sent_at_us;
    uint64_t *exp_total, *exp_hash;
    int inflight;
    int64_t next_at_us;
    int64_t longest_us;
    int64_t last_answered_sent_us;  /* send time of the newest request answered */
    char *out; size_t out_len, out_off;
    char in[4096]; size_t in_len;
};

static struct conn conns[MAX_CONNS];
static int nconns = 8, duration_s = 10, warmup_s = 1, interval_ms = 0, payload = 32, timeout_s = 30;
static int line_bytes = 16384, window = 16, bulk = 0;
static const char *latency_file = NULL;
static struct sockaddr_in server;
static volatile sig_atomic_t stop_requested = 0, mark_requested = 0;
static int64_t mark_us = 0;

static int64_t *lat; static size_t nlat, caplat;
static uint64_t requests, replies, bytes_acked_after_warmup, resets, eofs, mismatches, timeouts, connect_failures;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= FNV_PRIME; }
    return h;
}

static void on_signal(int sig) { (void)sig; stop_requested = 1; }
static void on_mark(int sig) { (void)sig; mark_requested = 1; }

static void usage(void)
{
    fprintf(stderr, "usage: ct-bench rr|bulk --server IP:PORT [--connections N] [--duration-s S] [--warmup-s S] "
                    "[--interval-ms MS] [--payload B] [--line-bytes B] [--window W] [--timeout-s S] [--latencies FILE]\n");
    exit(2);
}

static void fail_conn(struct conn *c, uint64_t *counter, const char *why, int idx)
{
    if (c->st == FAILED) return;
    (*counter)++;
    fprintf(stderr, "ct-bench: connection %d failed: %s after %llu replies\n", idx, why, (unsigned long long)c->acked_n);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->st = FAILED;
}

static void record(int64_t us)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat) { perror("realloc"); exit(1); }
    }
    lat[nlat++] = us;
}

/* Queues one request on c: "REQ <n> <payload>\n", remembering what the reply must say. */
static void send_request(struct conn *c, int64_t t)
{
    int size = bulk ? line_bytes : payload;
    char head[48];
    int hl = snprintf(head, sizeof head, "REQ %llu ", (unsigned long long)c->next_n);
    size_t len = (size_t)hl + (size_t)size + 1;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    c->out = realloc(c->out, c->out_len + len);
    if (!c->out) { perror("realloc"); exit(1); }
    char *p = c->out + c->out_len;
    memcpy(p, head, (size_t)hl);
    for (int i = 0; i < size; i++) p[hl + i] = (char)('a' + (c->next_n + (uint64_t)i) % 26);
    p[len - 1] = '\n';
    c->hash = fnv1a(c->hash, (unsigned char *)p, len);
    c->sent_total += len;
    c->out_len += len;
    int slot = c->inflight++;
    c->sent_at_us[slot] = t;
    c->exp_total[slot] = c->sent_total;
    c->exp_hash[slot] = c->hash;
    c->next_n++;
    requests++;
}

static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->out_off += (size_t)w;
    }
    return 0;
}

/* One reply line "ACK <n> <total> <hash>". Returns 0, or -1 on a mismatch. */
static int on_reply(struct conn *c, const char *line, int64_t t, int64_t measure_from)
{
    unsigned long long n, total, hash;
    if (c->inflight == 0 || sscanf(line, "ACK %llu %llu %llx", &n, &total, &hash) != 3) return -1;
    if (n != c->acked_n || total != c->exp_total[0] || hash != c->exp_hash[0]) return -1;
    int64_t us = t - c->sent_at_us[0];
    if (us > c->longest_us) c->longest_us = us;
    c->last_answered_sent_us = c->sent_at_us[0];
    if (c->sent_at_us[0] >= measure_from) {
        record(us);
        if (bulk) bytes_acked_after_warmup += (uint64_t)line_bytes;
    }
    memmove(c->sent_at_us, c->sent_at_us + 1, (size_t)(c->inflight - 1) * sizeof *c->sent_at_us);
    memmove(c->exp_total, c->exp_total + 1, (size_t)(c->inflight - 1) * sizeof *c->exp_total);
    memmove(c->exp_hash, c->exp_hash + 1, (size_t)(c->inflight - 1) * sizeof *c->exp_hash);
    c->inflight--;
    c->acked_n++;
    replies++;
    return 0;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(double p)
{
    if (nlat == 0) return 0;
    size_t i = (size_t)(p * (double)(nlat - 1) + 0.5);
    return lat[i];
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    if (strcmp(argv[1], "bulk") == 0) { bulk = 1; nconns = 1; }
    else if (strcmp(argv[1], "rr") != 0) usage();
    const char *target = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--server")) target = v;
        else if (!strcmp(a, "--connections")) nconns = atoi(v);
        else if (!strcmp(a, "--duration-s")) duration_s = atoi(v);
        else if (!strcmp(a, "--warmup-s")) warmup_s = atoi(v);
        else if (!strcmp(a, "--interval-ms")) interval_ms = atoi(v);
        else if (!strcmp(a, "--payload")) payload = atoi(v);
        else if (!strcmp(a, "--line-bytes")) line_bytes = atoi(v);
        else if (!strcmp(a, "--window")) window = atoi(v);
        else if (!strcmp(a, "--timeout-s")) timeout_s = atoi(v);
        else if (!strcmp(a, "--latencies")) latency_file = v;
        else usage();
        i++;
    }
    if (!target || nconns < 1 || nconns > MAX_CONNS || duration_s < 1 || payload < 1 || line_bytes < 1
        || line_bytes > MAX_LINE - 64 || window < 1 || timeout_s < 1) usage();
    if (!bulk) window = 1;
    char host[64];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof host) usage();
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = 0;
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) usage();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGUSR1, on_mark);

    int64_t start = now_us();
    int64_t measure_from = start + (int64_t)warmup_s * 1000000;
    int64_t end = measure_from + (int64_t)duration_s * 1000000;
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->sent_at_us = calloc((size_t)window, sizeof *c->sent_at_us);
        c->exp_total = calloc((size_t)window, sizeof *c->exp_total);
        c->exp_hash = calloc((size_t)window, sizeof *c->exp_hash);
        c->hash = FNV_OFFSET;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS) {
            fail_conn(c, &connect_failures, strerror(errno), i);
            continue;
        }
        c->st = CONNECTING;
        /* Spread paced connections over one interval, so they do not all fire together. */
        c->next_at_us = start + (interval_ms > 0 ? (int64_t)interval_ms * 1000 * i / nconns : 0);
    }

    struct pollfd *pfd = calloc((size_t)nconns, sizeof *pfd);
    for (;;) {
        int64_t t = now_us();
        if (stop_requested || t >= end) break;
        if (mark_requested && mark_us == 0) mark_us = t;
        if (mark_us > 0) {
            /* Done once every connection is either failed or answered a request sent after the mark: a
             * connection that has not heard from the server since then could still be reset or hang. */
            int pending = 0;
            for (int i = 0; i < nconns; i++)
                if (conns[i].st != FAILED && conns[i].last_answered_sent_us < mark_us) pending++;
            if (pending == 0) break;
        }
        int live = 0;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            pfd[i].fd = -1;
            pfd[i].events = 0;
            if (c->st == FAILED) continue;
            live++;
            if (c->st == CONNECTING) {
                if (t - start > (int64_t)timeout_s * 1000000) { fail_conn(c, &connect_failures, "connect timeout", i); continue; }
                pfd[i].fd = c->fd; pfd[i].events = POLLOUT;
                continue;
            }
            if (c->inflight > 0 && t - c->sent_at_us[0] > (int64_t)timeout_s * 1000000) { fail_conn(c, &timeouts, "reply timeout", i); continue; }
            while (c->inflight < window && t >= c->next_at_us) {
                send_request(c, t);
                if (interval_ms > 0) c->next_at_us += (int64_t)interval_ms * 1000;
            }
            if (flush_out(c) < 0) { fail_conn(c, errno == ECONNRESET || errno == EPIPE ? &resets : &eofs, strerror(errno), i); continue; }
            pfd[i].fd = c->fd;
            pfd[i].events = POLLIN | (c->out_off < c->out_len ? POLLOUT : 0);
        }
        if (live == 0) break;
        int wait_ms = 100;
        if (interval_ms > 0) wait_ms = interval_ms < 100 ? interval_ms : 100;
        int r = poll(pfd, (nfds_t)nconns, wait_ms);
        if (r < 0) { if (errno == EINTR) continue; perror("poll"); return 1; }
        t = now_us();
        for (int i = 0; i < nconns && r > 0; i++) {
            struct conn *c = &conns[i];
            if (pfd[i].fd < 0 || !pfd[i].revents) continue;
            if (c->st == CONNECTING) {
                int err = 0; socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) { fail_conn(c, &connect_failures, strerror(err), i); continue; }
                c->st = OPEN;
                if (c->next_at_us < t && interval_ms == 0) c->next_at_us = t;
                continue;
            }
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
                ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len - 1, 0);
                if (n == 0) { fail_conn(c, &eofs, "connection closed by the server", i); continue; }
                if (n < 0) {
                    if (errno == EAGAIN || errno == EINTR) continue;
                    fail_conn(c, errno == ECONNRESET ? &resets : &eofs, strerror(errno), i);
                    continue;
                }
                c->in_len += (size_t)n;
                size_t s = 0;
                for (size_t k = 0; k < c->in_len; k++) {
                    if (c->in[k] != '\n') continue;
                    c->in[k] = 0;
                    if (on_reply(c, c->in + s, t, measure_from) < 0) { fail_conn(c, &mismatches, "reply does not match what was sent", i); break; }
                    s = k + 1;
                    if (interval_ms == 0) c->next_at_us = t;
                }
                if (c->st == FAILED) continue;
                memmove(c->in, c->in + s, c->in_len - s);
                c->in_len -= s;
                if (c->in_len >= sizeof c->in - 1) { fail_conn(c, &mismatches, "reply line too long", i); continue; }
            }
            if ((pfd[i].revents & POLLOUT) && flush_out(c) < 0) fail_conn(c, &resets, strerror(errno), i);
        }
    }

    /* A connection that waits for a reply when time is up counts its wait so far as a stall. */
    int64_t t = now_us(), longest = 0;
    int survived = 0, failed = 0;
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->st != OPEN) { failed++; continue; }
        survived++;
        int64_t w = c->inflight > 0 ? t - c->sent_at_us[0] : 0;
        if (w > c->longest_us) c->longest_us = w;
        if (c->longest_us > longest) longest = c->longest_us;
    }
    if (latency_file) {
        FILE *f = fopen(latency_file, "w");
        if (!f) { perror(latency_file); return 1; }
        for (size_t i = 0; i < nlat; i++) fprintf(f, "%lld\n", (long long)lat[i]);
        fclose(f);
    }
    qsort(lat, nlat, sizeof *lat, cmp64);
    double secs = (double)(t - measure_from) / 1e6;
    if (secs <= 0) secs = 1e-6;
    printf("BENCH mode=%s connections=%d survived=%d failed=%d resets=%llu eofs=%llu mismatches=%llu timeouts=%llu "
           "connect_failures=%llu requests=%llu replies=%llu measured=%zu seconds=%.3f rps=%.1f mbps=%.2f p50_us=%lld "
           "p90_us=%lld p99_us=%lld p999_us=%lld max_us=%lld longest_stall_ms=%lld\n",
           bulk ? "bulk" : "rr", nconns, survived, failed, (unsigned long long)resets, (unsigned long long)eofs,
           (unsigned long long)mismatches, (unsigned long long)timeouts, (unsigned long long)connect_failures,
           (unsigned long long)requests, (unsigned long long)replies, nlat, secs, (double)nlat / secs,
           (double)bytes_acked_after_warmup / secs / 1e6, (long long)pct(0.5), (long long)pct(0.9), (long long)pct(0.99),
           (long long)pct(0.999), (long long)(nlat ? lat[nlat - 1] : 0), (long long)(longest / 1000));
    return failed == 0 ? 0 : 3;
}
