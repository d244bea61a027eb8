/*
 * The drop from root to the user who parses packets (privdrop.h).
 *
 * The order is OpenSSH's (permanently_set_uid) and the one STYLE.md asks for:
 * bounding set emptied while root may still do it, supplementary groups,
 * gid, uid (real, effective and saved: no way back), capability sets
 * cleared, no new privileges, then the proof that root cannot be regained.
 * No capability is kept, so PR_SET_KEEPCAPS is never set and the kernel
 * already clears every thread's sets at setresuid(); libcap's cap_set_proc()
 * makes sure of it for this thread (and clears what a non-root start held,
 * e.g. ambient capabilities given by a service manager).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/privdrop.h"

/* The passwd entry of a name or a uid, or NULL. */
static struct passwd *user_lookup(const char *user)
{
	struct passwd *pw = getpwnam(user);
	uint64_t v;
	if (!pw && cli_parse_uint(user, 0, UINT32_MAX - 1, &v) == 0)
		pw = getpwuid((uid_t)v);
	return pw;
}

static void plan_set(struct privdrop *p, const struct passwd *pw, const char *why)
{
	snprintf(p->user, sizeof(p->user), "%s", pw->pw_name);
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	p->why = why;
}

/* Started as root without --user: the `flowscope` user when it exists, else root kept. */
static int plan_default(struct privdrop *p)
{
	const struct passwd *pw = getpwnam(PRIVDROP_DEFAULT_USER);
	if (pw && pw->pw_uid != 0) {
		plan_set(p, pw,
		         "started as root; the " PRIVDROP_DEFAULT_USER
		         " system user exists (--user root keeps root)");
		p->change = 1;
		return 0;
	}
	snprintf(p->user, sizeof(p->user), "root");
	p->uid = 0;
	p->gid = 0;
	p->keep = 1;
	p->why = "started as root; no " PRIVDROP_DEFAULT_USER
	         " system user to drop to (--user NAME drops to NAME)";
	return 0;
}

int privdrop_plan(const char *cmd, const char *user, struct privdrop *p)
{
	*p = (struct privdrop){0};
	uid_t self = geteuid();
	if (self == 0 && !user)
		return plan_default(p);
	const struct passwd *pw = user ? user_lookup(user) : getpwuid(self);
	if (!pw) {
		if (user)
			cli_error(cmd, "--user '%s': no such user", user);
		else
			cli_error(cmd, "uid %u has no passwd entry: give --user", (unsigned)self);
		return EXIT_USAGE;
	}
	if (self != 0 && pw->pw_uid != self) {
		cli_error(cmd,
		          "--user %s: only root can become another user (this runs as uid %u): "
		          "start it as root, or leave --user out",
		          user, (unsigned)self);
		return EXIT_USAGE;
	}
	if (self == 0 && pw->pw_uid == 0) {
		plan_set(p, pw, "--user root: root kept");
		p->keep = 1;
	} else if (self == 0) {
		plan_set(p, pw, "--user");
		p->change = 1;
	} else {
		plan_set(p, pw, "not started as root; capabilities dropped after the open");
	}
	return 0;
}

void privdrop_announce(FILE *f, const char *cmd, const struct privdrop *p)
{
	cli_log_to(f, CLI_INFO, cmd, "packets are parsed by user %s (uid %u, gid %u): %s", p->user,
	           (unsigned)p->uid, (unsigned)p->gid, p->why);
}

int privdrop_can_access(const struct privdrop *p, const char *path, int mode)
{
	if (!p->change)
		return 0;
	int r = 0;
	if (initgroups(p->user, p->gid) != 0 || setegid(p->gid) != 0 || seteuid(p->uid) != 0)
		r = errno;
	else if (eaccess(path, mode) != 0)
		r = errno;
	if (seteuid(0) != 0 || setegid(0) != 0) /* back as root; cannot fail for saved uid 0 */
		r = errno ? errno : EPERM;
	return r;
}

/* Root's last act: no capability can come back through exec (best effort: a service
 * manager may have taken CAP_SETPCAP, and then it has limited the set already). */
static void bound_clear(void)
{
	for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++)
		if (CAP_IS_SUPPORTED(c))
			(void)cap_drop_bound(c);
}

/* Supplementary groups, gid, uid: every thread (glibc), real, effective and saved. */
static int ids_set(const char *cmd, const struct privdrop *p)
{
	if (initgroups(p->user, p->gid) != 0) {
		cli_error(cmd, "--user %s: initgroups: %s", p->user, strerror(errno));
		return EXIT_FAIL;
	}
	if (setresgid(p->gid, p->gid, p->gid) != 0 || setresuid(p->uid, p->uid, p->uid) != 0) {
		cli_error(cmd, "--user %s: cannot become uid %u gid %u: %s", p->user,
		          (unsigned)p->uid, (unsigned)p->gid, strerror(errno));
		return EXIT_FAIL;
	}
	return 0;
}

/* This thread's effective, permitted, inheritable and ambient sets emptied. */
static int caps_clear(const char *cmd)
{
	cap_t none = cap_init(); /* all three sets clear */
	int r = none ? cap_set_proc(none) : -1;
	int e = errno;
	cap_free(none);
	if (r == 0 && CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0)
		r = -1, e = errno;
	if (r != 0) {
		cli_error(cmd, "cannot clear the capability sets: %s", strerror(e));
		return EXIT_FAIL;
	}
	return 0;
}

/* 1 if this thread holds any capability in any set. */
static int caps_held(void)
{
	cap_t now = cap_get_proc(), none = cap_init();
	int held = !now || !none || cap_compare(now, none) != 0;
	cap_free(now);
	cap_free(none);
	return held;
}

/* The proof: the ids stay as planned, root cannot come back, no capability is left. */
static int drop_proven(const char *cmd, const struct privdrop *p)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	const char *bad = NULL;
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0)
		bad = "getresuid";
	else if (p->change && (ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid ||
	                       eg != p->gid || sg != p->gid))
		bad = "the ids did not change";
	else if (p->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		bad = "setuid(0) succeeded";
	else if (p->gid != 0 && (setgid(0) == 0 || setegid(0) == 0))
		bad = "setgid(0) succeeded";
	else if (caps_held())
		bad = "a capability is left";
	else if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		bad = "no_new_privs is not set";
	if (!bad)
		return 0;
	cli_error(cmd, "--user %s: the privilege drop did not hold (%s): stopping", p->user, bad);
	return EXIT_FAIL;
}

int privdrop_apply(const char *cmd, const struct privdrop *p)
{
	if (p->keep)
		return 0;
	int r;
	if (p->change) {
		bound_clear();
		if ((r = ids_set(cmd, p)) != 0)
			return r;
	}
	if ((r = caps_clear(cmd)) != 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		cli_error(cmd, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return drop_proven(cmd, p);
}
