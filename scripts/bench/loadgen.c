/*
 * Edgeport bench helper: small load generators and backends, compiled at bench time
 * into a temp dir (never committed as a binary). Every mode is bounded in time.
 *
 *   loadgen udp-echo PORT
 *       UDP echo backend on 127.0.0.1:PORT.
 *   loadgen udp-load HOST PORT SOCKETS WINDOW DURATION_MS TIMEOUT_MS SIZE
 *       Request/response load: SOCKETS client sockets (one proxy session each), each
 *       with WINDOW requests in flight. A request unanswered after TIMEOUT_MS is lost
 *       and replaced. Prints one JSON line.
 *   loadgen tcp-echo PORT
 *       TCP echo backend on 127.0.0.1:PORT (epoll; holds any number of connections).
 *   loadgen tcp-hold HOST PORT COUNT CONCURRENCY MAX_SECS
 *       Opens COUNT connections (at most CONCURRENCY connecting at once), sends 32
 *       bytes on each and waits for the echo, then prints "READY n" and holds them
 *       idle until stdin closes or MAX_SECS pass.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL, 0);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die("fcntl");
}

static struct sockaddr_in make_addr(const char *host, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "loadgen: bad IPv4 address %s\n", host);
    exit(1);
  }
  uint32_t ip = ntohl(a.sin_addr.s_addr);
  if ((ip >> 24) != 127) {
    fprintf(stderr, "loadgen: refusing to send to %s: only 127.0.0.0/8 is allowed\n", host);
    exit(1);
  }
  return a;
}

/* ---------------------------------------------------------------- udp-echo */

#define BATCH 64
static int udp_echo(int port) {
  struct sockaddr_in a = make_addr("127.0.0.1", port);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  int one = 1, big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  static char bufs[BATCH][2048];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in peers[BATCH];
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &peers[i];
      msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("recvmmsg");
    }
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    int off = 0;
    while (off < n) {
      int m = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
      if (m <= 0) break; /* drop what the kernel refuses, like any UDP server */
      off += m;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- udp-load */

#define HIST_US 200000
typedef struct {
  uint32_t sock, slot;
  uint64_t seq;
} hdr_t;

static int udp_load(const char *host, int port, int nsock, int window, int duration_ms,
                    int timeout_ms, int size) {
  struct sockaddr_in a = make_addr(host, port);
  if (size < (int)sizeof(hdr_t)) size = (int)sizeof(hdr_t);
  if (size > 1400) size = 1400;
  int nslots = nsock * window;
  int *fds = calloc((size_t)nsock, sizeof(int));
  uint64_t *seq = calloc((size_t)nslots, sizeof(uint64_t));
  uint64_t *sent_at = calloc((size_t)nslots, sizeof(uint64_t));
  char *pending = calloc((size_t)nslots, 1);
  uint64_t *hist = calloc(HIST_US + 1, sizeof(uint64_t));
  if (!fds || !seq || !sent_at || !pending || !hist) die("calloc");
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  for (int s = 0; s < nsock; s++) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    set_nonblock(fd);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    fds[s] = fd;
  }
  char buf[2048];
  memset(buf, 'q', sizeof buf);
  uint64_t next_seq = 1, sent = 0, received = 0, lost = 0, late = 0, send_err = 0, bad = 0;
  uint64_t timeout_ns = (uint64_t)timeout_ms * 1000000ull;

#define SEND_SLOT(idx)                                                        \
  do {                                                                        \
    int _i = (idx);                                                           \
    hdr_t h = {.sock = (uint32_t)(_i / window), .slot = (uint32_t)_i, .seq = next_seq}; \
    memcpy(buf, &h, sizeof h);                                                \
    ssize_t _r = send(fds[_i / window], buf, (size_t)size, 0);                \
    uint64_t _t = now_ns();                                                   \
    if (_r == size) {                                                         \
      seq[_i] = next_seq++;                                                   \
      sent_at[_i] = _t;                                                       \
      pending[_i] = 0;                                                        \
      sent++;                                                                 \
    } else {                                                                  \
      seq[_i] = 0;                                                            \
      pending[_i] = 1;                                                        \
      send_err++;                                                             \
    }                                                                         \
  } while (0)

  uint64_t start = now_ns();
  uint64_t end = start + (uint64_t)duration_ms * 1000000ull;
  uint64_t drain_end = end + timeout_ns;
  for (int i = 0; i < nslots; i++) SEND_SLOT(i);
  uint64_t last_scan = start;
  struct epoll_event evs[256];
  int sending = 1;
  for (;;) {
    uint64_t t = now_ns();
    if (sending && t >= end) sending = 0;
    if (!sending) {
      int outstanding = 0;
      for (int i = 0; i < nslots; i++)
        if (seq[i]) outstanding++;
      if (outstanding == 0 || t >= drain_end) {
        lost += (uint64_t)outstanding;
        break;
      }
    }
    if (t - last_scan >= 2000000ull) { /* every 2 ms: time out and re-send */
      last_scan = t;
      for (int i = 0; i < nslots; i++) {
        if (seq[i] && t - sent_at[i] > timeout_ns && sending) {
          lost++;
          seq[i] = 0;
          SEND_SLOT(i);
        } else if (!seq[i] && pending[i] && sending) {
          SEND_SLOT(i);
        }
      }
    }
    int n = epoll_wait(ep, evs, 256, 2);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      int s = (int)evs[k].data.u32;
      for (;;) {
        ssize_t r = recv(fds[s], buf, sizeof buf, 0);
        if (r < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == ECONNREFUSED) { /* ICMP port unreachable from a dead target */
            bad++;
            break;
          }
          die("recv");
        }
        hdr_t h;
        if (r < (ssize_t)sizeof h) {
          bad++;
          continue;
        }
        memcpy(&h, buf, sizeof h);
        int i = (int)h.slot;
        if (i < 0 || i >= nslots || (int)h.sock != s) {
          bad++;
          continue;
        }
        if (seq[i] != h.seq || h.seq == 0) {
          late++;
          continue;
        }
        uint64_t tn = now_ns();
        uint64_t us = (tn - sent_at[i]) / 1000ull;
        hist[us > HIST_US ? HIST_US : us]++;
        seq[i] = 0;
        if (tn < end) {
          received++;
          SEND_SLOT(i);
        } else {
          received++;
        }
      }
    }
  }
  double elapsed = (double)(end - start) / 1e9;
  uint64_t acc = 0, p50 = 0, p99 = 0;
  int got50 = 0, got99 = 0;
  uint64_t total = 0;
  for (int i = 0; i <= HIST_US; i++) total += hist[i];
  for (int i = 0; i <= HIST_US && total; i++) {
    acc += hist[i];
    if (!got50 && acc * 100 >= total * 50) { p50 = (uint64_t)i; got50 = 1; }
    if (!got99 && acc * 100 >= total * 99) { p99 = (uint64_t)i; got99 = 1; }
  }
  printf("{\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"late\":%llu,\"sendErrors\":%llu,"
         "\"bad\":%llu,\"seconds\":%.3f,\"qps\":%.1f,\"lossPct\":%.4f,\"p50Us\":%llu,\"p99Us\":%llu}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)lost,
         (unsigned long long)late, (unsigned long long)send_err, (unsigned long long)bad, elapsed,
         (double)received / elapsed, sent ? 100.0 * (double)lost / (double)sent : 0.0,
         (unsigned long long)p50, (unsigned long long)p99);
  return 0;
}

/* ---------------------------------------------------------------- tcp-echo */

static int tcp_echo(int port) {
  struct sockaddr_in a = make_addr("127.0.0.1", port);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");
  set_nonblock(lfd);
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
  static char buf[65536];
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      int fd = evs[k].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0) close(c);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        ssize_t off = 0;
        while (off < r) {
          ssize_t w = write(fd, buf + off, (size_t)(r - off));
          if (w <= 0) break; /* a slow reader loses the rest; fine for a bench echo */
          off += w;
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);
      }
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- tcp-hold */

enum { C_NEW, C_CONNECTING, C_WAIT, C_IDLE };

static int tcp_hold(const char *host, int port, int count, int concurrency, int max_secs) {
  struct sockaddr_in a = make_addr(host, port);
  int *fd = malloc(sizeof(int) * (size_t)count);
  char *st = calloc((size_t)count, 1);
  int *got = calloc((size_t)count, sizeof(int));
  if (!fd || !st || !got) die("malloc");
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  int next = 0, inflight = 0, idle = 0, errors = 0;
  char msg[32];
  memset(msg, 'h', sizeof msg);
  double deadline = now_s() + max_secs;
  struct epoll_event evs[256];
  while (idle < count) {
    while (inflight < concurrency && next < count) {
      int i = next++;
      int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (s < 0) die("socket");
      fd[i] = s;
      int r = connect(s, (struct sockaddr *)&a, sizeof a);
      if (r < 0 && errno != EINPROGRESS) die("connect");
      st[i] = C_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll_ctl");
      inflight++;
    }
    if (now_s() > deadline) {
      printf("TIMEOUT idle=%d errors=%d\n", idle, errors);
      fflush(stdout);
      return 2;
    }
    int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      int i = (int)evs[k].data.u32;
      int s = fd[i];
      if (st[i] == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          errno = err;
          fprintf(stderr, "loadgen: connection %d: %s\n", i, strerror(err));
          printf("ERROR connect %s\n", strerror(err));
          fflush(stdout);
          return 1;
        }
        if (write(s, msg, sizeof msg) != (ssize_t)sizeof msg) die("write");
        st[i] = C_WAIT;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
      } else if (st[i] == C_WAIT) {
        char b[64];
        ssize_t r = read(s, b, sizeof b);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          printf("ERROR connection %d closed before its echo\n", i);
          fflush(stdout);
          return 1;
        }
        got[i] += (int)r;
        if (got[i] >= (int)sizeof msg) {
          st[i] = C_IDLE;
          epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
          inflight--;
          idle++;
        }
      }
    }
  }
  printf("READY %d\n", idle);
  fflush(stdout);
  /* hold until stdin closes (the harness is done) or max_secs pass */
  for (;;) {
    double left = deadline - now_s();
    if (left <= 0) break;
    struct pollfd p = {.fd = 0, .events = POLLIN};
    int r = poll(&p, 1, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) break;
    char b[64];
    ssize_t rr = read(0, b, sizeof b);
    if (rr <= 0) break;
  }
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 3 && !strcmp(argv[1], "udp-echo")) return udp_echo(atoi(argv[2]));
  if (argc >= 3 && !strcmp(argv[1], "tcp-echo")) return tcp_echo(atoi(argv[2]));
  if (argc >= 9 && !strcmp(argv[1], "udp-load"))
    return udp_load(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]),
                    atoi(argv[7]), atoi(argv[8]));
  if (argc >= 7 && !strcmp(argv[1], "tcp-hold"))
    return tcp_hold(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
  fprintf(stderr,
          "usage: loadgen udp-echo PORT | tcp-echo PORT |\n"
          "       udp-load HOST PORT SOCKETS WINDOW DURATION_MS TIMEOUT_MS SIZE |\n"
          "       tcp-hold HOST PORT COUNT CONCURRENCY MAX_SECS\n");
  return 64;
}
