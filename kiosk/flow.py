"""The visitor's journey as a plain state machine (no Qt): screens change only here.

The window feeds it events (a face analysis, a touch, a result, the clock) and shows `state`.
Time is passed in, so tests drive it without waiting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class State(Enum):
    SPLASH = "splash"          # loading and warming models and gallery
    ATTRACT = "attract"        # nobody here: invite people closer
    LIVE = "live"              # mirror view with a face guide and hints
    COUNTDOWN = "countdown"    # the face held still: 3, 2, 1
    SEARCHING = "searching"    # a frame was captured; waiting for the lookalikes
    RESULTS = "results"        # the visitor beside their lookalikes
    CAMERA_WAIT = "camera_wait"  # the camera failed; reconnecting


@dataclass(frozen=True)
class Timing:
    idle_seconds: float = 20.0      # no face and no touch this long: back to attract
    results_seconds: float = 30.0   # results stay this long without a touch
    hold_seconds: float = 1.0       # a ready face this still this long starts the countdown
    countdown_seconds: float = 3.0


@dataclass(frozen=True)
class Analysis:
    """What the worker saw in one live frame (plain data)."""

    faces: int
    near: bool = False    # the largest face is close enough to start
    ready: bool = False   # one face, close, lit and frontal: a good capture
    steady: bool = False  # and it has not moved since the previous frame
    hint: str = ""        # i18n key of the hint to show, "" when ready
    analyse_ms: float = 0.0  # how long the worker took over the frame


class Flow:
    def __init__(self, timing: Timing = Timing()) -> None:
        self.timing = timing
        self.state = State.SPLASH
        self.hint = ""
        self._since = 0.0          # when the current state began
        self._last_activity = 0.0  # last touch or face seen
        self._steady_since: float | None = None
        self._resume = State.ATTRACT

    def _go(self, state: State, now: float) -> None:
        self.state, self._since = state, now
        self._steady_since = None

    def ready(self, now: float) -> None:
        if self.state is State.SPLASH:
            self._last_activity = now
            self._go(State.ATTRACT, now)

    def touch(self, now: float) -> bool:
        """A touch on the visitor screens; True when it asks for a capture now."""
        self._last_activity = now
        if self.state in (State.ATTRACT, State.RESULTS):
            self.hint = ""
            self._go(State.LIVE, now)
        elif self.state in (State.LIVE, State.COUNTDOWN):
            self._go(State.SEARCHING, now)
            return True
        return False

    def analysed(self, analysis: Analysis, now: float) -> None:
        if analysis.faces:
            self._last_activity = now
        if self.state is State.ATTRACT and analysis.near:
            self.hint = ""
            self._go(State.LIVE, now)
        elif self.state is State.LIVE:
            self.hint = analysis.hint
            if analysis.ready and analysis.steady:
                self._steady_since = self._steady_since if self._steady_since is not None else now
                if now - self._steady_since >= self.timing.hold_seconds:
                    self._go(State.COUNTDOWN, now)
            else:
                self._steady_since = None
        elif self.state is State.COUNTDOWN and not analysis.ready:
            self.hint = analysis.hint
            self._go(State.LIVE, now)

    def countdown_left(self, now: float) -> int:
        """Whole seconds still to count, shown on screen (3, 2, 1)."""
        return max(1, math.ceil(self.timing.countdown_seconds - (now - self._since)))

    def tick(self, now: float) -> bool:
        """Advance with the clock; True when the countdown just finished (capture now)."""
        if self.state is State.COUNTDOWN and now - self._since >= self.timing.countdown_seconds:
            self._go(State.SEARCHING, now)
            return True
        if self.state is State.RESULTS and now - self._since >= self.timing.results_seconds:
            self._go(State.ATTRACT, now)
        elif self.state in (State.LIVE, State.COUNTDOWN) and now - self._last_activity >= self.timing.idle_seconds:
            self._go(State.ATTRACT, now)
        return False

    def results(self, found: bool, now: float) -> None:
        """The search came back: lookalikes to show, or no usable face in the captured frame."""
        if self.state is State.SEARCHING:
            self._last_activity = now
            if found:
                self._go(State.RESULTS, now)
            else:
                self.hint = "hint_no_face"
                self._go(State.LIVE, now)

    def camera_lost(self, now: float) -> None:
        if self.state is not State.SPLASH and self.state is not State.CAMERA_WAIT:
            self._go(State.CAMERA_WAIT, now)

    def camera_back(self, now: float) -> None:
        if self.state is State.CAMERA_WAIT:
            self._last_activity = now
            self._go(State.ATTRACT, now)

    @property
    def forgets_visitor(self) -> bool:
        """True on screens where nothing about the last visitor may remain."""
        return self.state in (State.ATTRACT, State.CAMERA_WAIT, State.SPLASH)
