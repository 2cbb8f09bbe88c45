"""The kiosk emits signals from its camera and inference threads thousands of times an hour:
the installed PySide6 must keep Python's reference counts intact while doing so (6.12.0 does not)."""
from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication


class Source(QObject):
    frame = Signal(object)


def test_signals_from_other_threads_keep_reference_counts_intact():
    app = QApplication.instance() or QApplication([])
    source, received = Source(), []
    source.frame.connect(received.append)
    before = sys.getrefcount(True)
    thread = threading.Thread(target=lambda: [source.frame.emit(i) for i in range(2000)])
    thread.start()
    thread.join()
    app.processEvents()
    assert len(received) == 2000
    assert abs(sys.getrefcount(True) - before) < 100
