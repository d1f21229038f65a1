/* usb: see usb.h. */
#include "usb/usb.h"
#include "core/clock.h"
#include "core/str.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libusb.h>

#define WATCH_QUEUE   64

struct watch_ev {
	int arrived;
	char bay[USB_BAY_LEN];
};

struct usb_ctx {
	libusb_context *lu;
	uint16_t vid, pid;

	/* watcher */
	pthread_t thr;
	int running, hotplug;
	libusb_hotplug_callback_handle cb;
	usb_watch_fn fn;
	void *fn_arg;
	pthread_mutex_t mu;             /* guards stop and the queue */
	pthread_cond_t cv;
	int stop;
	struct watch_ev q[WATCH_QUEUE];
	int qn;

	/* One libusb context per bay, made at the bay's first open and kept until
	 * usb_ctx_free(): event handling for one bay then never reaps, waits on or
	 * is delayed by another bay's transfers (a misbehaving board cannot stall
	 * the others through a shared event loop).  They are kept, not made per
	 * open: libusb 1.0.26 leaks a device (about 400 bytes) when a board is
	 * unplugged while a context is being initialised (its scan lists the
	 * board, but the disconnect is dropped before the context is ready), so
	 * fewer initialisations mean fewer chances. */
	pthread_mutex_t bay_mu;         /* guards bays[] */
	struct bay_ctx {
		char bay[USB_BAY_LEN];
		libusb_context *lu;
		int in_use;
	} bays[USB_MAX_BAYS];
	int nbays;
};

struct usb_board {
	struct usb_ctx *ctx;
	struct bay_ctx *slot;           /* the bay's context, held while open */
	libusb_context *lu;
	libusb_device_handle *h;
	char bay[USB_BAY_LEN];
	char serial[USB_SERIAL_LEN];
	int vendor_if;
	uint8_t ep_out, ep_in;
	uint16_t out_mps;               /* wMaxPacketSize of the OUT endpoint */
	int claimed_vendor, claimed_dfu;
	struct usb_dfu_desc dfu;
	int has_dfu;
};

int usb_rc(int err)
{
	switch (err) {
	case LIBUSB_SUCCESS:        return ST_OK;
	case LIBUSB_ERROR_TIMEOUT:  return ST_ETIMEOUT;
	case LIBUSB_ERROR_NO_DEVICE: return ST_ENODEV;
	case LIBUSB_ERROR_PIPE:     return ST_EPROTO;
	case LIBUSB_ERROR_OVERFLOW: return ST_EPROTO;
	case LIBUSB_ERROR_BUSY:     return ST_EBUSY;
	case LIBUSB_ERROR_NOT_FOUND: return ST_ENOTFOUND;
	case LIBUSB_ERROR_NO_MEM:   return ST_ENOMEM;
	case LIBUSB_ERROR_INTERRUPTED: return ST_ECANCELED;
	default:                    return ST_EIO;
	}
}

/* The bay's words for a libusb error. */
static int fail(struct usb_board *b, int err, const char *what, struct errbuf *e)
{
	enum st_reason reason = st_rc_reason(usb_rc(err));
	const char *why;

	switch (err) {
	case LIBUSB_ERROR_NO_DEVICE: why = "board unplugged"; break;
	case LIBUSB_ERROR_TIMEOUT:   why = "timed out"; reason = ST_R_BOARD_TIMEOUT; break;
	case LIBUSB_ERROR_PIPE:      why = "endpoint stalled"; break;
	default:                     why = libusb_strerror(err); break;
	}
	return errbuf_setr(e, usb_rc(err), ST_ORIGIN_USB, reason, "bay %s: %s: %s", b->bay, what,
			   why);
}

int usb_ctx_new(struct usb_ctx **out, uint16_t vid, uint16_t pid, struct errbuf *e)
{
	struct usb_ctx *c;
	int r;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(e, ST_ENOMEM, "usb: out of memory");
	r = libusb_init(&c->lu);
	if (r != 0) {
		free(c);
		return errbuf_set(e, ST_EIO, "usb: libusb_init: %s", libusb_strerror(r));
	}
	c->vid = vid;
	c->pid = pid;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_mutex_init(&c->bay_mu, NULL);
	*out = c;
	return ST_OK;
}

void usb_ctx_free(struct usb_ctx *c)
{
	int i;

	if (!c)
		return;
	usb_watch_stop(c);
	for (i = 0; i < c->nbays; i++)
		libusb_exit(c->bays[i].lu);
	libusb_exit(c->lu);
	pthread_mutex_destroy(&c->bay_mu);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

/* "bus-p1.p2..." from libusb's topology; 0 when the device has no port path
 * (a root hub). */
static int bay_of(libusb_device *dev, char *out, size_t cap)
{
	uint8_t ports[8];
	int n, i;
	size_t off;

	n = libusb_get_port_numbers(dev, ports, sizeof(ports));
	if (n <= 0)
		return 0;
	off = (size_t)snprintf(out, cap, "%u-", libusb_get_bus_number(dev));
	for (i = 0; i < n && off < cap; i++)
		off += (size_t)snprintf(out + off, cap - off, i ? ".%u" : "%u", ports[i]);
	return off < cap;
}

static int matches(struct usb_ctx *c, libusb_device *dev)
{
	struct libusb_device_descriptor dd;

	if (libusb_get_device_descriptor(dev, &dd) != 0)
		return 0;
	return dd.idVendor == c->vid && dd.idProduct == c->pid;
}

static int cmp_found(const void *a, const void *b)
{
	return strcmp(((const struct usb_found *)a)->bay, ((const struct usb_found *)b)->bay);
}

int usb_scan(struct usb_ctx *c, struct usb_found *out, size_t max, size_t *n,
	     struct errbuf *e)
{
	libusb_device **list;
	ssize_t cnt, i;
	size_t k = 0;
	char bay[USB_BAY_LEN];

	*n = 0;
	cnt = libusb_get_device_list(c->lu, &list);
	if (cnt < 0)
		return errbuf_set(e, usb_rc((int)cnt), "usb: listing devices: %s",
				  libusb_strerror((int)cnt));
	for (i = 0; i < cnt; i++) {
		if (!matches(c, list[i]) || !bay_of(list[i], bay, sizeof(bay)))
			continue;
		if (k < max) {
			snprintf(out[k].bay, sizeof(out[k].bay), "%s", bay);
			out[k].bus = libusb_get_bus_number(list[i]);
			out[k].addr = libusb_get_device_address(list[i]);
		}
		k++;
	}
	libusb_free_device_list(list, 1);
	if (k > max)
		k = max;
	qsort(out, k, sizeof(*out), cmp_found);
	*n = k;
	return ST_OK;
}

/* ---- watching ---- */

static void queue_ev(struct usb_ctx *c, int arrived, const char *bay)
{
	pthread_mutex_lock(&c->mu);
	/* a port path too long for the label cannot name a bay: not queued */
	if (c->qn < WATCH_QUEUE && !str_copy(c->q[c->qn].bay, sizeof(c->q[0].bay), bay)) {
		c->q[c->qn].arrived = arrived;
		c->qn++;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* libusb calls this from whichever thread handles events: queue only. */
static int LIBUSB_CALL hotplug_cb(libusb_context *lu, libusb_device *dev,
				  libusb_hotplug_event ev, void *arg)
{
	struct usb_ctx *c = arg;
	char bay[USB_BAY_LEN];

	if (bay_of(dev, bay, sizeof(bay)))
		queue_ev(c, ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, bay);
	return 0;
}

/* Delivers queued events to the callback, outside the lock.  Returns 1 when
 * asked to stop. */
static int drain(struct usb_ctx *c)
{
	struct watch_ev ev[WATCH_QUEUE];
	int n, i, stop;

	pthread_mutex_lock(&c->mu);
	n = c->qn;
	memcpy(ev, c->q, (size_t)n * sizeof(ev[0]));
	c->qn = 0;
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	for (i = 0; i < n && !stop; i++)
		c->fn(c->fn_arg, ev[i].arrived, ev[i].bay);
	return stop;
}

/* Waits up to ms for a stop request; 1 when stopping. */
static int wait_stop(struct usb_ctx *c, int ms)
{
	struct timespec ts;
	int stop;

	clock_deadline(CLOCK_REALTIME, ms, &ts);
	pthread_mutex_lock(&c->mu);
	while (!c->stop && c->qn == 0 &&
	       pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return stop;
}

/* With hotplug: libusb's own udev thread keeps the device list and queues
 * hotplug messages, which are delivered by whoever handles events on this
 * context.  No board is ever opened on it (each open board has its own
 * context), so waiting in libusb here cannot spin on an emulated device node
 * that always polls ready; usb_watch_stop() interrupts the wait. */
static void *watch_hotplug(void *arg)
{
	struct usb_ctx *c = arg;
	struct timeval tv = { 0, USB_POLL_MS * 1000 };

	for (;;) {
		libusb_handle_events_timeout_completed(c->lu, &tv, NULL);
		if (drain(c) || wait_stop(c, 0))
			break;
	}
	return NULL;
}

/* Without hotplug: compare the list of bays every USB_POLL_MS. */
static void *watch_poll(void *arg)
{
	struct usb_ctx *c = arg;
	struct usb_found prev[64], cur[64];
	size_t np = 0, nc, i, j;

	for (;;) {
		if (usb_scan(c, cur, 64, &nc, NULL) == ST_OK) {
			if (nc > 64)
				nc = 64;
			for (i = 0; i < np; i++) {
				for (j = 0; j < nc; j++)
					if (strcmp(prev[i].bay, cur[j].bay) == 0 &&
					    prev[i].addr == cur[j].addr)
						break;
				if (j == nc)
					queue_ev(c, 0, prev[i].bay);
			}
			for (j = 0; j < nc; j++) {
				for (i = 0; i < np; i++)
					if (strcmp(prev[i].bay, cur[j].bay) == 0 &&
					    prev[i].addr == cur[j].addr)
						break;
				if (i == np)
					queue_ev(c, 1, cur[j].bay);
			}
			memcpy(prev, cur, nc * sizeof(cur[0]));
			np = nc;
		}
		if (drain(c) || wait_stop(c, USB_POLL_MS))
			break;
	}
	return NULL;
}

int usb_watch_start(struct usb_ctx *c, int use_hotplug, usb_watch_fn fn, void *arg,
		    struct errbuf *e)
{
	int r;

	if (c->running)
		return errbuf_set(e, ST_EBUSY, "usb: already watching");
	c->fn = fn;
	c->fn_arg = arg;
	c->stop = 0;
	c->qn = 0;
	c->hotplug = use_hotplug && libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG);
	if (c->hotplug) {
		r = libusb_hotplug_register_callback(c->lu,
			LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
			LIBUSB_HOTPLUG_ENUMERATE, c->vid, c->pid, LIBUSB_HOTPLUG_MATCH_ANY,
			hotplug_cb, c, &c->cb);
		if (r != 0)
			c->hotplug = 0;         /* fall back to polling */
	}
	if (pthread_create(&c->thr, NULL, c->hotplug ? watch_hotplug : watch_poll, c) != 0) {
		if (c->hotplug)
			libusb_hotplug_deregister_callback(c->lu, c->cb);
		return errbuf_set(e, ST_EIO, "usb: cannot start the watcher thread");
	}
	c->running = 1;
	return ST_OK;
}

void usb_watch_stop(struct usb_ctx *c)
{
	if (!c->running)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->hotplug)
		libusb_interrupt_event_handler(c->lu);
	pthread_join(c->thr, NULL);
	if (c->hotplug)
		libusb_hotplug_deregister_callback(c->lu, c->cb);
	c->running = 0;
}

int usb_watch_is_hotplug(const struct usb_ctx *c)
{
	return c->running && c->hotplug;
}

/* ---- one board ---- */

/* Finds the vendor interface's bulk endpoints and the DFU functional
 * descriptor in the active configuration. */
static int parse_config(struct usb_board *b, libusb_device *dev, struct errbuf *e)
{
	struct libusb_config_descriptor *cfg;
	const struct libusb_interface_descriptor *id;
	int i, j, r, found_vendor = 0;

	r = libusb_get_active_config_descriptor(dev, &cfg);
	if (r != 0)
		return fail(b, r, "reading configuration", e);
	for (i = 0; i < cfg->bNumInterfaces; i++) {
		if (cfg->interface[i].num_altsetting < 1)
			continue;
		id = &cfg->interface[i].altsetting[0];
		if (id->bInterfaceClass == 0xff && !found_vendor) {
			b->vendor_if = id->bInterfaceNumber;
			for (j = 0; j < id->bNumEndpoints; j++) {
				const struct libusb_endpoint_descriptor *ep = &id->endpoint[j];

				if ((ep->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
					continue;
				if (ep->bEndpointAddress & 0x80) {
					b->ep_in = ep->bEndpointAddress;
				} else {
					b->ep_out = ep->bEndpointAddress;
					b->out_mps = ep->wMaxPacketSize & 0x7ff;
				}
			}
			found_vendor = b->ep_in && b->ep_out;
		} else if (id->bInterfaceClass == 0xfe && id->bInterfaceSubClass == 0x01 &&
			   !b->has_dfu) {
			const uint8_t *x = id->extra;
			int len = id->extra_length;

			/* DFU functional descriptor: 9 bytes, type 0x21. */
			while (len >= 2 && x[0] >= 2 && x[0] <= len) {
				if (x[1] == 0x21 && x[0] >= 9) {
					b->dfu.interface = id->bInterfaceNumber;
					b->dfu.attributes = x[2];
					b->dfu.detach_timeout_ms = (uint16_t)(x[3] | x[4] << 8);
					b->dfu.transfer_size = (uint16_t)(x[5] | x[6] << 8);
					b->dfu.dfu_version = (uint16_t)(x[7] | x[8] << 8);
					b->has_dfu = 1;
					break;
				}
				len -= x[0];
				x += x[0];
			}
		}
	}
	libusb_free_config_descriptor(cfg);
	if (!found_vendor)
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_USB, ST_R_OPEN_FAILED,
				   "bay %s: no vendor interface with bulk endpoints", b->bay);
	if (!b->has_dfu || b->dfu.transfer_size == 0)
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_USB, ST_R_OPEN_FAILED,
				   "bay %s: no DFU interface with a functional descriptor", b->bay);
	return ST_OK;
}

/* The bay's context, made on first use; ST_EBUSY while the bay is open. */
static int take_bay(struct usb_ctx *c, const char *bay, struct bay_ctx **out, struct errbuf *e)
{
	struct bay_ctx *s = NULL;
	int i, r, rc = ST_OK;

	pthread_mutex_lock(&c->bay_mu);
	for (i = 0; i < c->nbays && !s; i++)
		if (strcmp(c->bays[i].bay, bay) == 0)
			s = &c->bays[i];
	if (s && s->in_use) {
		rc = errbuf_setr(e, ST_EBUSY, ST_ORIGIN_USB, ST_R_OPEN_FAILED,
				 "bay %s: already open in this station", bay);
	} else if (!s && c->nbays >= USB_MAX_BAYS) {
		rc = errbuf_setr(e, ST_EBUSY, ST_ORIGIN_USB, ST_R_OPEN_FAILED,
				 "bay %s: more than %d bays", bay, USB_MAX_BAYS);
	} else if (!s) {
		s = &c->bays[c->nbays];
		r = libusb_init(&s->lu);
		if (r != 0)
			rc = errbuf_setr(e, ST_EIO, ST_ORIGIN_USB, ST_R_OPEN_FAILED,
					 "bay %s: libusb_init: %s", bay, libusb_strerror(r));
		else
			snprintf(c->bays[c->nbays++].bay, sizeof(s->bay), "%s", bay);
	}
	if (rc == ST_OK) {
		s->in_use = 1;
		*out = s;
	}
	pthread_mutex_unlock(&c->bay_mu);
	return rc;
}

static void give_bay(struct usb_ctx *c, struct bay_ctx *s)
{
	pthread_mutex_lock(&c->bay_mu);
	s->in_use = 0;
	pthread_mutex_unlock(&c->bay_mu);
}

int usb_open(struct usb_ctx *c, const char *bay, struct usb_board **out, struct errbuf *e)
{
	libusb_device **list, *dev = NULL;
	struct libusb_device_descriptor dd;
	struct usb_board *b;
	char here[USB_BAY_LEN];
	unsigned char ser[USB_SERIAL_LEN];
	ssize_t cnt, i;
	int r, rc;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return errbuf_setr(e, ST_ENOMEM, ST_ORIGIN_STATION, ST_R_NOMEM,
				   "bay %s: out of memory", bay);
	rc = take_bay(c, bay, &b->slot, e);
	if (rc) {
		free(b);
		return rc;
	}
	b->lu = b->slot->lu;
	cnt = libusb_get_device_list(b->lu, &list);
	for (i = 0; i < cnt && !dev; i++)
		if (matches(c, list[i]) && bay_of(list[i], here, sizeof(here)) &&
		    strcmp(here, bay) == 0)
			dev = libusb_ref_device(list[i]);
	if (cnt >= 0)
		libusb_free_device_list(list, 1);
	if (!dev) {
		give_bay(c, b->slot);
		free(b);
		if (cnt < 0)
			return errbuf_setr(e, usb_rc((int)cnt), ST_ORIGIN_USB,
					   st_rc_reason(usb_rc((int)cnt)),
					   "bay %s: listing devices: %s", bay,
					   libusb_strerror((int)cnt));
		return errbuf_setr(e, ST_ENOTFOUND, ST_ORIGIN_USB, ST_R_OPEN_FAILED,
				   "bay %s: no board %04x:%04x there", bay, c->vid, c->pid);
	}
	b->ctx = c;
	snprintf(b->bay, sizeof(b->bay), "%s", bay);
	rc = parse_config(b, dev, e);
	if (rc == ST_OK) {
		r = libusb_open(dev, &b->h);
		if (r != 0)
			rc = fail(b, r, "open", e);
	}
	libusb_unref_device(dev);
	if (rc != ST_OK) {
		give_bay(c, b->slot);
		free(b);
		return rc;
	}
	r = libusb_get_device_descriptor(libusb_get_device(b->h), &dd);
	if (r == 0 && dd.iSerialNumber) {
		r = libusb_get_string_descriptor_ascii(b->h, dd.iSerialNumber, ser, sizeof(ser) - 1);
		if (r < 0) {
			rc = fail(b, r, "reading iSerialNumber", e);
			goto out;
		}
		/* the board chose these bytes: shown and stored only escaped
		 * (a valid id is unchanged, so the cross-check still works) */
		(void)str_sanitize(b->serial, sizeof(b->serial), ser, (size_t)r);
	}
	r = libusb_claim_interface(b->h, b->vendor_if);
	if (r != 0) {
		rc = fail(b, r, "claiming the vendor interface", e);
		goto out;
	}
	b->claimed_vendor = 1;
	r = libusb_claim_interface(b->h, b->dfu.interface);
	if (r != 0) {
		rc = fail(b, r, "claiming the DFU interface", e);
		goto out;
	}
	b->claimed_dfu = 1;
	*out = b;
	return ST_OK;
out:
	usb_close(b);
	return rc;
}

void usb_close(struct usb_board *b)
{
	if (!b)
		return;
	/* Release fails harmlessly with NO_DEVICE when the board is gone. */
	if (b->claimed_dfu)
		libusb_release_interface(b->h, b->dfu.interface);
	if (b->claimed_vendor)
		libusb_release_interface(b->h, b->vendor_if);
	if (b->h)
		libusb_close(b->h);
	give_bay(b->ctx, b->slot);
	free(b);
}

const char *usb_bay(const struct usb_board *b)
{
	return b->bay;
}

const char *usb_serial(const struct usb_board *b)
{
	return b->serial;
}

const struct usb_dfu_desc *usb_dfu(const struct usb_board *b)
{
	return &b->dfu;
}

static void LIBUSB_CALL write_done(struct libusb_transfer *t)
{
	*(int *)t->user_data = 1;
}

/* A frame whose length is a multiple of the packet size ends with a zero-length
 * packet (docs/protocol.md §2), so the OUT transfer is built by hand with
 * LIBUSB_TRANSFER_ADD_ZERO_PACKET; libusb_bulk_transfer() cannot ask for it. */
/* libusb reads a timeout of 0 as "wait forever": no transfer of ours may do that. */
static int check_timeout(const struct usb_board *b, unsigned timeout_ms, const char *what,
			 struct errbuf *e)
{
	if (timeout_ms == 0)
		return errbuf_setr(e, ST_EINVAL, ST_ORIGIN_USB, ST_R_INVALID,
				   "bay %s: %s without a timeout refused", b->bay, what);
	return ST_OK;
}

int usb_bulk_write(struct usb_board *b, const void *buf, size_t len, unsigned timeout_ms,
		   struct errbuf *e)
{
	struct libusb_transfer *t;
	int r, done = 0, st, actual;

	if (len > INT32_MAX)
		return errbuf_setr(e, ST_EINVAL, ST_ORIGIN_USB, ST_R_INVALID,
				   "bay %s: bulk write of %zu bytes", b->bay, len);
	if ((r = check_timeout(b, timeout_ms, "bulk write", e)) != ST_OK)
		return r;
	t = libusb_alloc_transfer(0);
	if (!t)
		return errbuf_setr(e, ST_ENOMEM, ST_ORIGIN_STATION, ST_R_NOMEM,
				   "bay %s: bulk write: out of memory", b->bay);
	libusb_fill_bulk_transfer(t, b->h, b->ep_out, (unsigned char *)(uintptr_t)buf, (int)len,
				  write_done, &done, timeout_ms);
	if (b->out_mps && len % b->out_mps == 0)
		t->flags |= LIBUSB_TRANSFER_ADD_ZERO_PACKET;
	r = libusb_submit_transfer(t);
	if (r != 0) {
		libusb_free_transfer(t);
		return fail(b, r, "bulk write", e);
	}
	while (!done) {
		r = libusb_handle_events_completed(b->lu, &done);
		if (r != 0 && r != LIBUSB_ERROR_INTERRUPTED) {
			/* Cancel and wait for the cancellation to land. */
			libusb_cancel_transfer(t);
			while (!done && libusb_handle_events_completed(b->lu, &done) == 0)
				;
			break;
		}
	}
	st = t->status;
	actual = t->actual_length;
	libusb_free_transfer(t);
	switch (st) {
	case LIBUSB_TRANSFER_COMPLETED:
		break;
	case LIBUSB_TRANSFER_TIMED_OUT:
		return fail(b, LIBUSB_ERROR_TIMEOUT, "bulk write", e);
	case LIBUSB_TRANSFER_STALL:
		return fail(b, LIBUSB_ERROR_PIPE, "bulk write", e);
	case LIBUSB_TRANSFER_NO_DEVICE:
		return fail(b, LIBUSB_ERROR_NO_DEVICE, "bulk write", e);
	default:
		return fail(b, LIBUSB_ERROR_IO, "bulk write", e);
	}
	if ((size_t)actual != len)
		return errbuf_setr(e, ST_EIO, ST_ORIGIN_USB, ST_R_IO,
				   "bay %s: bulk write: %d of %zu bytes sent", b->bay, actual, len);
	return ST_OK;
}

int usb_bulk_read(struct usb_board *b, void *buf, size_t cap, size_t *got,
		  unsigned timeout_ms, struct errbuf *e)
{
	int r, done = 0;

	*got = 0;
	if ((r = check_timeout(b, timeout_ms, "bulk read", e)) != ST_OK)
		return r;
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	r = libusb_bulk_transfer(b->h, b->ep_in, buf, (int)cap, &done, timeout_ms);
	if (r != 0)
		return fail(b, r, "bulk read", e);
	*got = (size_t)done;
	return ST_OK;
}

int usb_control(struct usb_board *b, uint8_t reqtype, uint8_t request, uint16_t value,
		uint16_t index, void *data, uint16_t len, size_t *got, unsigned timeout_ms,
		struct errbuf *e)
{
	char what[48];
	int r;

	if (got)
		*got = 0;
	if ((r = check_timeout(b, timeout_ms, "control transfer", e)) != ST_OK)
		return r;
	r = libusb_control_transfer(b->h, reqtype, request, value, index, data, len, timeout_ms);
	if (r < 0) {
		snprintf(what, sizeof(what), "control request 0x%02x", request);
		return fail(b, r, what, e);
	}
	if (got)
		*got = (size_t)r;
	return ST_OK;
}

int usb_clear_halt(struct usb_board *b, int in, struct errbuf *e)
{
	int r = libusb_clear_halt(b->h, in ? b->ep_in : b->ep_out);

	if (r != 0)
		return fail(b, r, "clearing the halt", e);
	return ST_OK;
}
