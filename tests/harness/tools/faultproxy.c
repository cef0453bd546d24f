/*
 * mb-faultproxy: a TCP proxy for the tests that sits between a client and a
 * server (coordinator and sshd, worker and hub) and misbehaves on purpose.
 *
 *   mb-faultproxy --listen PORT --to HOST:PORT [--rate BYTES_PER_S]
 *       [--latency MS] [--cut-after N] [--corrupt-after N]
 *       [--direction up|down|both] [--faulty-conns N] [--once]
 *
 * It listens on 127.0.0.1:PORT (0 picks a free port) and prints "PORT=<p>"
 * once it does. Each accepted connection gets its own thread, its own
 * connection to the target and its own limits: --rate caps each direction
 * at BYTES_PER_S, --latency holds every chunk MS milliseconds before passing
 * it on, --cut-after resets both sides once N bytes went through, and
 * --corrupt-after flips (XOR 0xff) the byte at stream offset N. "up" is
 * client to server, "down" (the default) server to client; --direction says
 * where --cut-after and --corrupt-after count; --faulty-conns N applies
 * them to the first N connections only (default: all). --once serves one
 * connection
 * and exits. SIGUSR1 cuts every open connection; SIGTERM or SIGINT ends it.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* usleep */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

/* Each direction queues at most SLOTS reads of up to CHUNK bytes: 1 MiB,
 * enough to keep a 200 ms latency link at 5 MB/s, small enough that 128
 * connections stay far below the memory of a test box. */
#define CHUNK (16 * 1024)
#define SLOTS 64
#define MAX_CONNS 128

/* How long a cut waits for the bytes before the cut to leave the socket
 * (a reset discards what the kernel has not sent). */
#define CUT_DRAIN_MS 2000

#define DIR_UP 1
#define DIR_DOWN 2

struct options {
	int listen_port;
	struct sockaddr_storage to;
	socklen_t to_len;
	long long rate;		/* bytes per second, 0 = unlimited */
	long long latency_us;
	long long cut_after;	/* -1 = never */
	long long corrupt_after; /* -1 = never */
	int dirs;		/* DIR_UP | DIR_DOWN: where cut/corrupt count */
	long long faulty_conns;	/* -1 = every connection */
	int once;
};

struct slot {
	size_t len, off;
	long long due_us;
	unsigned char buf[CHUNK];
};

struct flow {
	int src, dst;
	int src_i, dst_i;	/* their places in relay()'s poll set */
	int faulty;		/* --cut-after/--corrupt-after apply here */
	struct slot q[SLOTS];
	unsigned head, count;
	long long rd_off, wr_off;
	int eof, shut;
	long long tokens;	/* bytes * 1e6, refilled at rate per us */
	long long refill_us;
};

struct conn {
	int client, server;
	int wake[2];		/* a byte here means: cut now */
	struct flow up, down;
};

static struct options opt = { .cut_after = -1, .corrupt_after = -1,
			      .dirs = DIR_DOWN, .faulty_conns = -1 };
static long long accepted;	/* connections so far, under lock */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns[MAX_CONNS];
static int nconns;
static int sig_pipe[2] = { -1, -1 };

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	if (write(sig_pipe[1], &c, 1) < 0) {
		/* pipe full: a signal of each kind is already pending */
	}
	errno = saved;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

/* Closes with a TCP reset instead of a FIN: what a dropped link or a crashed
 * peer looks like to the other end. */
static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Waits (bounded) until the kernel has sent and had acknowledged everything
 * written to fd, so that a reset after it loses none of those bytes. */
static void drain(int fd)
{
#ifdef SIOCOUTQ
	long long end = now_us() + CUT_DRAIN_MS * 1000LL;
	int left;

	while (ioctl(fd, SIOCOUTQ, &left) == 0 && left > 0 &&
	       now_us() < end)
		usleep(2000);
#else
	(void)fd;
#endif
}

static long long burst_of(long long rate)
{
	/* 50 ms worth: writes stay few and large, yet the rate holds over
	 * any window longer than that. */
	long long b = rate / 20;

	return b > 0 ? b : 1;
}

static void refill(struct flow *f, long long now)
{
	long long dt = now - f->refill_us;
	long long cap = burst_of(opt.rate) * 1000000;

	if (dt > 1000000)
		dt = 1000000;
	if (dt > 0) {
		f->tokens += dt * opt.rate;
		if (f->tokens > cap)
			f->tokens = cap;
	}
	f->refill_us = now;
}

static int can_read(const struct flow *f)
{
	if (f->eof || f->count == SLOTS)
		return 0;
	return !(f->faulty && opt.cut_after >= 0 && f->rd_off >= opt.cut_after);
}

/* How many bytes f may write now; 0 with *wait_us set when it must wait,
 * 0 with *wait_us = -1 when it has nothing to write. */
static size_t can_write(struct flow *f, long long now, long long *wait_us)
{
	struct slot *s;
	size_t left;
	long long need, have;

	*wait_us = -1;
	if (f->count == 0)
		return 0;
	s = &f->q[f->head];
	if (s->due_us > now) {
		*wait_us = s->due_us - now;
		return 0;
	}
	left = s->len - s->off;
	if (opt.rate == 0)
		return left;
	refill(f, now);
	need = (long long)left < burst_of(opt.rate) ? (long long)left :
						       burst_of(opt.rate);
	have = f->tokens / 1000000;
	if (have < need) {
		*wait_us = ((need - have) * 1000000 + opt.rate - 1) / opt.rate;
		return 0;
	}
	return (long long)left < have ? left : (size_t)have;
}

/* Reads one chunk from f->src. Returns 0, or -1 when the connection must be
 * reset (the source reset or failed). */
static int flow_read(struct flow *f)
{
	struct slot *s = &f->q[(f->head + f->count) % SLOTS];
	size_t lim = CHUNK;
	ssize_t n;

	if (f->faulty && opt.cut_after >= 0 &&
	    (long long)lim > opt.cut_after - f->rd_off)
		lim = (size_t)(opt.cut_after - f->rd_off);
	n = read(f->src, s->buf, lim);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		       errno == EINTR ? 0 : -1;
	if (n == 0) {
		f->eof = 1;
		return 0;
	}
	if (f->faulty && opt.corrupt_after >= f->rd_off &&
	    opt.corrupt_after < f->rd_off + n)
		s->buf[opt.corrupt_after - f->rd_off] ^= 0xff;
	s->len = (size_t)n;
	s->off = 0;
	s->due_us = now_us() + opt.latency_us;
	f->rd_off += n;
	f->count++;
	return 0;
}

static int flow_write(struct flow *f, size_t max)
{
	struct slot *s = &f->q[f->head];
	ssize_t n;

	n = send(f->dst, s->buf + s->off, max, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		       errno == EINTR ? 0 : -1;
	s->off += (size_t)n;
	f->wr_off += n;
	if (opt.rate > 0)
		f->tokens -= (long long)n * 1000000;
	if (s->off == s->len) {
		f->head = (f->head + 1) % SLOTS;
		f->count--;
	}
	return 0;
}

static int flow_done(const struct flow *f)
{
	return f->eof && f->count == 0 && f->shut;
}

static int cut_due(const struct flow *f)
{
	return f->faulty && opt.cut_after >= 0 && f->wr_off >= opt.cut_after;
}

/* Moves bytes both ways until both directions ended (returns 0: close
 * normally) or the connection must be reset (returns -1). */
static int relay(struct conn *c)
{
	struct flow *fl[2] = { &c->up, &c->down };
	int i;

	for (;;) {
		struct pollfd pf[3];
		long long now = now_us(), wait = -1;
		size_t can[2];
		int timeout, r;

		for (i = 0; i < 2; i++) {
			if (cut_due(fl[i])) {
				drain(fl[i]->dst);
				return -1;
			}
			if (fl[i]->eof && fl[i]->count == 0 && !fl[i]->shut) {
				shutdown(fl[i]->dst, SHUT_WR);
				fl[i]->shut = 1;
			}
		}
		if (flow_done(&c->up) && flow_done(&c->down))
			return 0;

		pf[0].fd = c->client;
		pf[1].fd = c->server;
		pf[0].events = pf[1].events = 0;
		pf[2].fd = c->wake[0];
		pf[2].events = POLLIN;
		for (i = 0; i < 2; i++) {
			long long w;

			if (can_read(fl[i]))
				pf[fl[i]->src_i].events |= POLLIN;
			can[i] = can_write(fl[i], now, &w);
			if (can[i] > 0)
				pf[fl[i]->dst_i].events |= POLLOUT;
			else if (w >= 0 && (wait < 0 || w < wait))
				wait = w;
		}
		/* A socket nobody waits on would report POLLHUP forever. */
		for (i = 0; i < 2; i++)
			if (pf[i].events == 0)
				pf[i].fd = -1;
		timeout = wait < 0 ? -1 : (int)((wait + 999) / 1000);
		r = poll(pf, 3, timeout);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		if (pf[2].revents != 0)
			return -1;
		for (i = 0; i < 2; i++) {
			struct pollfd *p = &pf[fl[i]->src_i];

			if ((p->events & POLLIN) &&
			    (p->revents & (POLLIN | POLLHUP | POLLERR)) &&
			    flow_read(fl[i]) != 0)
				return -1;
		}
		for (i = 0; i < 2; i++) {
			struct pollfd *p = &pf[fl[i]->dst_i];

			if ((p->events & POLLOUT) &&
			    (p->revents & (POLLOUT | POLLHUP | POLLERR)) &&
			    flow_write(fl[i], can[i]) != 0)
				return -1;
		}
	}
}

static int connect_target(void)
{
	int fd = socket(opt.to.ss_family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&opt.to, opt.to_len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_unregister(struct conn *c)
{
	int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i] == c)
			conns[i] = NULL;
	nconns--;
	pthread_mutex_unlock(&lock);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	int one = 1, rc = -1, faulty;

	pthread_mutex_lock(&lock);
	faulty = opt.faulty_conns < 0 || accepted < opt.faulty_conns;
	accepted++;
	pthread_mutex_unlock(&lock);

	c->server = connect_target();
	if (c->server >= 0 && set_nonblock(c->client) == 0 &&
	    set_nonblock(c->server) == 0) {
		/* Latency and pacing are ours to add, not Nagle's. */
		setsockopt(c->client, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		setsockopt(c->server, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		c->up.src = c->down.dst = c->client;
		c->up.dst = c->down.src = c->server;
		c->up.src_i = c->down.dst_i = 0;
		c->up.dst_i = c->down.src_i = 1;
		c->up.faulty = faulty && (opt.dirs & DIR_UP) != 0;
		c->down.faulty = faulty && (opt.dirs & DIR_DOWN) != 0;
		c->up.refill_us = c->down.refill_us = now_us();
		rc = relay(c);
	} else if (c->server < 0) {
		fprintf(stderr, "mb-faultproxy: cannot connect to the target: "
			"%s\n", strerror(errno));
	}
	if (rc == 0) {
		close(c->client);
		close(c->server);
	} else {
		reset_close(c->client);
		reset_close(c->server);
	}
	conn_unregister(c);
	close(c->wake[0]);
	close(c->wake[1]);
	free(c);
	return NULL;
}

/* Starts a thread for an accepted socket; resets it when that fails. */
static void conn_start(int fd)
{
	struct conn *c = NULL;
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int i, slot = -1, started = 0;

	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_CONNS && slot < 0; i++)
		if (conns[i] == NULL)
			slot = i;
	if (slot >= 0 && (c = calloc(1, sizeof(*c))) != NULL &&
	    pipe(c->wake) == 0) {
		c->client = fd;
		c->server = -1;
		conns[slot] = c;
		nconns++;
		/* Signals go to the main thread's self-pipe only. */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_attr_init(&attr) == 0) {
			pthread_attr_setdetachstate(&attr,
						    PTHREAD_CREATE_DETACHED);
			started = pthread_create(&tid, &attr, conn_main, c) ==
				  0;
			pthread_attr_destroy(&attr);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (!started) {
			conns[slot] = NULL;
			nconns--;
			close(c->wake[0]);
			close(c->wake[1]);
		}
	}
	pthread_mutex_unlock(&lock);
	if (!started) {
		fprintf(stderr, "mb-faultproxy: cannot serve a connection\n");
		free(c);
		reset_close(fd);
	}
}

static void cut_all(void)
{
	int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i] != NULL && write(conns[i]->wake[1], "x", 1) < 0)
			fprintf(stderr, "mb-faultproxy: cannot wake a "
				"connection: %s\n", strerror(errno));
	pthread_mutex_unlock(&lock);
}

static int active(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = nconns;
	pthread_mutex_unlock(&lock);
	return n;
}

static void usage(void)
{
	fprintf(stderr, "usage: mb-faultproxy --listen PORT --to HOST:PORT "
		"[--rate BYTES_PER_S] [--latency MS]\n"
		"       [--cut-after N] [--corrupt-after N] "
		"[--direction up|down|both]\n"
		"       [--faulty-conns N] [--once]\n");
	exit(2);
}

static long long number(const char *name, const char *s, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
		fprintf(stderr, "mb-faultproxy: bad %s '%s'\n", name, s);
		exit(2);
	}
	return v;
}

static void resolve(const char *arg)
{
	char host[256];
	const char *colon = strrchr(arg, ':');
	struct addrinfo hints, *res = NULL;
	size_t len;
	int rc;

	if (colon == NULL || colon == arg || colon[1] == '\0') {
		fprintf(stderr, "mb-faultproxy: --to wants HOST:PORT, not "
			"'%s'\n", arg);
		exit(2);
	}
	len = (size_t)(colon - arg);
	if (arg[0] == '[' && len >= 2 && arg[len - 1] == ']') {
		arg++;
		len -= 2;
	}
	if (len >= sizeof(host)) {
		fprintf(stderr, "mb-faultproxy: host name too long\n");
		exit(2);
	}
	memcpy(host, arg, len);
	host[len] = '\0';
	number("port", colon + 1, 65535);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(opt.to)) {
		fprintf(stderr, "mb-faultproxy: cannot resolve '%s': %s\n",
			host, rc != 0 ? gai_strerror(rc) : "no address");
		exit(2);
	}
	memcpy(&opt.to, res->ai_addr, res->ai_addrlen);
	opt.to_len = res->ai_addrlen;
	freeaddrinfo(res);
}

static void parse_args(int argc, char **argv)
{
	int i, have_listen = 0, have_to = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--once") == 0) {
			opt.once = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--listen") == 0) {
			opt.listen_port = (int)number("port", v, 65535);
			have_listen = 1;
		} else if (strcmp(a, "--to") == 0) {
			resolve(v);
			have_to = 1;
		} else if (strcmp(a, "--rate") == 0) {
			/* 10 GB/s: beyond that, unlimited is the same test */
			opt.rate = number("rate", v, 10000000000LL);
		} else if (strcmp(a, "--latency") == 0) {
			opt.latency_us = number("latency", v, 3600000) * 1000;
		} else if (strcmp(a, "--cut-after") == 0) {
			opt.cut_after = number("byte count", v, 1LL << 60);
		} else if (strcmp(a, "--corrupt-after") == 0) {
			opt.corrupt_after = number("byte offset", v, 1LL << 60);
		} else if (strcmp(a, "--faulty-conns") == 0) {
			opt.faulty_conns = number("connection count", v, 1LL << 40);
		} else if (strcmp(a, "--direction") == 0) {
			if (strcmp(v, "up") == 0)
				opt.dirs = DIR_UP;
			else if (strcmp(v, "down") == 0)
				opt.dirs = DIR_DOWN;
			else if (strcmp(v, "both") == 0)
				opt.dirs = DIR_UP | DIR_DOWN;
			else
				usage();
		} else {
			usage();
		}
	}
	if (!have_listen || !have_to)
		usage();
}

/* Listens on 127.0.0.1:port (0: any free port); *bound gets the port. */
static int listen_local(int port, int *bound)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)port);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
	    set_nonblock(fd) != 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct sockaddr_in peer;
	int lfd, port, served = 0;

	parse_args(argc, argv);
	if (pipe(sig_pipe) != 0 || set_nonblock(sig_pipe[0]) != 0 ||
	    set_nonblock(sig_pipe[1]) != 0) {
		perror("mb-faultproxy: pipe");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	lfd = listen_local(opt.listen_port, &port);
	if (lfd < 0) {
		fprintf(stderr, "mb-faultproxy: cannot listen on 127.0.0.1:%d: "
			"%s\n", opt.listen_port, strerror(errno));
		return 1;
	}
	/* The caller reads this line to learn the port: it must not sit in a
	 * stdio buffer. */
	if (printf("PORT=%d\n", port) < 0 || fflush(stdout) != 0) {
		perror("mb-faultproxy: stdout");
		return 1;
	}

	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = sig_pipe[0], .events = POLLIN },
			{ .fd = lfd, .events = POLLIN },
		};
		int r;

		if (opt.once && served && active() == 0)
			break;
		/* With --once the listener is gone and only the end of the
		 * one connection is awaited: look every 50 ms. */
		r = poll(pf, lfd >= 0 ? 2 : 1, lfd >= 0 ? -1 : 50);
		if (r < 0 && errno != EINTR) {
			perror("mb-faultproxy: poll");
			return 1;
		}
		if (r <= 0)
			continue;
		if (pf[0].revents & POLLIN) {
			unsigned char sig;
			int stop = 0;

			while (read(sig_pipe[0], &sig, 1) == 1) {
				if (sig == SIGUSR1)
					cut_all();
				else
					stop = 1;
			}
			if (stop)
				break;
		}
		if (lfd >= 0 && (pf[1].revents & POLLIN)) {
			socklen_t len = sizeof(peer);
			int fd = accept(lfd, (struct sockaddr *)&peer, &len);

			if (fd < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK &&
				    errno != EINTR && errno != ECONNABORTED)
					fprintf(stderr, "mb-faultproxy: accept: "
						"%s\n", strerror(errno));
				continue;
			}
			conn_start(fd);
			served = 1;
			if (opt.once) {
				close(lfd);
				lfd = -1;
			}
		}
	}
	if (lfd >= 0)
		close(lfd);
	return 0;
}
