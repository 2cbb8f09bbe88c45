"""What the booth counts, for the staff panel and the benchmarks: visits, frames, the worker's time
per stage, how long results took to appear, and frames a second."""
from __future__ import annotations

import time

from kiosk.messages import Analysis, SearchOutcome

NAMES = ("camera", "drawn", "analysed")


class FrameRates:
    """Frames a second over the last second: from the camera, drawn by the live view, analysed.
    "drawn" counts only seconds the live view showed throughout: elsewhere (the staff panel over it
    among them) nothing is drawn, by design."""

    def __init__(self) -> None:
        self.last = dict.fromkeys(NAMES, 0.0)  # per second, over the last second
        self._mark = (time.perf_counter(), 0, 0, 0)
        self._live_whole_second = False  # the live view showed since the last mark

    def measure(self, counts: tuple[int, int, int], showing_live: bool) -> bool:
        """Given the counts so far (camera, drawn, analysed), True when a second has passed and
        `last` holds new rates."""
        elapsed = time.perf_counter() - self._mark[0]
        if elapsed < 1.0:
            return False
        rates = {name: (count - before) / elapsed
                 for name, count, before in zip(NAMES, counts, self._mark[1:], strict=True)}
        if not (self._live_whole_second and showing_live):
            rates["drawn"] = self.last["drawn"]
        self.last = rates
        self._mark = (time.perf_counter(), *counts)
        self._live_whole_second = showing_live
        return True

    def live_left(self) -> None:
        """Another screen than the live view is up: this second's drawing does not count."""
        self._live_whole_second = False


class Tally:
    """The booth's counts since it started; the window feeds them, the staff panel reads them."""

    def __init__(self) -> None:
        self.visits = 0
        self.frames_seen = 0
        self.analyses = 0
        self.stage_ms: dict[str, float] = {}  # the worker's latest time per stage, as its answers carried
        self.results_latency_ms: list[float] = []  # from each capture to its results' first paint
        self.rates = FrameRates()

    def analysed(self, analysis: Analysis) -> None:
        self.analyses += 1
        self.stage_ms["analyse"] = analysis.analyse_ms

    def searched(self, outcome: SearchOutcome) -> None:
        """One more visit, answered by `outcome`."""
        self.visits += 1
        self.stage_ms.update({f"search_{stage}": ms for stage, ms in outcome.timings_ms.items()})

    def results_drawn(self, outcome: SearchOutcome, when: float) -> None:
        """The results of `outcome` were first painted at `when` (time.perf_counter())."""
        self.results_latency_ms.append((when - outcome.frame_time) * 1e3)

    def measure_rates(self, painted_frames: int, showing_live: bool) -> bool:
        """True when the frame rates are new (once a second)."""
        return self.rates.measure((self.frames_seen, painted_frames, self.analyses), showing_live)
