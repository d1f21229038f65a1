/*
 * pl_usb: boards over libusb for the line (struct pl_transport and struct
 * pl_board_ops of line/pipeline.h): usb/usb.h finds them by the profile's
 * VID:PID, usb/board_client.h speaks the protocol, usb/dfu.h flashes.
 *
 * Contract
 * - pl_usb_open() makes the libusb context for the profile's VID:PID; ca_der
 *   (may be NULL) is copied and written to boards as the chain above their
 *   certificate.
 * - Every board call is bounded by the timeouts usb/ applies to each transfer;
 *   key generation is polled up to 120 s (RSA-3072 on a small MCU).
 * The line never includes this header: app/session.c wires it in.
 */
#ifndef STATION_APP_PL_USB_H
#define STATION_APP_PL_USB_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "config/profile.h"
#include "line/pipeline.h"

struct pl_usb;

ST_MUST_CHECK int  pl_usb_open(const struct profile *p, const uint8_t *ca_der, size_t ca_len,
			       struct pl_usb **out, struct errbuf *err);
void pl_usb_transport(struct pl_usb *u, struct pl_transport *t);
void pl_usb_close(struct pl_usb *u);

#endif
