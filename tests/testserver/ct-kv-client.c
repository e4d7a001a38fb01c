/*
 * ct-kv-client: drives ct-kv and verifies every reply.
 *
 *   ct-kv-client --server IP:PORT [--connections 20] [--interval-ms 50] [--duration-s N]
 *                [--udp-flows K --udp-port P] [--timeout-s 30] [--verbose]
 *
 * Each TCP connection sends "REQ <n> <payload>\n" one at a time and checks that the reply's
 * byte total and FNV-1a hash equal what the client itself sent on that connection: any byte
 * lost, duplicated or reordered (by a failover, a bad replay, a reset) is a mismatch.
 *
 * UDP has no retransmission of its own, and a datagram answered by a server that then died is
 * answered again only into the replayer, so the client resends a datagram after 1 s without a
 * reply. The server counts every copy it sees; the client accepts a count that grew by up to the
 * number of copies it sent, and checks the hash against exactly that many copies.
 *
 * --duration-s 0 runs until SIGINT/SIGTERM. The last line is always
 *   RESULT ok=<0|1> requests=... replies=... mismatches=... resets=... eofs=... timeouts=...
 *          longest_stall_ms=... udp_requests=... udp_replies=... udp_retransmits=... ...
 * and the exit status is 0 only with ok=1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define MAX_CONNS 1000
#define MAX_FLOWS 256
#define UDP_RESEND_MS 1000

struct tconn {
    int fd;
    int local_port;
    uint64_t n;          /* number of the outstanding (or last) request */
    int outstanding;
    int64_t sent_at_ms;
    int64_t next_at_ms;
    uint64_t total;      /* bytes sent, including the outstanding request */
    uint64_t hash;
    char in[4096];
    size_t in_len;
};

struct uflow {
    char name[32];
    uint64_t n;
    int outstanding;
    int copies_sent;       /* copies of datagram n sent */
    int copies_accounted;  /* copies of datagram n the server has reported */
    int64_t sent_at_ms, first_sent_ms, next_at_ms;
    uint64_t count;        /* server's count at the last verified reply */
    uint64_t hash;         /* server's hash at the last verified reply */
    char dgram[256];
    size_t dgram_len;
    /* Copies of the previous datagram still unaccounted when it was answered: they were sent before the current
     * one, so any that reach the server do so before it (one path, in order), and its reply must allow for them. */
    char prev[256];
    size_t prev_len;
    int prev_unaccounted;
};

static struct tconn conns[MAX_CONNS];
static struct uflow flows[MAX_FLOWS];
static int nconns = 20, nflows = 0, interval_ms = 50, duration_s = 10, timeout_s = 30, verbose = 0;
static struct sockaddr_in server, userver;
static int ufd = -1;
static int conns_answered;
static volatile sig_atomic_t stop_requested = 0;

static uint64_t requests, replies, mismatches, resets, eofs, timeouts;
static uint64_t urequests, ureplies, uretransmits, umismatches, utimeouts, ustale;
static int64_t longest_stall_ms, start_ms;
static char longest_stall_where[96] = "-";
static int failed = 0;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ct-kv-client: FAIL ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    failed = 1;
}

static void note_stall(int64_t stall, const char *what, int id, uint64_t n)
{
    if (stall > longest_stall_ms) {
        longest_stall_ms = stall;
        snprintf(longest_stall_where, sizeof longest_stall_where, "%s%d#%llu", what, id, (unsigned long long)n);
    }
}

static void summary(void)
{
    printf("RESULT ok=%d requests=%llu replies=%llu mismatches=%llu resets=%llu eofs=%llu timeouts=%llu "
           "longest_stall_ms=%lld longest_stall_at=%s udp_requests=%llu udp_replies=%llu udp_retransmits=%llu "
           "udp_mismatches=%llu udp_timeouts=%llu udp_stale=%llu duration_ms=%lld\n",
           !failed, (unsigned long long)requests, (unsigned long long)replies, (unsigned long long)mismatches,
           (unsigned long long)resets, (unsigned long long)eofs, (unsigned long long)timeouts,
           (long long)longest_stall_ms, longest_stall_where, (unsigned long long)urequests,
           (unsigned long long)ureplies, (unsigned long long)uretransmits, (unsigned long long)umismatches,
           (unsigned long long)utimeouts, (unsigned long long)ustale, (long long)(now_ms() - start_ms));
    fflush(stdout);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int parse_endpoint(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static void tcp_send(struct tconn *c)
{
    char line[256];
    c->n++;
    /* Payloads of varying length, so that a shifted or duplicated byte range cannot hash the same. */
    int pad = (int)((c->n * 7 + (uint64_t)c->local_port) % 53);
    int len = snprintf(line, sizeof line, "REQ %llu c%d-%.*s\n", (unsigned long long)c->n, c->local_port, pad,
                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    size_t off = 0;
    while (off < (size_t)len) {
        ssize_t w = send(c->fd, line + off, (size_t)len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                /* One small line per round trip never fills a socket buffer; if it does the
                 * server is not reading, which the reply timeout reports. */
                struct pollfd p = {.fd = c->fd, .events = POLLOUT};
                poll(&p, 1, 1000);
                continue;
            }
            if (errno == ECONNRESET || errno == EPIPE)
                resets++;
            fail("conn %d (local port %d): send of REQ %llu failed: %s", (int)(c - conns), c->local_port,
                 (unsigned long long)c->n, strerror(errno));
            return;
        }
        off += (size_t)w;
    }
    c->total += (uint64_t)len;
    c->hash = fnv1a(c->hash, line, (size_t)len);
    c->outstanding = 1;
    c->sent_at_ms = now_ms();
    c->next_at_ms = c->sent_at_ms + interval_ms;
    requests++;
}

static void tcp_reply(struct tconn *c, const char *line)
{
    int id = (int)(c - conns);
    unsigned long long n, total, hash;
    if (sscanf(line, "ACK %llu %llu %llx", &n, &total, &hash) != 3) {
        mismatches++;
        fail("conn %d (local port %d): unparseable reply \"%s\" to REQ %llu", id, c->local_port, line,
             (unsigned long long)c->n);
        return;
    }
    if (!c->outstanding || n != c->n) {
        mismatches++;
        fail("conn %d (local port %d): reply to REQ %llu while REQ %llu is %s", id, c->local_port, n,
             (unsigned long long)c->n, c->outstanding ? "outstanding" : "already answered");
        return;
    }
    if (total != c->total || hash != c->hash) {
        mismatches++;
        fail("conn %d (local port %d): reply to REQ %llu says total %llu hash %016llx, expected total %llu "
             "hash %016llx (bytes lost, duplicated or reordered)",
             id, c->local_port, n, total, hash, (unsigned long long)c->total, (unsigned long long)c->hash);
        return;
    }
    replies++;
    c->outstanding = 0;
    note_stall(now_ms() - c->sent_at_ms, "tcp", id, n);
    /* A connection the client sees established may still be half-open on the server (its last handshake ACK
     * dropped): only a reply proves the server holds it. Tests wait for this line before counting on it. */
    if (n == 1 && ++conns_answered == nconns)
        printf("ct-kv-client: every connection answered\n");
}

static void tcp_read(struct tconn *c)
{
    int id = (int)(c - conns);
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len - 1, MSG_DONTWAIT);
        if (r == 0) {
            eofs++;
            fail("conn %d (local port %d): server closed the connection (EOF) with REQ %llu %s", id, c->local_port,
                 (unsigned long long)c->n, c->outstanding ? "outstanding" : "answered");
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == ECONNRESET)
                resets++;
            fail("conn %d (local port %d): receive failed: %s (REQ %llu %s)", id, c->local_port, strerror(errno),
                 (unsigned long long)c->n, c->outstanding ? "outstanding" : "answered");
            return;
        }
        c->in_len += (size_t)r;
        char *p;
        while ((p = memchr(c->in, '\n', c->in_len)) != NULL) {
            *p = 0;
            tcp_reply(c, c->in);
            size_t used = (size_t)(p + 1 - c->in);
            memmove(c->in, p + 1, c->in_len - used);
            c->in_len -= used;
            if (failed)
                return;
        }
        if (c->in_len >= sizeof c->in - 1) {
            mismatches++;
            fail("conn %d: reply line longer than %zu bytes", id, sizeof c->in);
            return;
        }
    }
}

static void udp_send(struct uflow *f, int resend)
{
    if (!resend) {
        memcpy(f->prev, f->dgram, f->dgram_len);
        f->prev_len = f->dgram_len;
        f->prev_unaccounted = f->n ? f->copies_sent - f->copies_accounted : 0;
        f->n++;
        int pad = (int)((f->n * 11) % 41);
        f->dgram_len = (size_t)snprintf(f->dgram, sizeof f->dgram, "U %s %llu p-%.*s", f->name,
                                        (unsigned long long)f->n, pad, "0123456789abcdefghijklmnopqrstuvwxyzABCDE");
        f->copies_sent = 0;
        f->copies_accounted = 0;
        f->first_sent_ms = now_ms();
        f->next_at_ms = f->first_sent_ms + interval_ms;
        urequests++;
    } else {
        uretransmits++;
    }
    sendto(ufd, f->dgram, f->dgram_len, 0, (struct sockaddr *)&userver, sizeof userver);
    f->copies_sent++;
    f->outstanding = 1;
    f->sent_at_ms = now_ms();
}

static void udp_read(void)
{
    for (;;) {
        char buf[512];
        ssize_t r = recv(ufd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (r < 0)
            return;
        buf[r] = 0;
        char name[32];
        unsigned long long n, count, hash;
        if (sscanf(buf, "UA %31s %llu %llu %llx", name, &n, &count, &hash) != 4) {
            umismatches++;
            fail("udp: unparseable reply \"%s\"", buf);
            return;
        }
        struct uflow *f = NULL;
        for (int i = 0; i < nflows; i++)
            if (strcmp(flows[i].name, name) == 0)
                f = &flows[i];
        if (!f) {
            umismatches++;
            fail("udp: reply for unknown flow %s", name);
            return;
        }
        if (n != f->n) {
            ustale++; /* a late answer to an older datagram we already verified */
            continue;
        }
        /* Up to the unaccounted copies of the previous datagram, then up to those of datagram n, may have
         * reached the server: the hash says exactly how many of each did. */
        uint64_t before = f->hash;
        int matched = 0;
        for (int j = 0; j <= f->prev_unaccounted && !matched; j++) {
            if (j > 0)
                before = fnv1a(before, f->prev, f->prev_len);
            uint64_t h = before;
            for (int k = 1; k <= f->copies_sent - f->copies_accounted; k++) {
                h = fnv1a(h, f->dgram, f->dgram_len);
                if (count == f->count + (uint64_t)(j + k) && hash == h) {
                    f->count = count;
                    f->hash = hash;
                    f->copies_accounted += k;
                    f->prev_unaccounted = 0;
                    matched = 1;
                    break;
                }
            }
        }
        if (!matched) {
            umismatches++;
            fail("udp flow %s: reply to datagram %llu says count %llu hash %016llx; after %d unaccounted copies "
                 "of it (and %d of the one before) the server should be at count %llu..%llu (datagrams lost or duplicated "
                 "by the server)",
                 name, n, count, hash, f->copies_sent - f->copies_accounted, f->prev_unaccounted,
                 (unsigned long long)f->count + 1,
                 (unsigned long long)(f->count + (uint64_t)(f->copies_sent - f->copies_accounted + f->prev_unaccounted)));
            return;
        }
        if (f->outstanding) {
            ureplies++;
            f->outstanding = 0;
            note_stall(now_ms() - f->first_sent_ms, "udp-", (int)(f - flows), n);
        }
    }
}

static void usage(void)
{
    fputs("usage: ct-kv-client --server IP:PORT [--connections N] [--interval-ms MS] [--duration-s S (0: until "
          "SIGINT)] [--udp-flows K --udp-port P] [--timeout-s S] [--verbose]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *server_arg = NULL;
    int udp_port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0) {
            verbose = 1;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--server") == 0)
            server_arg = v;
        else if (strcmp(a, "--connections") == 0)
            nconns = atoi(v);
        else if (strcmp(a, "--interval-ms") == 0)
            interval_ms = atoi(v);
        else if (strcmp(a, "--duration-s") == 0)
            duration_s = atoi(v);
        else if (strcmp(a, "--udp-flows") == 0)
            nflows = atoi(v);
        else if (strcmp(a, "--udp-port") == 0)
            udp_port = atoi(v);
        else if (strcmp(a, "--timeout-s") == 0)
            timeout_s = atoi(v);
        else
            usage();
    }
    if (!server_arg || parse_endpoint(server_arg, &server) < 0) {
        fputs("ct-kv-client: --server IP:PORT is required (IPv4)\n", stderr);
        usage();
    }
    if (nconns < 0 || nconns > MAX_CONNS || nflows < 0 || nflows > MAX_FLOWS || (nflows && !udp_port)) {
        fprintf(stderr, "ct-kv-client: need 0..%d connections, 0..%d udp flows, and --udp-port with --udp-flows\n",
                MAX_CONNS, MAX_FLOWS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    start_ms = now_ms();

    for (int i = 0; i < nconns; i++) {
        struct tconn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&server, sizeof server) < 0) {
            printf("ct-kv-client: FAIL conn %d: connect to %s: %s\n", i, server_arg, strerror(errno));
            failed = 1;
            summary();
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in local;
        socklen_t ll = sizeof local;
        getsockname(c->fd, (struct sockaddr *)&local, &ll);
        c->local_port = ntohs(local.sin_port);
        c->hash = FNV_OFFSET;
    }
    /* The duration counts from here: connecting can take long when SYNs meet a checkpoint's freeze, and a
     * client that spent its whole time connecting would prove nothing. The line tells a test that waits. */
    printf("ct-kv-client: %d tcp connections established in %lld ms\n", nconns, (long long)(now_ms() - start_ms));
    start_ms = now_ms();
    for (int i = 0; i < nconns; i++)
        conns[i].next_at_ms = start_ms + (int64_t)i * interval_ms / (nconns ? nconns : 1);
    if (nflows) {
        userver = server;
        userver.sin_port = htons((uint16_t)udp_port);
        ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        for (int i = 0; i < nflows; i++) {
            /* The pid keeps two clients' flows apart in the server's table. */
            snprintf(flows[i].name, sizeof flows[i].name, "f%d-%d", (int)getpid(), i);
            flows[i].hash = FNV_OFFSET;
            flows[i].next_at_ms = start_ms + (int64_t)i * interval_ms / nflows;
        }
    }
    if (verbose)
        printf("ct-kv-client: %d tcp connections and %d udp flows to %s, every %d ms\n", nconns, nflows, server_arg,
               interval_ms);

    static struct pollfd pfds[MAX_CONNS + 1];
    int64_t last_progress = start_ms;
    uint64_t last_replies = 0;
    while (!failed) {
        int64_t now = now_ms();
        if (stop_requested || (duration_s > 0 && now - start_ms >= (int64_t)duration_s * 1000))
            break;
        int64_t wake = now + 1000;
        for (int i = 0; i < nconns && !failed; i++) {
            struct tconn *c = &conns[i];
            if (c->outstanding) {
                if (now - c->sent_at_ms >= (int64_t)timeout_s * 1000) {
                    timeouts++;
                    fail("conn %d (local port %d): no reply to REQ %llu within %d s", i, c->local_port,
                         (unsigned long long)c->n, timeout_s);
                }
                int64_t t = c->sent_at_ms + (int64_t)timeout_s * 1000;
                if (t < wake)
                    wake = t;
            } else if (now >= c->next_at_ms) {
                tcp_send(c);
            } else if (c->next_at_ms < wake) {
                wake = c->next_at_ms;
            }
        }
        for (int i = 0; i < nflows && !failed; i++) {
            struct uflow *f = &flows[i];
            if (f->outstanding) {
                if (now - f->first_sent_ms >= (int64_t)timeout_s * 1000) {
                    utimeouts++;
                    fail("udp flow %s: no reply to datagram %llu within %d s (%d copies sent)", f->name,
                         (unsigned long long)f->n, timeout_s, f->copies_sent);
                } else if (now - f->sent_at_ms >= UDP_RESEND_MS) {
                    udp_send(f, 1);
                }
                int64_t t = f->sent_at_ms + UDP_RESEND_MS;
                if (t < wake)
                    wake = t;
            } else if (now >= f->next_at_ms) {
                udp_send(f, 0);
            } else if (f->next_at_ms < wake) {
                wake = f->next_at_ms;
            }
        }
        if (failed)
            break;
        if (verbose && now - last_progress >= 1000) {
            int64_t pending_max = 0;
            for (int i = 0; i < nconns; i++)
                if (conns[i].outstanding && now - conns[i].sent_at_ms > pending_max)
                    pending_max = now - conns[i].sent_at_ms;
            printf("ct-kv-client: t=%llds requests=%llu replies=%llu (+%llu/s) oldest_pending_ms=%lld "
                   "longest_stall_ms=%lld udp_replies=%llu udp_retransmits=%llu\n",
                   (long long)((now - start_ms) / 1000), (unsigned long long)requests, (unsigned long long)replies,
                   (unsigned long long)(replies - last_replies), (long long)pending_max, (long long)longest_stall_ms,
                   (unsigned long long)ureplies, (unsigned long long)uretransmits);
            last_progress = now;
            last_replies = replies;
        }
        if (verbose && last_progress + 1000 < wake)
            wake = last_progress + 1000;
        int n = 0;
        for (int i = 0; i < nconns; i++)
            pfds[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (ufd >= 0)
            pfds[n++] = (struct pollfd){.fd = ufd, .events = POLLIN};
        int64_t wait = wake - now_ms();
        if (wait < 0)
            wait = 0;
        if (poll(pfds, (nfds_t)n, (int)wait) < 0 && errno != EINTR) {
            perror("ct-kv-client: poll");
            return 2;
        }
        for (int i = 0; i < nconns && !failed; i++)
            if (pfds[i].revents)
                tcp_read(&conns[i]);
        if (!failed && ufd >= 0 && pfds[n - 1].revents)
            udp_read();
    }
    summary();
    return failed ? 1 : 0;
}
