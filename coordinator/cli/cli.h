/*
 * The mibera-job subcommands. Each is `int cmd_x(int argc, char **argv)`
 * in coordinator/cli/x.c, with argv[0] the subcommand's name, returning the
 * process exit code (0 ok, 1 error, 2 usage). To add one: write the file,
 * declare it here, and add a row to the table in coordinator/job_main.c.
 */
#ifndef MB_CLI_H
#define MB_CLI_H

int cmd_artifacts(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_dashboard(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_smoke(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_worker(int argc, char **argv);

#endif
