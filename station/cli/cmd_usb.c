/*
 * `station usb`: the engineer's view of the USB bays, without the pipeline.
 *
 *   station usb list  [--device VID:PID]
 *   station usb info  --bay BAY [--device VID:PID]
 *   station usb flash --bay BAY --image FILE [--sha256 HEX] [--device VID:PID]
 *   station usb watch [--seconds N] [--poll] [--device VID:PID]
 *
 * Used to check a bench (which bays see a board, what it says about itself), to
 * flash one board by hand, and by the end-to-end tests against emulated boards.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "usb/board_client.h"
#include "usb/dfu.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/fileio.h"
#include "core/hex.h"
#include "core/str.h"
#include "proto/proto.h"
#include "usb/usb.h"

#define MAX_BAYS 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station usb list  [--device VID:PID]\n"
		"       station usb info  --bay BAY [--device VID:PID]\n"
		"       station usb flash --bay BAY --image FILE [--sha256 HEX] [--device VID:PID]\n"
		"       station usb watch [--seconds N] [--poll] [--device VID:PID]\n"
		"\n"
		"Boards are found by VID:PID (default 1209:0001); a bay is a USB port path\n"
		"such as 1-2 or 1-3.4.  list prints one line per bay: BAY SERIAL.  flash\n"
		"downloads the image by DFU and reads it back; with --sha256 the image must\n"
		"have that hash.  watch prints '+ BAY' and '- BAY' as boards come and go.\n");
}

static int parse_id(const char *s, uint16_t *vid, uint16_t *pid)
{
	unsigned v, p;
	char tail;

	if (sscanf(s, "%4x:%4x%c", &v, &p, &tail) != 2)
		return -1;
	*vid = (uint16_t)v;
	*pid = (uint16_t)p;
	return 0;
}

static int parse_hash(const char *s, uint8_t out[32])
{
	return hex_decode(s, strlen(s), out, 32);
}

/* Reads a whole image file (at most PROTO_FW_MAX_IMAGE bytes, not empty). */
static int read_image(const char *path, uint8_t **out, size_t *len, struct errbuf *e)
{
	int rc;

	if ((rc = fileio_read(path, PROTO_FW_MAX_IMAGE, NULL, out, len, e)))
		return rc;
	if (*len == 0) {
		free(*out);
		*out = NULL;
		return errbuf_set(e, ST_EINVAL, "%s: empty file", path);
	}
	return ST_OK;
}

static int do_list(struct usb_ctx *c)
{
	struct usb_found f[MAX_BAYS];
	struct usb_board *b;
	struct errbuf e;
	size_t n, i;

	if (usb_scan(c, f, MAX_BAYS, &n, &e))
		return cli_fail("%s", e.msg);
	if (n == 0)
		printf("no boards in the bays (none with this VID:PID on the USB bus)\n");
	for (i = 0; i < n && i < MAX_BAYS; i++) {
		if (usb_open(c, f[i].bay, &b, &e) == ST_OK) {
			printf("%s %s\n", f[i].bay, usb_serial(b)[0] ? usb_serial(b) : "-");
			usb_close(b);
		} else {
			printf("%s - (%s)\n", f[i].bay, e.msg);
		}
	}
	return CLI_EXIT_OK;
}

/* Everything but the state is the board's text: escaped (core/str.h). */
static void print_info(const char *bay, const char *serial, const struct proto_info *info)
{
	char uid[4 * sizeof(info->uid)], model[4 * sizeof(info->model)];
	char hw[4 * sizeof(info->hw_rev)], fw[4 * sizeof(info->fw_version)];

	(void)str_sanitize(uid, sizeof(uid), info->uid, strlen(info->uid));
	(void)str_sanitize(model, sizeof(model), info->model, strlen(info->model));
	(void)str_sanitize(hw, sizeof(hw), info->hw_rev, strlen(info->hw_rev));
	(void)str_sanitize(fw, sizeof(fw), info->fw_version, strlen(info->fw_version));
	printf("bay %s\nserial %s\nunique_id %s\nmodel %s\nhw_revision %s\n"
	       "fw_version %s\nstate %s\n", bay, serial, uid, model, hw, fw[0] ? fw : "-",
	       proto_state_name(info->state));
}

static int do_info(struct usb_ctx *c, const char *bay)
{
	struct usb_board *ub;
	struct board *b;
	struct proto_info info;
	struct errbuf e;
	int rc;

	if (usb_open(c, bay, &ub, &e))
		return cli_fail("%s", e.msg);
	rc = board_new(&b, ub, NULL, &e);
	if (rc == ST_OK) {
		rc = board_info(b, &info, &e);
		if (rc == ST_OK)
			print_info(bay, usb_serial(ub), &info);
		board_free(b);
	}
	usb_close(ub);
	return rc ? cli_fail("%s", e.msg) : CLI_EXIT_OK;
}

static int do_flash(struct usb_ctx *c, const char *bay, const char *image, const char *hash)
{
	uint8_t md[32], *img = NULL;
	unsigned mdlen = 0;
	struct usb_board *ub;
	struct errbuf e;
	char hex[HEX_LEN(32)];
	size_t len = 0;
	int64_t t0;
	int rc;

	if (read_image(image, &img, &len, &e))
		return cli_fail("%s", e.msg);
	EVP_Digest(img, len, md, &mdlen, EVP_sha256(), NULL);
	if (hash && parse_hash(hash, md)) {
		free(img);
		return cli_usage_error("usb", "--sha256 wants 64 hex digits");
	}
	if (usb_open(c, bay, &ub, &e)) {
		free(img);
		return cli_fail("%s", e.msg);
	}
	t0 = clock_monotonic_ms();
	rc = dfu_flash(ub, img, len, md, NULL, &e);
	usb_close(ub);
	free(img);
	if (rc)
		return cli_fail("%s", e.msg);
	hex_encode(md, sizeof(md), hex);
	printf("bay %s: flashed and verified %zu bytes, SHA-256 %s, %.3f s\n", bay, len, hex,
	       (double)(clock_monotonic_ms() - t0) / 1e3);
	return CLI_EXIT_OK;
}

static void on_watch(void *arg, int arrived, const char *bay)
{
	(void)arg;
	printf("%c %s\n", arrived ? '+' : '-', bay);
	fflush(stdout);
}

static int do_watch(struct usb_ctx *c, double seconds, int poll)
{
	struct errbuf e;

	if (usb_watch_start(c, !poll, on_watch, NULL, &e))
		return cli_fail("%s", e.msg);
	fprintf(stderr, "station: watching with %s\n",
		usb_watch_is_hotplug(c) ? "libusb hotplug" : "polling every 250 ms");
	clock_sleep_ms((int64_t)(seconds * 1e3));
	usb_watch_stop(c);
	return CLI_EXIT_OK;
}

int cmd_usb(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device",  required_argument, NULL, 'd' },
		{ "bay",     required_argument, NULL, 'b' },
		{ "image",   required_argument, NULL, 'i' },
		{ "sha256",  required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "poll",    no_argument,       NULL, 'p' },
		{ "help",    no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint16_t vid = PROTO_DEFAULT_VID, pid = PROTO_DEFAULT_PID;
	const char *bay = NULL, *image = NULL, *hash = NULL, *sub;
	double seconds = 5;
	int c, poll = 0, rc;
	struct usb_ctx *uc;
	struct errbuf e;
	char *end;

	(void)ctx;
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc < 2)
		return cli_usage_error("usb", "missing action (list, info, flash, watch)");
	sub = argv[1];
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (parse_id(optarg, &vid, &pid))
				return cli_usage_error("usb", "--device wants VID:PID in hex, e.g. 1209:0001");
			break;
		case 'b':
			bay = optarg;
			break;
		case 'i':
			image = optarg;
			break;
		case 's':
			hash = optarg;
			break;
		case 't':
			seconds = strtod(optarg, &end);
			if (*end || seconds < 0 || seconds > 86400)
				return cli_usage_error("usb", "--seconds wants a number of seconds");
			break;
		case 'p':
			poll = 1;
			break;
		default:
			return cli_usage_error("usb", "unknown option");
		}
	}
	if (optind + 1 < argc)
		return cli_usage_error("usb", "unexpected argument '%s'", argv[optind + 1]);
	if (strcmp(sub, "list") && strcmp(sub, "info") && strcmp(sub, "flash") && strcmp(sub, "watch"))
		return cli_usage_error("usb", "unknown action '%s'", sub);
	if ((!strcmp(sub, "info") || !strcmp(sub, "flash")) && !bay)
		return cli_usage_error("usb", "%s needs --bay", sub);
	if (!strcmp(sub, "flash") && !image)
		return cli_usage_error("usb", "flash needs --image");
	if (usb_ctx_new(&uc, vid, pid, &e))
		return cli_fail("%s", e.msg);
	if (!strcmp(sub, "list"))
		rc = do_list(uc);
	else if (!strcmp(sub, "info"))
		rc = do_info(uc, bay);
	else if (!strcmp(sub, "flash"))
		rc = do_flash(uc, bay, image, hash);
	else
		rc = do_watch(uc, seconds, poll);
	usb_ctx_free(uc);
	return rc;
}
