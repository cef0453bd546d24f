/* pyconvert: llama.cpp's convert_hf_to_gguf.py, run for a family mibera
 * does not convert natively, with its Python requirements installed on
 * first use. */
#include "worker/pyconvert.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "common/text.h"
#include "mb_version.h"
#include "proto/event.h"

/* What the converter imports at its top (torch, transformers' AutoConfig,
 * numpy) and for SentencePiece vocabularies: a Python that imports these
 * can run it. */
#define PY_CHECK "import torch, transformers, sentencepiece, numpy"
#define REQUIREMENTS "requirements/requirements-convert_hf_to_gguf.txt"
#define CANNOT_INSTALL "cannot install the Python requirements of llama.cpp's " \
		       "converter"

/* One command's output, read line by line. */
struct lines {
	struct mb_events *ev;
	int log_fd;		/* every line also goes here, or -1 */
	int converting;		/* 0: pip and friends, 1: the converter */
	char last[600];		/* the last line that was not progress */
	char error[600];	/* the first "ERROR:" line (pip), the last
				 * (the converter) */
	char net[300];		/* pip could not reach the index: why */
	uint64_t tensors;	/* the converter's per-tensor lines */
	double last_note;
};

static void event_log(struct mb_events *ev, const char *level, const char *msg)
{
	struct mb_buf b;

	mb_buf_init(&b, 4096);
	mb_buf_addf(&b, "\"level\":\"%s\",\"msg\":", level);
	mb_json_quote(&b, msg);
	if (mb_buf_error(&b) == 0)
		mb_events_emit(ev, "log", b.data);
	mb_buf_release(&b);
}

/* A size as tqdm writes it with unit_scale: "1.23G", "512", "3.4k". */
static double si_number(const char *s, const char **end)
{
	char *e;
	double v = strtod(s, &e);

	if (e == s) {
		*end = NULL;
		return 0;
	}
	switch (*e) {
	case 'k': v *= 1e3; e++; break;
	case 'M': v *= 1e6; e++; break;
	case 'G': v *= 1e9; e++; break;
	case 'T': v *= 1e12; e++; break;
	default: break;
	}
	*end = e;
	return v;
}

/* tqdm's "Writing:  45%|####      | 1.23G/2.70G [00:05<00:06, 250Mbyte/s]"
 * as a progress event: bytes written of the file's total. */
static int writing_progress(struct lines *l, const char *line)
{
	const char *bar = strstr(line, "Writing:"), *p, *e;
	double done, total;

	if (bar == NULL || (p = strrchr(bar, '|')) == NULL)
		return 0;
	p += strspn(p + 1, " ") + 1;
	done = si_number(p, &e);
	if (e == NULL || *e != '/')
		return 1;
	total = si_number(e + 1, &e);
	if (e == NULL || total <= 0 || done < 0 || done > total)
		return 1;
	mb_events_progress(l->ev, "convert", (uint64_t)done, (uint64_t)total, 0,
			   done >= total);
	return 1;
}

static void one_line(struct lines *l, char *line)
{
	static const char *const prefixes[] = { "INFO:hf-to-gguf:",
						"WARNING:hf-to-gguf:",
						"ERROR:hf-to-gguf:", NULL };
	const char *msg = line;
	int k;

	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0')
		return;
	if (l->log_fd >= 0) {
		mb_write_all(l->log_fd, line, strlen(line));
		mb_write_all(l->log_fd, "\n", 1);
	}
	if (l->converting && writing_progress(l, line))
		return;
	snprintf(l->last, sizeof(l->last), "%s", line);
	if (!l->converting) {
		/* pip: what it fetches, and why it failed */
		if (strncmp(line, "ERROR: ", 7) == 0 && l->error[0] == '\0')
			snprintf(l->error, sizeof(l->error), "%s", line + 7);
		if (l->net[0] == '\0' &&
		    (strstr(line, "Failed to establish a new connection") ||
		     strstr(line, "Temporary failure in name resolution") ||
		     strstr(line, "Name or service not known") ||
		     strstr(line, "Network is unreachable") ||
		     strstr(line, "Connection refused")))
			snprintf(l->net, sizeof(l->net), "%s",
				 strstr(line, "Name or service not known")
					 ? "name resolution failed"
					 : "no connection");
		if (strncmp(line, "Collecting ", 11) == 0 ||
		    strncmp(line, "Successfully installed", 22) == 0 ||
		    strncmp(line, "Installing collected packages", 29) == 0)
			event_log(l->ev, "info", line);
		return;
	}
	for (k = 0; prefixes[k] != NULL; k++)
		if (strncmp(line, prefixes[k], strlen(prefixes[k])) == 0) {
			msg = line + strlen(prefixes[k]);
			break;
		}
	if (prefixes[k] == NULL)
		return; /* a traceback's lines: the last one is kept */
	if (k == 2) {
		snprintf(l->error, sizeof(l->error), "%s", msg);
		event_log(l->ev, "error", msg);
	} else if (k == 1) {
		event_log(l->ev, "warn", msg);
	} else if (strstr(msg, " --> ") != NULL) {
		/* one line per tensor: counted, and a note now and then */
		l->tensors++;
		if (mb_now_s() - l->last_note >= 10) {
			char note[64];

			snprintf(note, sizeof(note), "%llu tensors read",
				 (unsigned long long)l->tensors);
			event_log(l->ev, "info", note);
			l->last_note = mb_now_s();
		}
	} else {
		event_log(l->ev, "info", msg);
	}
}

/* Runs argv (argv[0] looked up in PATH) with stdout and stderr read line
 * by line into l. 0 with *status its wait status, or an error when it
 * could not be started. */
static int run_lines(const char *const *argv, struct lines *l, int *status,
		     struct rusage *ru)
{
	char buf[8192], line[1024];
	size_t n = 0;
	int fds[2], cut = 0;
	pid_t pid;
	ssize_t got;

	if (pipe(fds) != 0)
		return MB_EIO;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return MB_EIO;
	}
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		setenv("PYTHONUNBUFFERED", "1", 1);
		setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1", 1);
		setenv("PIP_NO_INPUT", "1", 1);
		setenv("DEBIAN_FRONTEND", "noninteractive", 1);
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		size_t i;

		got = read(fds[0], buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		for (i = 0; i < (size_t)got; i++) {
			char c = buf[i];

			/* tqdm redraws its bar with '\r': each is a line */
			if (c == '\n' || c == '\r') {
				line[n] = '\0';
				one_line(l, line);
				n = 0;
				cut = 0;
			} else if (n + 1 < sizeof(line)) {
				line[n++] = c;
			} else if (!cut) {
				cut = 1; /* the rest of a long line is dropped */
			}
		}
	}
	if (n > 0) {
		line[n] = '\0';
		one_line(l, line);
	}
	close(fds[0]);
	while (wait4(pid, status, 0, ru) < 0)
		if (errno != EINTR)
			return MB_EIO;
	return 0;
}

/* "exit 1", "killed by signal 9 (out of memory?)" */
static const char *status_text(int status, char *out, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(out, cap, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, cap, "killed by signal %d%s", WTERMSIG(status),
			 WTERMSIG(status) == SIGKILL ? " (out of memory?)" : "");
	else
		snprintf(out, cap, "status %d", status);
	return out;
}

/* Runs one command of the install into log_fd; 0 when it exited 0, else
 * -1 with l->last, l->error and l->net saying why. */
static int install_cmd(const char *const *argv, struct lines *l)
{
	int status = 0;

	l->last[0] = l->error[0] = l->net[0] = '\0';
	if (run_lines(argv, l, &status, NULL) != 0) {
		snprintf(l->last, sizeof(l->last), "cannot start '%s': %s",
			 argv[0], strerror(errno));
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (l->last[0] == '\0')
		status_text(status, l->last, sizeof(l->last));
	return -1;
}

static int is_file(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Debian and Ubuntu boxes often lack the venv module: as root, apt-get
 * installs it (and python3 itself), as deploy/deps.sh installs the rest. */
static int apt_python(struct lines *l)
{
	static const char *const update[] = { "apt-get", "update", "-q",
					      "-o", "DPkg::Lock::Timeout=600",
					      NULL };
	static const char *const install[] = {
		"apt-get", "install", "-y", "-q", "--no-install-recommends",
		"-o", "DPkg::Lock::Timeout=600", "python3", "python3-venv",
		"python3-pip", NULL,
	};

	if (geteuid() != 0 || !is_file("/usr/bin/apt-get"))
		return -1;
	event_log(l->ev, "info", "installing python3 and python3-venv with "
		  "apt-get");
	if (install_cmd(update, l) != 0 || install_cmd(install, l) != 0)
		return -1;
	return 0;
}

/* The virtual environment with the converter's requirements, made now
 * when it is not there whole (TREE-venv/.complete). Two steps of one
 * worker asking at once: the second waits on the lock, then finds it
 * made. */
static int ensure_venv(const char *tree, struct mb_events *ev, char *py,
		       size_t pycap, char *err, size_t errcap)
{
	char venv[2200], mark[2300], lockp[2300], logp[2300], req[2300];
	char vpy[2300], vpip[2300];
	struct lines l;
	int lock_fd = -1, rc = 3;

	snprintf(venv, sizeof(venv), "%s-venv", tree);
	snprintf(mark, sizeof(mark), "%s/.complete", venv);
	snprintf(lockp, sizeof(lockp), "%s.lock", venv);
	snprintf(logp, sizeof(logp), "%s.log", venv);
	snprintf(req, sizeof(req), "%s/%s", tree, REQUIREMENTS);
	snprintf(vpy, sizeof(vpy), "%s/bin/python", venv);
	snprintf(vpip, sizeof(vpip), "%s/bin/pip", venv);
	snprintf(py, pycap, "%s", vpy);
	if (is_file(mark))
		return 0;
	memset(&l, 0, sizeof(l));
	l.ev = ev;
	l.log_fd = -1;
	lock_fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock_fd < 0) {
		mb_seterr(err, errcap, CANNOT_INSTALL ": cannot create '%s': %s",
			  lockp, strerror(errno));
		return 3;
	}
	while (flock(lock_fd, LOCK_EX) != 0)
		if (errno != EINTR)
			break;
	if (is_file(mark)) {
		rc = 0;
		goto out;
	}
	if (!is_file(req)) {
		mb_seterr(err, errcap, CANNOT_INSTALL ": '%s' is missing (the "
			  "llama.cpp source tree in '%s' is incomplete)", req, tree);
		goto out;
	}
	l.log_fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	event_log(ev, "info", "installing the Python requirements of llama.cpp's "
		  "converter (torch's CPU build, transformers, sentencepiece, "
		  "numpy) once for this worker: minutes and a few GB from the "
		  "package index");
	/* a half-made one (a step killed during pip) is made again */
	mb_rmtree(venv);
	{
		const char *const mk[] = { "python3", "-m", "venv", venv, NULL };

		if (install_cmd(mk, &l) != 0) {
			char first[600];

			snprintf(first, sizeof(first), "%s", l.last);
			mb_rmtree(venv);
			if (apt_python(&l) != 0 || install_cmd(mk, &l) != 0) {
				mb_seterr(err, errcap, CANNOT_INSTALL ": python3 -m "
					  "venv: %s (it needs python3 with its venv "
					  "module: apt-get install python3 "
					  "python3-venv)", first);
				goto out;
			}
		}
	}
	{
		const char *const pip[] = { vpip, "install", "--no-input",
					    "--disable-pip-version-check", "-r",
					    req, NULL };

		if (install_cmd(pip, &l) != 0) {
			mb_seterr(err, errcap, CANNOT_INSTALL ": pip: %s%s%s%s "
				  "(log: %s)", l.error[0] ? l.error : l.last,
				  l.net[0] ? "; pip could not reach the package "
					     "index (" : "",
				  l.net, l.net[0] ? ")" : "", logp);
			goto out;
		}
	}
	{
		const char *const check[] = { vpy, "-c", PY_CHECK, NULL };

		if (install_cmd(check, &l) != 0) {
			mb_seterr(err, errcap, CANNOT_INSTALL ": after pip, "
				  "Python cannot import them: %s (log: %s)",
				  l.last, logp);
			goto out;
		}
	}
	{
		int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0) {
			mb_seterr(err, errcap, CANNOT_INSTALL ": cannot write '%s': "
				  "%s", mark, strerror(errno));
			goto out;
		}
		close(fd);
	}
	event_log(ev, "info", "the Python requirements of llama.cpp's converter "
		  "are installed");
	rc = 0;
out:
	if (l.log_fd >= 0)
		close(l.log_fd);
	if (lock_fd >= 0)
		close(lock_fd); /* and the lock with it */
	return rc;
}

/* "llama.cpp TAG COMMIT" of the tree, as deploy/deps.sh wrote it there,
 * else of the llama.cpp this worker links. */
static void tree_version(const char *tree, char *out, size_t cap)
{
	char path[2200], *text = NULL, tag[64] = "", commit[64] = "";
	size_t len;

	snprintf(path, sizeof(path), "%s/mibera-llama.txt", tree);
	if (mb_read_file(path, 4096, &text, &len) == 0) {
		char *line, *save = NULL;

		for (line = strtok_r(text, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			if (strncmp(line, "tag ", 4) == 0)
				mb_printable(tag, sizeof(tag), line + 4);
			else if (strncmp(line, "commit ", 7) == 0)
				mb_printable(commit, sizeof(commit), line + 7);
		}
		free(text);
	}
	if (tag[0] != '\0')
		snprintf(out, cap, "llama.cpp %s%s%s", tag, commit[0] ? " " : "",
			 commit);
	else
		snprintf(out, cap, "llama.cpp %s", MB_LLAMA_VERSION);
}

static void emit_error(struct mb_events *ev, const char *code, const char *msg)
{
	struct mb_buf b;

	mb_buf_init(&b, 4096);
	mb_buf_addf(&b, "\"code\":\"%s\",\"message\":", code);
	mb_json_quote(&b, msg);
	if (mb_buf_error(&b) == 0)
		mb_events_emit(ev, "error", b.data);
	mb_buf_release(&b);
}

int pyconvert_run(const struct pyconvert_opts *o, struct mb_events *ev,
		  struct pyconvert_result *r, char *err, size_t errcap)
{
	const char *tree = getenv("MIBERA_LLAMA_CONVERTER");
	const char *user_py = getenv("MIBERA_LLAMA_CONVERTER_PYTHON");
	char script[2200], py[2400], part[4200], version[120], why[64];
	const char *code = "MB_EUNSUPPORTED";
	struct mb_gguf *g = NULL;
	struct rusage ru;
	struct lines l;
	double t0;
	int status = 0, ret = 3, rc;

	memset(r, 0, sizeof(*r));
	memset(&l, 0, sizeof(l));
	l.ev = ev;
	l.log_fd = -1;
	if (tree == NULL || *tree == '\0')
		tree = MB_LLAMA_PREFIX "/convert";
	snprintf(script, sizeof(script), "%s/convert_hf_to_gguf.py", tree);
	if (!is_file(script)) {
		mb_seterr(err, errcap, "llama.cpp's converter is not on this "
			  "worker: no '%s' (deploy/deps.sh --worker unpacks it "
			  "from the llama.cpp source the coordinator uploads: "
			  "install this version of the agent again, or set "
			  "MIBERA_LLAMA_CONVERTER to a llama.cpp source tree)",
			  script);
		code = "MB_ENOENT";
		goto fail;
	}
	tree_version(tree, version, sizeof(version));
	snprintf(r->converter, sizeof(r->converter),
		 "llama.cpp convert_hf_to_gguf.py (%.120s)", version);
	if (user_py != NULL && *user_py != '\0') {
		const char *const check[] = { user_py, "-c", PY_CHECK, NULL };

		if (install_cmd(check, &l) != 0) {
			mb_seterr(err, errcap, "the Python in "
				  "MIBERA_LLAMA_CONVERTER_PYTHON ('%s') cannot run "
				  "llama.cpp's converter: %s", user_py, l.last);
			code = "MB_EUNSUPPORTED";
			goto fail;
		}
		snprintf(py, sizeof(py), "%s", user_py);
	} else if ((ret = ensure_venv(tree, ev, py, sizeof(py), err,
				      errcap)) != 0) {
		code = "MB_EUNSUPPORTED";
		goto fail;
	}
	ret = 3;
	snprintf(part, sizeof(part), "%s.part", o->out_path);
	unlink(part);
	event_log(ev, "info", r->converter);
	{
		const char *const argv[] = { py, script, o->model_dir, "--outfile",
					     part, "--outtype", o->outtype, NULL };

		memset(&l, 0, sizeof(l));
		l.ev = ev;
		l.log_fd = -1;
		l.converting = 1;
		l.last_note = mb_now_s();
		t0 = mb_now_s();
		memset(&ru, 0, sizeof(ru));
		rc = run_lines(argv, &l, &status, &ru);
		r->seconds = mb_now_s() - t0;
	}
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot start llama.cpp's converter: %s",
			  mb_strerror(rc));
		code = mb_errname(rc);
		ret = 1;
		goto fail;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *what = l.error[0] ? l.error : l.last;

		mb_seterr(err, errcap, "llama.cpp's converter failed (%s): %s",
			  status_text(status, why, sizeof(why)),
			  what[0] ? what : "no message");
		code = WIFSIGNALED(status) ? "MB_ENOMEM"
		       : strstr(what, "not supported") ? "MB_EUNSUPPORTED"
						       : "MB_EFORMAT";
		unlink(part);
		goto fail;
	}
	rc = mb_gguf_read(part, &g, why, sizeof(why));
	if (rc != 0) {
		mb_seterr(err, errcap, "llama.cpp's converter wrote no readable "
			  "GGUF at '%s': %s", part, why);
		code = mb_errname(rc);
		goto fail;
	}
	if (rename(part, o->out_path) != 0) {
		mb_seterr(err, errcap, "cannot rename '%s': %s", part,
			  strerror(errno));
		code = "MB_EIO";
		ret = 1;
		goto fail;
	}
	{
		const struct mb_gguf_kv *a = mb_gguf_kv(g, "general.architecture");

		mb_printable(r->arch, sizeof(r->arch),
			     a != NULL && a->type == MB_GGUF_STRING ? a->v.s : "?");
	}
	r->ntensors = g->ntensors;
	r->file_size = g->file_size;
	r->peak_rss = (uint64_t)ru.ru_maxrss * 1024;
	mb_gguf_free(g);
	return 0;
fail:
	mb_gguf_free(g);
	emit_error(ev, code, err);
	return ret;
}
