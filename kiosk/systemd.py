"""Telling systemd how the kiosk is (the sd_notify protocol): READY=1 once the window's timer runs,
then WATCHDOG=1 from that timer, on the GUI thread, so a hung window stops feeding the watchdog and
systemd restarts the kiosk (WatchdogSec in kiosk.service's unit). The protocol is one datagram
to the socket named in $NOTIFY_SOCKET, written here rather than taken from a dependency.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FEED_SECONDS = 1.0  # far inside the unit's WatchdogSec: a missed tick or two never restarts the kiosk


def sd_notify(state: str) -> bool:
    """Send `state` ("READY=1", "WATCHDOG=1"...) to the service manager that started this process;
    False when none did (no $NOTIFY_SOCKET) or the socket refuses it."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # Linux's abstract socket namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        log.debug("sd_notify %s: %s", state, error)
        return False
    return True


class Watchdog:
    """Fed on every tick of the GUI thread's timer: READY=1 the first time, then WATCHDOG=1 at most
    every FEED_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # real time, never the Flow's clock (tests stop that one)
        self.fed_at: float | None = None
        self.warned = False

    def feed(self) -> None:
        now = self.clock()
        if self.fed_at is not None and now - self.fed_at < FEED_SECONDS:
            return
        state = "READY=1" if self.fed_at is None else "WATCHDOG=1"
        self.fed_at = now
        if not sd_notify(state) and os.environ.get("NOTIFY_SOCKET") and not self.warned:
            self.warned = True
            log.warning("cannot reach systemd at $NOTIFY_SOCKET: its watchdog may restart the kiosk")
