/*
 * Least privilege for `flowscope record` and `flowscope monitor` (privdrop.c):
 * whom packets are parsed as (--user NAME), and the drop to that user once
 * everything that needs root is open.
 *
 * Purpose
 *   A capture box runs the recorder for months on untrusted traffic; the
 *   parser, the modules and the archive writer should not run as root.  The
 *   capture sockets (AF_PACKET, libpcap), the DPDK port, the modules and the
 *   archive (created or recovered, its LOCK taken) are opened as root; then
 *   the process becomes NAME with no capability at all and
 *   PR_SET_NO_NEW_PRIVS, before the first packet is parsed (docs/cli.md,
 *   "Privileges").  Who parses packets, without --user: started as root,
 *   the `flowscope` system user when it exists (the package creates it, as
 *   Debian's tcpdump drops to its `tcpdump` user), else root; not started as
 *   root, the user who started it (--user may only name that user).
 *
 * Lifecycle
 *   privdrop_plan() (before anything is opened: a bad --user is a usage
 *   error) -> privdrop_announce() (the command's first line) -> open the
 *   sources, modules, archive -> privdrop_apply() -> start the threads that
 *   read and parse packets.
 *
 * Threading
 *   Main thread.  privdrop_apply() changes the ids of every thread (glibc
 *   applies setresuid/setresgid to all threads; the kernel then clears each
 *   thread's capabilities), but PR_SET_NO_NEW_PRIVS and the cleared bounding
 *   set only in the calling thread and the threads it creates afterwards:
 *   call it before the packet threads start.  A DPDK EAL's own threads
 *   (started by rte_eal_init) change ids with the rest but keep their bounding set.
 *
 * Errors
 *   Each function that can fail prints one line "flowscope <cmd>: ..." on
 *   stderr and returns an exit status (docs/cli.md): EXIT_USAGE for a bad
 *   --user, EXIT_FAIL for a drop that failed or could be undone (the process
 *   must then not go on); 0 on success.
 */
#ifndef FLOWSCOPE_TOOLS_PRIVDROP_H
#define FLOWSCOPE_TOOLS_PRIVDROP_H

#include <stdio.h>
#include <sys/types.h>

/* The `flowscope` system user the package creates: root drops to it without --user. */
#define PRIVDROP_DEFAULT_USER "flowscope"

struct privdrop {
	char user[64]; /* the user who parses packets */
	uid_t uid;
	gid_t gid;       /* the user's primary group */
	int change;      /* 1: started as root, becomes uid/gid; 0: keeps its ids */
	int keep;        /* 1: root kept (--user root, or no `flowscope` user): nothing dropped */
	const char *why; /* how the user was chosen, for privdrop_announce() */
};

/*
 * Decides who parses packets from `user` (--user; NULL if not given: the
 * default above) and who runs the command.  `user` is a name or a uid.
 * Returns 0 and *p, or EXIT_USAGE: no such user, or not started as root and
 * `user` is somebody else.
 */
int privdrop_plan(const char *cmd, const char *user, struct privdrop *p);

/*
 * One line on f: "flowscope <cmd>: packets are parsed by user NAME (uid U,
 * gid G): WHY".  The command's first line.
 */
void privdrop_announce(FILE *f, const char *cmd, const struct privdrop *p);

/*
 * For p->change: whether p's user can reach `path` (eaccess() with `mode`, e.g. X_OK
 * for a directory to pass through), asked as that user: the effective ids become p's
 * for the one call and then root's again (before privdrop_apply(): it needs root); the
 * supplementary groups stay p's (root needs none).  Returns 0 (it can, or nothing
 * changes), or the errno that refuses it.
 */
int privdrop_can_access(const struct privdrop *p, const char *path, int mode);

/*
 * The drop p planned, once every socket, port, module and archive is open.
 * p->keep: nothing.  Else: the capability bounding set emptied (when
 * permitted), then with p->change initgroups(), setresgid(), setresuid();
 * then every capability set of the thread cleared (libcap: effective,
 * permitted, inheritable, ambient), PR_SET_NO_NEW_PRIVS, and the proof:
 * setuid(0) and setgid(0) must fail and the capability sets be empty.  No
 * capability is kept: nothing after the open needs one (docs/cli.md).
 * Returns 0, or EXIT_FAIL with the line printed.
 */
int privdrop_apply(const char *cmd, const struct privdrop *p);

#endif
