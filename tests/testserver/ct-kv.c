/*
 * ct-kv: the stateful test server of every end-to-end test.
 *
 * Its replies carry state that only a byte-exact, in-order, exactly-once stream can produce
 * (a running byte total and an FNV-1a hash over every byte received on the connection), so a
 * client that computes the same numbers notices any byte lost, duplicated or reordered across a
 * checkpoint, a failover or a replay.
 *
 *   TCP: "REQ <n> <payload>\n"       -> "ACK <n> <total_bytes_so_far> <hash_hex>\n"
 *   UDP: "U <flow> <n> <payload>"    -> "UA <flow> <n> <datagrams_seen_for_flow> <hash_hex>"
 *
 * CRIU must be able to move it: single-threaded, no files besides stdio and its sockets, never
 * drops root (an unprivileged task cannot be dumped on the lab machines, see LAB-NOTES).
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
#include <unistd.h>

#define MAX_CONNS 1024
#define LINE_MAX_LEN 65536
#define MAX_FLOWS 1024

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

struct conn {
    int fd;
    uint64_t total;
    uint64_t hash;
    char in[LINE_MAX_LEN];
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
};

struct flow {
    int used;
    char name[64];
    uint64_t count;
    uint64_t hash;
};

static struct conn *conns[MAX_CONNS];
static struct flow flows[MAX_FLOWS];

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static int listen_on(int type, const char *addr, int port)
{
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("ct-kv: socket");
        exit(2);
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "ct-kv: --bind %s is not an IPv4 address\n", addr);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "ct-kv: bind %s:%d (%s): %s\n", addr, port, type == SOCK_STREAM ? "tcp" : "udp",
                strerror(errno));
        exit(2);
    }
    if (type == SOCK_STREAM && listen(fd, 128) < 0) {
        perror("ct-kv: listen");
        exit(2);
    }
    return fd;
}

static void queue_out(struct conn *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out) {
            fputs("ct-kv: out of memory\n", stderr);
            exit(3);
        }
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

static void close_conn(int i, const char *why)
{
    struct conn *c = conns[i];
    printf("ct-kv: tcp fd %d closed (%s) after %llu bytes\n", c->fd, why, (unsigned long long)c->total);
    close(c->fd);
    free(c->out);
    free(c);
    conns[i] = NULL;
}

/* The hash covers every byte received, line breaks included, in arrival order: exactly what the
 * client computes over what it sent. */
static void handle_line(struct conn *c, const char *line, size_t len)
{
    char n[32] = "?";
    if (len >= 4 && memcmp(line, "REQ ", 4) == 0) {
        size_t j = 0;
        for (size_t k = 4; k < len && line[k] != ' ' && line[k] != '\n' && j < sizeof n - 1; k++)
            n[j++] = line[k];
        n[j] = 0;
        char reply[128];
        int r = snprintf(reply, sizeof reply, "ACK %s %llu %016llx\n", n, (unsigned long long)c->total,
                         (unsigned long long)c->hash);
        queue_out(c, reply, (size_t)r);
    } else {
        char reply[128];
        int r = snprintf(reply, sizeof reply, "ERR %llu %016llx\n", (unsigned long long)c->total,
                         (unsigned long long)c->hash);
        queue_out(c, reply, (size_t)r);
    }
}

static void read_conn(int i)
{
    struct conn *c = conns[i];
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (r == 0) {
            close_conn(i, "eof");
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            close_conn(i, strerror(errno));
            return;
        }
        size_t start = c->in_len;
        c->in_len += (size_t)r;
        /* Process complete lines, updating the state byte by byte so each reply reports the total
         * up to and including its own line. */
        size_t line_start = 0;
        for (size_t k = start; k < c->in_len; k++) {
            if (c->in[k] == '\n') {
                size_t len = k + 1 - line_start;
                c->total += len;
                c->hash = fnv1a(c->hash, (unsigned char *)c->in + line_start, len);
                handle_line(c, c->in + line_start, len);
                line_start = k + 1;
            }
        }
        if (line_start > 0) {
            memmove(c->in, c->in + line_start, c->in_len - line_start);
            c->in_len -= line_start;
        } else if (c->in_len == sizeof c->in) {
            close_conn(i, "line too long");
            return;
        }
    }
}

static void write_conn(int i)
{
    struct conn *c = conns[i];
    while (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            close_conn(i, strerror(errno));
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
}

static struct flow *find_flow(const char *name)
{
    unsigned h = (unsigned)fnv1a(FNV_OFFSET, (const unsigned char *)name, strlen(name)) % MAX_FLOWS;
    for (int k = 0; k < MAX_FLOWS; k++) {
        struct flow *f = &flows[(h + k) % MAX_FLOWS];
        if (!f->used) {
            f->used = 1;
            snprintf(f->name, sizeof f->name, "%s", name);
            f->hash = FNV_OFFSET;
            return f;
        }
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static void handle_udp(int fd)
{
    for (;;) {
        char buf[65536];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
        if (r < 0)
            return;
        buf[r] = 0;
        char flow[64], n[32];
        if (sscanf(buf, "U %63s %31s", flow, n) != 2)
            continue;
        struct flow *f = find_flow(flow);
        if (!f) {
            fputs("ct-kv: udp flow table full\n", stderr);
            continue;
        }
        f->count++;
        f->hash = fnv1a(f->hash, (unsigned char *)buf, (size_t)r);
        char reply[256];
        int len = snprintf(reply, sizeof reply, "UA %s %s %llu %016llx", flow, n, (unsigned long long)f->count,
                           (unsigned long long)f->hash);
        sendto(fd, reply, (size_t)len, 0, (struct sockaddr *)&from, fl);
    }
}

/* Resident, incompressible memory, so that a checkpoint takes as long as a real program's of that size
 * (the tests aim crashes at the middle of a dump or of its shipping). Kept in a global so it stays live. */
static volatile uint64_t *ballast;

static void fill_ballast(size_t bytes)
{
    ballast = malloc(bytes);
    if (!ballast) {
        fprintf(stderr, "ct-kv: cannot allocate %zu bytes of ballast\n", bytes);
        exit(1);
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < bytes / sizeof(uint64_t); i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        ballast[i] = x;
    }
}

static void usage(void)
{
    fputs("usage: ct-kv --tcp PORT [--udp PORT] [--bind ADDR] [--ballast-mb N]\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    int tcp_port = 0, udp_port = 0;
    const char *bind_addr = "0.0.0.0";
    int ballast_mb = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc)
            tcp_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--udp") == 0 && i + 1 < argc)
            udp_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind_addr = argv[++i];
        else if (strcmp(argv[i], "--ballast-mb") == 0 && i + 1 < argc)
            ballast_mb = atoi(argv[++i]);
        else
            usage();
    }
    if (!tcp_port && !udp_port)
        usage();
    /* Line buffering: the node reads stdout from a pipe and a block-buffered line would show up
     * only after a failover, on the wrong node. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (ballast_mb > 0)
        fill_ballast((size_t)ballast_mb << 20);

    int lfd = tcp_port ? listen_on(SOCK_STREAM, bind_addr, tcp_port) : -1;
    int ufd = udp_port ? listen_on(SOCK_DGRAM, bind_addr, udp_port) : -1;
    printf("ct-kv: pid %d listening tcp %d udp %d on %s\n", getpid(), tcp_port, udp_port, bind_addr);

    static struct pollfd pfds[MAX_CONNS + 2];
    static int idx[MAX_CONNS + 2];
    for (;;) {
        int n = 0;
        if (lfd >= 0)
            pfds[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        if (ufd >= 0)
            pfds[n++] = (struct pollfd){.fd = ufd, .events = POLLIN};
        int fixed = n;
        for (int i = 0; i < MAX_CONNS; i++) {
            if (!conns[i])
                continue;
            idx[n] = i;
            pfds[n++] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN | (conns[i]->out_len ? POLLOUT : 0)};
        }
        if (poll(pfds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("ct-kv: poll");
            return 1;
        }
        for (int k = 0; k < fixed; k++) {
            if (!(pfds[k].revents & POLLIN))
                continue;
            if (pfds[k].fd == ufd) {
                handle_udp(ufd);
                continue;
            }
            for (;;) {
                int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                    break;
                int slot = -1;
                for (int i = 0; i < MAX_CONNS; i++)
                    if (!conns[i]) {
                        slot = i;
                        break;
                    }
                if (slot < 0) {
                    fputs("ct-kv: too many connections\n", stderr);
                    close(cfd);
                    continue;
                }
                int one = 1;
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct conn *c = calloc(1, sizeof *c);
                c->fd = cfd;
                c->hash = FNV_OFFSET;
                conns[slot] = c;
            }
        }
        for (int k = fixed; k < n; k++) {
            int i = idx[k];
            if (!conns[i] || !pfds[k].revents)
                continue;
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR))
                read_conn(i);
            if (conns[i] && conns[i]->out_len)
                write_conn(i);
        }
    }
}
