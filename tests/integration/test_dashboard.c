/*
 * The dashboard as a person sees it, in a real terminal (tmux) of 60, 80
 * and 200 columns: a running job's progress shows its rate and the time
 * left at every width, the columns sit under their headers, a path cut
 * to its column says so, and no line is wider than the terminal. The job is set up in the database as the
 * coordinator leaves it mid-pull, so the frame is the same every time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "th.h"

static char root[512];

static int setup(void **state)
{
	char home[700], cmd[4000], *out;
	long long now_ms = (long long)time(NULL) * 1000;
	int rc;

	(void)state;
	if (th_tmpdir("dashboard", root, sizeof(root)) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	setenv("MIBERA_HOME", home, 1);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/models/a-long-directory-of-models/phi-4-my-finetune && "
		 "%s/mibera-job worker add w local --dir %s/wd --agent "
		 "%s/mibera-worker >/dev/null && %s/mibera-job submit "
		 "%s/models/a-long-directory-of-models/phi-4-my-finetune "
		 "--quant Q4_K_M,Q8_0 --no-smoke && sqlite3 %s/jobs.db \""
		 "UPDATE jobs SET state = 'running', started_at = "
		 "strftime('%%s','now') - 95; UPDATE steps SET state = 'running' "
		 "WHERE name = 'pull'; INSERT INTO events (job_id, step, seq, "
		 "at_ms, type, data) VALUES (1, 'pull', 0, %lld, 'progress', "
		 "'{\\\"v\\\":1,\\\"seq\\\":0,\\\"ms\\\":%lld,\\\"step\\\":\\\"pull\\\","
		 "\\\"type\\\":\\\"progress\\\",\\\"what\\\":\\\"m-Q4_K_M.gguf\\\","
		 "\\\"done\\\":3400000000,\\\"total\\\":9100000000,"
		 "\\\"rate\\\":120000000}')\"", root, MB_BINARY_DIR, root, MB_BINARY_DIR,
		 MB_BINARY_DIR, root, home, now_ms, now_ms);
	rc = th_capture(cmd, &out);
	if (rc != 0)
		fprintf(stderr, "setup: %s\n", out);
	free(out);
	return rc == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	th_rmtree(root);
	return 0;
}

/*
 * The dashboard's screen in a cols x 24 terminal. Each width gets its own
 * tmux server (its own socket), so one dashboard quitting and its server
 * shutting down can never take the next one with it; the pane stays after
 * the command exits, so a dashboard that dies shows why.
 */
static char *screen(int cols)
{
	char cmd[2000], sock[64], *out = NULL;
	int tries;

	snprintf(sock, sizeof(sock), "mbdash-%d-%d", (int)getpid(), cols);
	snprintf(cmd, sizeof(cmd), "tmux -L %s -f /dev/null new-session -d "
		 "-s mbdash -x %d -y 24 'env MIBERA_HOME=%s/home "
		 "%s/mibera-job dashboard; echo \"dashboard exited: $?\"; "
		 "sleep 30' && tmux -L %s set-option -t mbdash remain-on-exit on",
		 sock, cols, root, MB_BINARY_DIR, sock);
	assert_int_equal(th_capture(cmd, &out), 0);
	free(out);
	out = NULL;
	snprintf(cmd, sizeof(cmd), "tmux -L %s capture-pane -p -t mbdash", sock);
	for (tries = 0; tries < 100; tries++) {
		usleep(100 * 1000);
		free(out);
		out = NULL;
		if (th_capture(cmd, &out) != 0)
			continue;
		if (strstr(out, "PROGRESS") && strstr(out, "netune"))
			break;
		if (strstr(out, "dashboard exited"))
			break;
	}
	if (out == NULL || strstr(out, "PROGRESS") == NULL)
		print_message("%d columns, no dashboard:\n%s\n", cols,
			      out ? out : "(tmux gave no screen)");
	assert_non_null(out);
	assert_null(strstr(out, "dashboard exited"));
	{
		char *q;

		snprintf(cmd, sizeof(cmd), "tmux -L %s send-keys -t mbdash q; "
			 "sleep 0.2; tmux -L %s kill-server 2>/dev/null; true",
			 sock, sock);
		th_capture(cmd, &q);
		free(q);
	}
	return out;
}

static const char *line_with(const char *text, const char *needle, char *out,
			     size_t cap)
{
	const char *p = strstr(text, needle), *b, *e;

	if (p == NULL)
		return NULL;
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	snprintf(out, cap, "%.*s", (int)(e ? e - b : (long)strlen(b)), b);
	return out;
}

static void check_width(int cols)
{
	char head[512], row[512], *s = screen(cols), *l, *save = NULL;
	const char *ph, *pr;

	print_message("%d columns:\n%s", cols, s);
	assert_non_null(line_with(s, "PROGRESS", head, sizeof(head)));
	/* the model column keeps the path's end and says it was cut */
	assert_non_null(line_with(s, "netune", row, sizeof(row)));
	assert_non_null(strstr(row, " ..."));
	/* rate and time left at every width: 5.7 GB at 120 MB/s */
	assert_non_null(strstr(row, "120 MB/s"));
	assert_non_null(strstr(row, "ETA 48s"));
	/* the row sits under its header: PROGRESS where its text starts */
	ph = strstr(head, "PROGRESS");
	pr = strstr(row, cols >= 100 ? "[" : cols >= 80 ? "3.4/9.1 GB" : "37%");
	assert_non_null(pr);
	assert_int_equal(ph - head, pr - row);
	assert_int_equal(strstr(head, "STEP") - head, strstr(row, "pull") - row);
	/* nothing wraps */
	for (l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		assert_true((int)strlen(l) <= cols);
	free(s);
}

static void test_progress_fits_every_width(void **state)
{
	(void)state;
	check_width(80);
	check_width(200);
	check_width(60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress_fits_every_width),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
