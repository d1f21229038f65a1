/*
 * board_rig: the rig the simulated board's unit tests share (test_board.c,
 * test_board_dfu.c): a board directory, the board opened on it, and an
 * in-process host (fx_local) that calls its fx_usbdev ops directly, with a
 * test manufacturer CA made once per test binary in ./mfr.  Included by the
 * test files after cmocka.h; each file keeps its own knob and rig-making
 * helpers, which differ on purpose.
 */
#ifndef STATION_TEST_BOARD_RIG_H
#define STATION_TEST_BOARD_RIG_H

#include <stdio.h>
#include <sys/stat.h>

#include "fx_board.h"
#include "fx_local.h"
#include "fx_mfg.h"
#include "proto.h"

static struct fx_mfg_ca ca;
static int board_no;

struct rig {
	char dir[64];
	char uid[25];
	struct fx_board *b;
	struct fx_local h;
	uint8_t buf[PROTO_MAX_FRAME];
	struct proto_msg rep;
};

static inline int group_setup(void **state)
{
	struct errbuf e;

	(void)state;
	mkdir("mfr", 0700);
	if (fx_mfg_ca_open("mfr", "Test Manufacturer CA", &ca, &e) != ST_OK) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	return 0;
}

static inline int group_teardown(void **state)
{
	(void)state;
	fx_mfg_ca_free(&ca);
	return 0;
}

static inline void rig_open(struct rig *r)
{
	struct errbuf e;

	if (fx_board_open(r->dir, &r->b, &e) != ST_OK)
		fail_msg("open %s: %s", r->dir, e.msg);
	fx_local_init(&r->h, r->b, &fx_board_ops);
}

static inline void rig_close(struct rig *r)
{
	fx_local_free(&r->h);
	fx_board_close(r->b);
	r->b = NULL;
}

#endif
