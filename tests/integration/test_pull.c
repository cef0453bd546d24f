/*
 * pull: artifacts copied back from a worker over the loopback sshd, several
 * streams at once, each chunk verified against the worker's manifest. A
 * chunk that arrives bad is fetched again; a byte damaged on the link is
 * caught and the link replaced; a file that keeps disagreeing with its
 * manifest fails naming the chunk; a pull killed half-way resumes from its
 * record and fetches again at most one chunk per stream; a full disk loses
 * nothing. The "worker" is a directory the sshd's user reads.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "coordinator/pull.h"
#include "coordinator/transport.h"
#include "proxy.h"
#include "sshd.h"
#include "th.h"

#define MiB (1u << 20)
#define CHUNK (1u * MiB)
#define SIZE (24u * MiB + 12345u) /* 25 chunks, the last one short */

static struct th_sshd g_sshd;
static char g_dir[512], g_remote[700];
static struct mb_manifest *g_m;

static unsigned char pattern(size_t i)
{
	return (unsigned char)(((uint32_t)i * 2654435761u) >> 24);
}

static void path_in(char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", g_dir, name);

	assert_true(n > 0 && (size_t)n < cap);
}

/* How the streams reach the sshd: directly (port 0) or through a proxy. */
struct link {
	int port;
	int opened;
};

static int open_ssh(struct link *l, struct mb_transport **t, char *err,
		    size_t errcap)
{
	struct mb_transport_opts o;
	char target[256];

	snprintf(target, sizeof(target), "%s@%s:%d", g_sshd.user, g_sshd.host,
		 l->port ? l->port : g_sshd.port);
	memset(&o, 0, sizeof(o));
	o.target = target;
	o.known_hosts = "";
	o.pinned_key = g_sshd.known_hosts_line;
	o.ssh_config = "";
	o.identity = g_sshd.key;
	o.no_agent = 1;
	o.connect_timeout_ms = 10000;
	o.io_timeout_ms = 10000;
	o.backoff_ms = 50;
	o.retries = 6;
	l->opened++;
	return mb_transport_open(&o, t, err, errcap);
}

static int open_stream(void *ctx, struct mb_transport **t, char *err,
		       size_t errcap)
{
	return open_ssh(ctx, t, err, errcap);
}

static int open_local(void *ctx, struct mb_transport **t, char *err,
		      size_t errcap)
{
	struct mb_transport_opts o;

	(void)ctx;
	memset(&o, 0, sizeof(o));
	o.target = "local";
	o.home = g_dir;
	return mb_transport_open(&o, t, err, errcap);
}

static int group_setup(void **state)
{
	unsigned char *data;
	size_t i;

	(void)state;
	if (th_tmpdir("pull", g_dir, sizeof(g_dir)) != 0 ||
	    th_sshd_start(&g_sshd) != 0)
		return -1;
	data = malloc(SIZE);
	if (data == NULL)
		return -1;
	for (i = 0; i < SIZE; i++)
		data[i] = pattern(i);
	snprintf(g_remote, sizeof(g_remote), "%s/m-Q8_0.gguf", g_dir);
	if (th_write_file(g_remote, data, SIZE) != 0)
		return -1;
	free(data);
	return mb_manifest_compute(g_remote, "m-Q8_0.gguf", CHUNK, &g_m);
}

static int group_teardown(void **state)
{
	(void)state;
	mb_manifest_free(g_m);
	th_sshd_stop(&g_sshd);
	th_rmtree(g_dir);
	return 0;
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void assert_verified(const char *dest)
{
	uint8_t d[MB_SHA256_LEN];
	char p[800];

	assert_int_equal(mb_sha256_file(dest, d, NULL), 0);
	assert_memory_equal(d, g_m->sha256, MB_SHA256_LEN);
	snprintf(p, sizeof(p), "%s.part", dest);
	assert_false(exists(p));
	snprintf(p, sizeof(p), "%s.chunks", dest);
	assert_false(exists(p));
}

struct seen {
	uint64_t done, total, fetched;
	int calls;
};

static void on_progress(uint64_t done, uint64_t total, uint64_t fetched,
			void *ctx)
{
	struct seen *s = ctx;

	assert_true(done >= s->done || s->calls == 0 || done <= total);
	s->done = done;
	s->total = total;
	s->fetched = fetched;
	s->calls++;
}

/* A pull that nothing reads after (a job without the smoke test) leaves
 * the page cache behind its hash: all but the last few MiB of the file
 * are on disk only (a page or two where pieces meet aside), and the file
 * is whole and verified. */
static void test_drop_behind(void **state)
{
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], err[1024];
	size_t cached, all, n = (SIZE - 8 * MiB) / 4096;

	(void)state;
	path_in(dest, sizeof(dest), "dropped");
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.open = open_stream;
	o.open_ctx = &l;
	o.streams = 4;
	o.drop_behind = 1;
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), 0);
	mb_transport_free(o.t);
	if (th_on_tmpfs(dest))
		skip();
	cached = (size_t)th_cached_pages(dest, 0, n * 4096, &all);
	print_message("pages cached behind the hash: %zu of %zu\n", cached, n);
	/* a folio that straddles two pieces' ranges may stay */
	assert_true(cached * 100 <= n);
	assert_verified(dest);
}

static void test_four_ssh_streams(void **state)
{
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	struct seen seen = { 0 };
	char dest[800], err[1024];

	(void)state;
	path_in(dest, sizeof(dest), "four");
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.open = open_stream;
	o.open_ctx = &l;
	o.streams = 4;
	o.progress = on_progress;
	o.progress_ctx = &seen;
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	/* four sessions, each its own connection */
	assert_int_equal(st.streams, 4);
	assert_int_equal(l.opened, 4);
	assert_int_equal(st.fetched, SIZE);
	assert_int_equal(st.reused, 0);
	assert_int_equal(st.refetched, 0);
	assert_int_equal(seen.done, SIZE);
	assert_int_equal(seen.total, SIZE);
	assert_true(seen.calls > 4);
	print_message("24 MiB over 4 ssh streams: %.2f s\n", st.seconds);
	mb_transport_free(o.t);
}

static void test_local_streams(void **state)
{
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], err[1024];

	(void)state;
	path_in(dest, sizeof(dest), "local");
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_local(NULL, &o.t, err, sizeof(err)), 0);
	o.open = open_local;
	o.streams = 3;
	assert_int_equal(mb_pull_file(&o, "m-Q8_0.gguf", g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	assert_int_equal(st.streams, 3);
	mb_transport_free(o.t);
}

/* Damages byte `at` of the worker's file (XOR 0xff), or repairs it. */
static void flip(uint64_t at)
{
	FILE *f = fopen(g_remote, "r+b");
	int c;

	assert_non_null(f);
	assert_int_equal(fseek(f, (long)at, SEEK_SET), 0);
	c = fgetc(f);
	assert_int_equal(fseek(f, (long)at, SEEK_SET), 0);
	fputc(c ^ 0xff, f);
	assert_int_equal(fclose(f), 0);
}

/* Repairs the damaged byte once the first fetch of its chunk is done. */
struct heal {
	uint64_t after, at;
	int healed;
};

static void heal_later(uint64_t done, uint64_t total, uint64_t fetched,
		       void *ctx)
{
	struct heal *h = ctx;

	(void)done;
	(void)total;
	if (!h->healed && fetched >= h->after) {
		flip(h->at);
		h->healed = 1;
	}
}

static void test_bad_chunk_fetched_again(void **state)
{
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	struct heal h;
	char dest[800], err[1024];

	(void)state;
	path_in(dest, sizeof(dest), "healed");
	/* chunk 5 is wrong on the worker while the one stream reads it the
	 * first time, right when it asks again */
	h.at = 5 * (uint64_t)CHUNK + 777;
	h.after = 6 * (uint64_t)CHUNK;
	h.healed = 0;
	flip(h.at);
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.streams = 1;
	o.progress = heal_later;
	o.progress_ctx = &h;
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_true(h.healed);
	assert_verified(dest);
	assert_int_equal(st.refetched, CHUNK);
	assert_int_equal(st.fetched, SIZE + CHUNK);
	mb_transport_free(o.t);
}

static void test_chunk_never_matches(void **state)
{
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], err[1024];

	(void)state;
	path_in(dest, sizeof(dest), "damaged");
	flip(7 * (uint64_t)CHUNK + 3);
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.open = open_stream;
	o.open_ctx = &l;
	o.streams = 2;
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), MB_ECHECKSUM);
	print_message("%s\n", err);
	assert_non_null(strstr(err, "chunk 7 of 'm-Q8_0.gguf'"));
	assert_int_equal(st.refetched, 3 * (uint64_t)CHUNK);
	assert_false(exists(dest));
	/* repaired on the worker: the next pull keeps what was verified */
	flip(7 * (uint64_t)CHUNK + 3);
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	assert_true(st.reused >= CHUNK);
	assert_int_equal(st.reused + st.fetched, SIZE);
	mb_transport_free(o.t);
}

static void test_byte_damaged_on_the_link(void **state)
{
	const char *args[] = { "--corrupt-after", "3000000", "--faulty-conns",
			       "1", NULL };
	struct th_proxy p;
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], err[1024];

	(void)state;
	path_in(dest, sizeof(dest), "link");
	assert_int_equal(th_proxy_start(&p, g_sshd.host, g_sshd.port, args), 0);
	l.port = p.port;
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.open = open_stream;
	o.open_ctx = &l;
	o.streams = 2;
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	/* SSH's MAC caught the flipped byte; the stream reconnected and
	 * read on from the last good byte */
	assert_true(st.reconnects >= 1);
	assert_true(st.fetched >= SIZE);
	print_message("damaged link: %u reconnect(s), %llu bytes fetched\n",
		      st.reconnects, (unsigned long long)st.fetched);
	mb_transport_free(o.t);
	th_proxy_stop(&p);
}

/* The killed pull's count of bytes received, kept where its parent can
 * read it after the kill. */
static volatile uint64_t *g_shared;

static void count_shared(uint64_t done, uint64_t total, uint64_t fetched,
			 void *ctx)
{
	(void)done;
	(void)total;
	(void)ctx;
	*g_shared = fetched;
}

/* Verified chunks in a record ("mibera-chunks 1 ...\n" then flags). */
static int verified_in(const char *rec)
{
	char *data = th_slurp(rec, NULL), *nl;
	int n = 0;

	if (data == NULL)
		return 0;
	nl = strchr(data, '\n');
	for (nl = nl ? nl + 1 : data; *nl; nl++)
		n += *nl == '1';
	free(data);
	return n;
}

static void test_killed_pull_resumes(void **state)
{
	/* 1.5 MB/s per connection: 4 streams take about 4 s for 24 MiB */
	const char *args[] = { "--rate", "1500000", NULL };
	struct th_proxy p;
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], rec[820], err[1024];
	uint64_t first;
	long long t0;
	int status, at_kill;
	pid_t pid;

	(void)state;
	path_in(dest, sizeof(dest), "killed");
	snprintf(rec, sizeof(rec), "%s.chunks", dest);
	g_shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(g_shared != MAP_FAILED);
	*g_shared = 0;
	assert_int_equal(th_proxy_start(&p, g_sshd.host, g_sshd.port, args), 0);
	l.port = p.port;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		memset(&o, 0, sizeof(o));
		if (open_ssh(&l, &o.t, err, sizeof(err)) != 0)
			_exit(3);
		o.open = open_stream;
		o.open_ctx = &l;
		o.streams = 4;
		o.progress = count_shared;
		mb_pull_file(&o, g_remote, g_m, dest, NULL, err, sizeof(err));
		_exit(4); /* it should have been killed before the end */
	}
	/* kill it once about half the chunks are verified */
	t0 = th_now_ms();
	while ((at_kill = verified_in(rec)) < 10 && th_now_ms() - t0 < 30000)
		usleep(20000);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	first = *g_shared;
	at_kill = verified_in(rec);
	assert_true(at_kill >= 10);
	assert_true(at_kill < (int)g_m->nchunks);
	assert_false(exists(dest));
	th_proxy_stop(&p);

	/* the restart, straight to the sshd */
	l.port = 0;
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.open = open_stream;
	o.open_ctx = &l;
	o.streams = 4;
	assert_int_equal(mb_pull_file(&o, g_remote, g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	print_message("killed with %d of %llu chunks verified after %llu bytes; "
		      "the restart reused %llu and fetched %llu: %lld bytes "
		      "fetched twice (at most %u allowed)\n", at_kill,
		      (unsigned long long)g_m->nchunks, (unsigned long long)first,
		      (unsigned long long)st.reused,
		      (unsigned long long)st.fetched,
		      (long long)(first + st.fetched) - (long long)SIZE,
		      4 * CHUNK);
	/* the verified chunks, and those written but not yet recorded */
	assert_true(st.reused >= (uint64_t)at_kill * CHUNK);
	assert_int_equal(st.reused + st.fetched, SIZE);
	assert_true(st.fetched < SIZE);
	/* bytes fetched again: at most one chunk per stream */
	assert_true(first + st.fetched <= (uint64_t)SIZE + 4 * CHUNK);
	munmap((void *)g_shared, 4096);
	mb_transport_free(o.t);
}

static void test_full_disk_loses_nothing(void **state)
{
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], err[1024], part[820];

	(void)state;
	path_in(dest, sizeof(dest), "full");
	snprintf(part, sizeof(part), "%s.part", dest);
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_local(NULL, &o.t, err, sizeof(err)), 0);
	o.streams = 1;
	/* the disk fills after 10 pieces of 4 MiB are written */
	mb_fault_set(MB_FAULT_WRITE, 10, -1, ENOSPC);
	assert_int_equal(mb_pull_file(&o, "m-Q8_0.gguf", g_m, dest, &st, err,
				      sizeof(err)), MB_ENOSPC);
	mb_fault_clear();
	print_message("%s\n", err);
	assert_non_null(strstr(err, "no space left"));
	assert_false(exists(dest));
	assert_true(exists(part));
	assert_int_equal(mb_pull_file(&o, "m-Q8_0.gguf", g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	assert_true(st.reused > 0);
	mb_transport_free(o.t);
}

static uint64_t ahead_fetched(struct mb_pull_ahead *a)
{
	uint64_t fetched, size;

	mb_pull_ahead_progress(a, &fetched, &size);
	return fetched;
}

static uint64_t ahead_size(struct mb_pull_ahead *a)
{
	uint64_t fetched, size;

	mb_pull_ahead_progress(a, &fetched, &size);
	return size;
}

/* Waits up to 20 s for the pull ahead to have received at least n bytes. */
static uint64_t ahead_reaches(struct mb_pull_ahead *a, uint64_t n)
{
	int i;

	for (i = 0; i < 400 && ahead_fetched(a) < n; i++)
		usleep(50 * 1000);
	return ahead_fetched(a);
}

/* A file pulled while the worker writes it: only the chunks whose blocks
 * REMOTE.ready calls final are fetched (from REMOTE.part, then from REMOTE
 * once it is published); once the manifest exists, only the chunks that
 * match it are kept, and the pull fetches the rest: here a chunk whose
 * blocks were called final before their bytes were. */
static void test_pulled_while_written(void **state)
{
	enum { BLOCK = 512 * 1024, LIAR = 3 };
	uint64_t nblocks = (SIZE + BLOCK - 1) / BLOCK, half = 12 * CHUNK, b,
		 adopted, fetched, lied;
	unsigned char *data = malloc(SIZE);
	char dir[800], w[900], part[960], ready[960], dest[800], err[1024];
	char *map = malloc(nblocks + 100);
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	struct mb_pull_ahead *a;
	size_t i;
	int n;

	(void)state;
	assert_non_null(data);
	assert_non_null(map);
	path_in(dir, sizeof(dir), "ahead-worker");
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(w, sizeof(w), "%s/m-Q8_0.gguf", dir);
	snprintf(part, sizeof(part), "%s.part", w);
	snprintf(ready, sizeof(ready), "%s.ready", w);
	path_in(dest, sizeof(dest), "ahead");
	/* the writer: the first half of the file, and the liar's chunk
	 * called final before its bytes are there */
	memset(data, 0, SIZE);
	for (i = 0; i < half; i++)
		data[i] = pattern(i);
	assert_int_equal(th_write_file(part, data, SIZE), 0);
	n = snprintf(map, nblocks + 100, "mibera-ready 1 %u %u\n", SIZE, BLOCK);
	for (b = 0; b < nblocks; b++)
		map[n + b] = b * BLOCK < half ||
				     b / (CHUNK / BLOCK) == (uint64_t)half / CHUNK + LIAR
			     ? '1' : '0';
	assert_int_equal(th_write_file(ready, map, (size_t)n + nblocks), 0);

	memset(&o, 0, sizeof(o));
	o.open = open_stream;
	o.open_ctx = &l;
	assert_int_equal(mb_pull_ahead_start(&o, w, CHUNK, dest, &a), 0);
	lied = half + CHUNK;
	assert_int_equal(ahead_reaches(a, lied), lied);
	assert_int_equal(ahead_size(a), SIZE); /* the map said */
	usleep(1500 * 1000); /* more polls: nothing else is final yet */
	assert_int_equal(ahead_fetched(a), lied);

	/* the rest is written, then the file published */
	for (i = half; i < SIZE; i++)
		data[i] = pattern(i);
	assert_int_equal(th_write_file(part, data, SIZE), 0);
	assert_int_equal(rename(part, w), 0);
	assert_int_equal(unlink(ready), 0);
	assert_int_equal(ahead_reaches(a, SIZE), SIZE);
	mb_pull_ahead_finish(a, g_m, &adopted, &fetched);
	assert_int_equal(fetched, SIZE);
	assert_int_equal(adopted, SIZE - CHUNK);

	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.streams = 1;
	assert_int_equal(mb_pull_file(&o, w, g_m, dest, &st, err, sizeof(err)),
			 0);
	assert_verified(dest);
	assert_int_equal(st.reused, SIZE - CHUNK);
	assert_int_equal(st.fetched, CHUNK);
	mb_transport_free(o.t);

	/* stopped before anything is final: nothing recorded, nothing kept
	 * from a record of before */
	unlink(w);
	path_in(dest, sizeof(dest), "ahead-none");
	memset(&o, 0, sizeof(o));
	o.open = open_stream;
	o.open_ctx = &l;
	assert_int_equal(mb_pull_ahead_start(&o, w, CHUNK, dest, &a), 0);
	usleep(300 * 1000);
	assert_int_equal(ahead_size(a), 0);
	mb_pull_ahead_finish(a, g_m, &adopted, &fetched);
	assert_int_equal(adopted, 0);
	assert_int_equal(fetched, 0);
	snprintf(part, sizeof(part), "%s.chunks", dest);
	assert_false(exists(part));
	snprintf(part, sizeof(part), "%s.part", dest);
	assert_false(exists(part));
	free(data);
	free(map);
}

/* Bytes a .part holds without a record of them (left by a pull ahead, or
 * by a pull killed between its write and its record) are checked against
 * the manifest: the chunks that match are kept, the rest fetched. */
static void test_unrecorded_bytes_kept(void **state)
{
	unsigned char *data = malloc(SIZE);
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], part[900], err[1024];
	size_t i, half = 12 * CHUNK + 100;

	(void)state;
	assert_non_null(data);
	path_in(dest, sizeof(dest), "unrecorded");
	snprintf(part, sizeof(part), "%s.part", dest);
	for (i = 0; i < SIZE; i++)
		data[i] = i < half ? pattern(i) : 0;
	data[5 * CHUNK + 7] ^= 1; /* and one chunk damaged */
	assert_int_equal(th_write_file(part, data, SIZE), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_local(NULL, &o.t, err, sizeof(err)), 0);
	o.streams = 1;
	assert_int_equal(mb_pull_file(&o, "m-Q8_0.gguf", g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	assert_int_equal(st.reused, 11 * CHUNK);
	assert_int_equal(st.fetched, SIZE - 11 * CHUNK);
	mb_transport_free(o.t);
	free(data);
}

/* A map that lies or is not a map: nothing read past it, nothing taken
 * that the manifest does not say, and the pull after does the rest. */
static void test_hostile_ready_map(void **state)
{
	static const char *const maps[] = {
		"garbage\n111",
		"mibera-ready 1 1125899906842624 1048576\n1111",
		"mibera-ready 1 0 1073741824\n11111111111111111111",
		"mibera-ready 1 0 0\n1111",
		"mibera-ready 2 0 1048576\n1111",
		"mibera-ready 1 0 1048576\n1111111111111111111111111111111111",
	};
	char dir[800], w[900], ready[960], dest[1000], err[1024];
	struct link l = { 0, 0 };
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	struct mb_pull_ahead *a;
	uint64_t adopted, fetched;
	unsigned char *junk = malloc(SIZE);
	size_t i, k;

	(void)state;
	assert_non_null(junk);
	for (k = 0; k < SIZE; k++)
		junk[k] = (unsigned char)~pattern(k);
	path_in(dir, sizeof(dir), "hostile-worker");
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(w, sizeof(w), "%s/m-Q8_0.gguf", dir);
	snprintf(ready, sizeof(ready), "%s.ready", w);
	snprintf(dest, sizeof(dest), "%s.part", w);
	/* the bytes beside the map are not the file's */
	assert_int_equal(th_write_file(dest, junk, SIZE), 0);
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		assert_int_equal(th_write_file(ready, maps[i], strlen(maps[i])), 0);
		path_in(dest, sizeof(dest), "hostile");
		memset(&o, 0, sizeof(o));
		o.open = open_stream;
		o.open_ctx = &l;
		assert_int_equal(mb_pull_ahead_start(&o, w, CHUNK, dest, &a), 0);
		usleep(700 * 1000);
		mb_pull_ahead_finish(a, g_m, &adopted, &fetched);
		assert_int_equal(adopted, 0);
	}
	/* the file as it is: the pull fetches all of it and it verifies */
	assert_int_equal(rename(g_remote, w), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_ssh(&l, &o.t, err, sizeof(err)), 0);
	o.streams = 1;
	assert_int_equal(mb_pull_file(&o, w, g_m, dest, &st, err, sizeof(err)),
			 0);
	assert_int_equal(rename(w, g_remote), 0);
	assert_verified(dest);
	assert_int_equal(st.fetched, SIZE);
	mb_transport_free(o.t);
	free(junk);
}

static void test_stale_record_not_trusted(void **state)
{
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	char dest[800], rec[820], part[820], err[1024], *flags;
	size_t i;

	(void)state;
	path_in(dest, sizeof(dest), "stale");
	snprintf(rec, sizeof(rec), "%s.chunks", dest);
	snprintf(part, sizeof(part), "%s.part", dest);
	/* a .part of zeros and a record of another file claiming all of it */
	assert_int_equal(th_write_file(part, "", 0), 0);
	assert_int_equal(truncate(part, SIZE), 0);
	flags = malloc(200 + g_m->nchunks);
	assert_non_null(flags);
	i = (size_t)snprintf(flags, 200, "mibera-chunks 1 %064d %llu %llu\n", 0,
			     (unsigned long long)CHUNK,
			     (unsigned long long)g_m->nchunks);
	memset(flags + i, '1', g_m->nchunks);
	assert_int_equal(th_write_file(rec, flags, i + g_m->nchunks), 0);
	free(flags);
	memset(&o, 0, sizeof(o));
	assert_int_equal(open_local(NULL, &o.t, err, sizeof(err)), 0);
	assert_int_equal(mb_pull_file(&o, "m-Q8_0.gguf", g_m, dest, &st, err,
				      sizeof(err)), 0);
	assert_verified(dest);
	assert_int_equal(st.reused, 0);
	assert_int_equal(st.fetched, SIZE);
	mb_transport_free(o.t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_four_ssh_streams),
		cmocka_unit_test(test_drop_behind),
		cmocka_unit_test(test_local_streams),
		cmocka_unit_test(test_bad_chunk_fetched_again),
		cmocka_unit_test(test_chunk_never_matches),
		cmocka_unit_test(test_byte_damaged_on_the_link),
		cmocka_unit_test(test_killed_pull_resumes),
		cmocka_unit_test(test_full_disk_loses_nothing),
		cmocka_unit_test(test_stale_record_not_trusted),
		cmocka_unit_test(test_pulled_while_written),
		cmocka_unit_test(test_hostile_ready_map),
		cmocka_unit_test(test_unrecorded_bytes_kept),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
