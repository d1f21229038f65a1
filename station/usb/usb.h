/*
 * usb: the station's libusb transport to boards.
 *
 * A board is found by the profile's VID:PID; its bay is its USB port path,
 * "bus-port[.port...]" (e.g. "1-2.3"), so a board that re-enumerates stays in
 * its bay.  usb_open() opens the board in a bay, reads its iSerialNumber and
 * claims both interfaces: the vendor interface (class 0xFF, one bulk OUT and one
 * bulk IN endpoint, the framed board protocol) and the DFU 1.1 interface (class
 * 0xFE subclass 0x01, whose functional descriptor gives wTransferSize).
 *
 * Every transfer takes a timeout.  A board that goes away fails with ST_ENODEV
 * and a message naming the bay; the caller then closes its handle.  A stalled
 * endpoint fails with ST_EPROTO ("stall"), and usb_clear_halt() recovers it.
 *
 * Watching: usb_watch_start() reports boards arriving in and leaving bays from a
 * thread of its own, using libusb hotplug when the platform has it, otherwise
 * polling the device list every 250 ms.  The callback runs on that thread and
 * must be quick.
 *
 * Threading: one struct usb_ctx (scanning, watching) is shared by all bays; each
 * bay gets a libusb context of its own (kept until usb_ctx_free), and a struct
 * usb_board is used by one thread at a time, so transfers of different bays run
 * concurrently and the event handling of one bay never waits on or services
 * another's.  A bay can be open once at a time (ST_EBUSY otherwise).
 */
#ifndef STATION_USB_H
#define STATION_USB_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

#define USB_BAY_LEN    32
#define USB_SERIAL_LEN 65
#define USB_POLL_MS    250
#define USB_MAX_BAYS   64     /* bays one usb_ctx can open */

struct usb_ctx;
struct usb_board;

struct usb_found {
	char bay[USB_BAY_LEN];
	uint8_t bus, addr;
};

/* DFU interface facts, from the functional descriptor. */
struct usb_dfu_desc {
	uint8_t  interface;
	uint8_t  attributes;        /* bit0 download, bit1 upload, bit2 manifestation tolerant */
	uint16_t detach_timeout_ms;
	uint16_t transfer_size;
	uint16_t dfu_version;       /* BCD, 0x0110 */
};

/* Opens a libusb context matching boards with vid:pid. */
ST_MUST_CHECK int usb_ctx_new(struct usb_ctx **out, uint16_t vid, uint16_t pid, struct errbuf *e);
void usb_ctx_free(struct usb_ctx *ctx);

/* Lists the matching boards present now (other VID:PIDs are ignored), sorted
 * by bay.  At most max are stored; *n is the number stored. */
ST_MUST_CHECK int usb_scan(struct usb_ctx *ctx, struct usb_found *out, size_t max, size_t *n,
			   struct errbuf *e);

/* Called on the watcher thread: arrived = 1 when a matching board appeared in
 * bay, 0 when it left. */
typedef void (*usb_watch_fn)(void *arg, int arrived, const char *bay);

/* Starts watching; boards already present are reported as arrivals first.
 * use_hotplug = 0 forces polling (tests of the fallback). */
ST_MUST_CHECK int usb_watch_start(struct usb_ctx *ctx, int use_hotplug, usb_watch_fn fn, void *arg,
				  struct errbuf *e);
void usb_watch_stop(struct usb_ctx *ctx);
/* 1 when the running watcher uses libusb hotplug, 0 when it polls. */
int usb_watch_is_hotplug(const struct usb_ctx *ctx);

/* Opens the matching board in bay, reads its serial, claims both interfaces.
 * ST_ENOTFOUND when no matching board is there. */
ST_MUST_CHECK int usb_open(struct usb_ctx *ctx, const char *bay, struct usb_board **out,
			   struct errbuf *e);
/* Releases the interfaces (if the board is still there) and closes. */
void usb_close(struct usb_board *b);

const char *usb_bay(const struct usb_board *b);
const char *usb_serial(const struct usb_board *b);
const struct usb_dfu_desc *usb_dfu(const struct usb_board *b);

/* One bulk OUT transfer of len bytes (a frame) on the vendor interface. */
ST_MUST_CHECK int usb_bulk_write(struct usb_board *b, const void *buf, size_t len,
				 unsigned timeout_ms,
				 struct errbuf *e);
/* One bulk IN transfer of at most cap bytes; *got is what arrived. */
ST_MUST_CHECK int usb_bulk_read(struct usb_board *b, void *buf, size_t cap, size_t *got,
				unsigned timeout_ms, struct errbuf *e);
/* A control transfer; direction from bit 7 of reqtype.  *got (may be NULL) is
 * the number of bytes transferred. */
ST_MUST_CHECK int usb_control(struct usb_board *b, uint8_t reqtype, uint8_t request, uint16_t value,
			      uint16_t index, void *data, uint16_t len, size_t *got,
			      unsigned timeout_ms,
			      struct errbuf *e);
/* Clears a halt on the vendor interface's IN (in = 1) or OUT endpoint. */
ST_MUST_CHECK int usb_clear_halt(struct usb_board *b, int in, struct errbuf *e);

/* Maps a libusb error code to an st_rc. */
int usb_rc(int libusb_err);

#endif
