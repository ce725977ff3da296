/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "guest.h"

static speed_t serial_speed(unsigned baud)
{
	switch (baud) {
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 115200: return B115200;
	case 230400: return B230400;
	case 460800: return B460800;
	case 921600: return B921600;
	case 1000000: return B1000000;
	case 2000000: return B2000000;
	case 4000000: return B4000000;
	default: return 0;
	}
}

int tp_serial_open(const char *dev, unsigned baud, char *err, size_t errlen)
{
	speed_t sp = 0;
	if (baud && !(sp = serial_speed(baud))) {
		snprintf(err, errlen, "serial: unsupported baud rate %u", baud);
		return -EINVAL;
	}
	int fd = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", dev, strerror(e));
		return -e;
	}
	struct termios t;
	if (tcgetattr(fd, &t) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: not a terminal: %s", dev, strerror(e));
		close(fd);
		return -e;
	}
	/* 8-bit clean, no echo, no flow-control characters eaten. */
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cflag &= ~(tcflag_t)CRTSCTS;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (sp) {
		cfsetispeed(&t, sp);
		cfsetospeed(&t, sp);
	}
	if (tcsetattr(fd, TCSANOW, &t) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", dev, strerror(e));
		close(fd);
		return -e;
	}
	tcflush(fd, TCIOFLUSH);
	return fd;
}
