/*
 * flowscope: one binary, subcommands.  This file only dispatches; each
 * subcommand lives in its own file with its own options (see docs/cli.md).
 */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *what;
} commands[] = {
    {"record", record_main, "record traffic into an archive"},
    {"monitor", monitor_main, "run analysis modules on live traffic, nothing archived"},
    {"query", query_main, "matching packets from an archive as a pcap"},
    {"info", info_main, "what an archive holds"},
    {"flows", flows_main, "the flows an archive holds (and what triggered them)"},
    {"gen", gen_main, "write synthetic traffic to a pcap file"},
    {"index", index_main, "check or rebuild an archive's index"},
    {"serve", serve_main, "serve an archive over HTTPS (docs/api.md)"},
    {"trigger", trigger_main,
     "archive a flow in a running recorder, from before (record --listen)"},
    {"extcap", extcap_main, "Wireshark's extcap interface to a server's archive"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: flowscope COMMAND [OPTIONS]   (flowscope COMMAND --help for options)\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
	fprintf(f, "flowscope --version prints the version and build\n");
	fprintf(f, "man flowscope-COMMAND (docs/cli.md) documents each command\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		version_print(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].main(argc - 1, argv + 1);
	fprintf(stderr, "flowscope: unknown command '%s' (flowscope --help lists them)\n", argv[1]);
	return EXIT_USAGE;
}
