/*
 * The HTTP API's options, parsed once for `serve` and `record --listen`
 * (tools/listen.h): what a server accepts is the same whichever command
 * serves it.
 */
#include "tools/listen.h"

#include <string.h>

#include "tools/cli.h"

const char listen_usage[] =
    "  --listen ADDR:PORT  numeric address ([ADDR6]:PORT for IPv6); port 0 picks a\n"
    "              free one (printed); plain HTTP only on a loopback address\n"
    "  --tls-cert FILE, --tls-key FILE  PEM certificate (chain) and key: HTTPS, TLS 1.2+\n"
    "  --client-ca FILE  PEM CA: clients need a certificate it signed (mutual TLS)\n"
    "  --max-queries N  queries at once, more are answered 429 (default 4)\n"
    "  --max-connections N  connections at once (default 64)\n"
    "  --per-ip-connections N  connections at once from one address (default 16)\n"
    "  --idle-timeout D  close a connection idle this long (default 30s)\n"
    "  --query-timeout D  cut a query off after this long (default 10m)\n"
    "  --max-answer-bytes SIZE  end every answer before SIZE bytes, as limit_bytes\n"
    "              (whole packets, a valid file; default: no bound)\n";

/* A count option in [1, 65535]; 0 or EXIT_USAGE. */
static int parse_count(const char *cmd, const char *name, const char *arg, unsigned *out)
{
	uint64_t v;
	if (cli_parse_uint(arg, 1, 65535, &v) != 0) {
		cli_error(cmd, "%s '%s': expected a whole number from 1 to 65535", name, arg);
		return EXIT_USAGE;
	}
	*out = (unsigned)v;
	return 0;
}

/* A duration option in whole seconds, at least 1; 0 or EXIT_USAGE. */
static int parse_seconds(const char *cmd, const char *name, const char *arg, unsigned *out)
{
	uint64_t ns;
	if (cli_parse_duration(arg, &ns) != 0 || ns < 1000000000ull || ns / 1000000000ull > 86400) {
		cli_error(cmd, "%s '%s': expected a duration from 1s to 1d, such as 30s or 10m",
		          name, arg);
		return EXIT_USAGE;
	}
	*out = (unsigned)(ns / 1000000000ull);
	return 0;
}

static int parse_bytes(const char *cmd, const char *arg, uint64_t *out)
{
	if (cli_parse_size(arg, out) == 0 && *out >= 1024)
		return 0;
	cli_error(cmd, "--max-answer-bytes '%s': expected a size of at least 1K, such as 1G", arg);
	return EXIT_USAGE;
}

int listen_parse_opt(const char *cmd, int c, const char *arg, struct query_api_config *cfg)
{
	switch (c) {
	case 'l':
		return cfg->listen = arg, 0;
	case 'k':
		return cfg->tls_cert = arg, 0;
	case 'K':
		return cfg->tls_key = arg, 0;
	case 'V':
		return cfg->client_ca = arg, 0;
	case 'm':
		return parse_count(cmd, "--max-queries", arg, &cfg->max_queries);
	case 'N':
		return parse_count(cmd, "--max-connections", arg, &cfg->max_connections);
	case 'P':
		return parse_count(cmd, "--per-ip-connections", arg, &cfg->per_ip_connections);
	case 'I':
		return parse_seconds(cmd, "--idle-timeout", arg, &cfg->idle_timeout_s);
	case 'W':
		return parse_seconds(cmd, "--query-timeout", arg, &cfg->query_timeout_s);
	case 'B':
		return parse_bytes(cmd, arg, &cfg->max_answer_bytes);
	}
	return -1;
}

int listen_check(const char *cmd, const struct query_api_config *cfg)
{
	if (!cfg->listen &&
	    (cfg->tls_cert || cfg->tls_key || cfg->client_ca || cfg->max_queries ||
	     cfg->max_connections || cfg->per_ip_connections || cfg->idle_timeout_s ||
	     cfg->query_timeout_s || cfg->max_answer_bytes)) {
		cli_error(cmd, "the TLS and limit options are for --listen ADDR:PORT");
		return EXIT_USAGE;
	}
	if (!cfg->tls_cert != !cfg->tls_key || (cfg->client_ca && !cfg->tls_cert)) {
		cli_error(cmd, "%s",
		          cfg->client_ca && !cfg->tls_cert
		              ? "--client-ca needs --tls-cert and --tls-key"
		              : "--tls-cert and --tls-key go together");
		return EXIT_USAGE;
	}
	return 0;
}
