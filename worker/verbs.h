/*
 * The verbs of mibera-worker. Each is `int verb_x(int argc, char **argv)`
 * in worker/x.c, argv[0] being the verb, returning the exit code (0 ok,
 * 1 error, 2 usage, 3 the input cannot be converted). Add one by writing
 * the file, declaring it here and adding a row to the table in
 * worker/main.c.
 */
#ifndef MB_WORKER_VERBS_H
#define MB_WORKER_VERBS_H

int verb_convert(int argc, char **argv);
int verb_fetch(int argc, char **argv);
int verb_quantize(int argc, char **argv);
int verb_imatrix(int argc, char **argv);
int verb_fidelity(int argc, char **argv);
int verb_manifest(int argc, char **argv);
int verb_push(int argc, char **argv);
int verb_hello(int argc, char **argv);
int verb_start(int argc, char **argv);
int verb_follow(int argc, char **argv);
int verb_status(int argc, char **argv);
int verb_cancel(int argc, char **argv);
int verb_cleanup(int argc, char **argv);

#endif
