"""The visitor's journey as a plain state machine (no Qt): screens change only here.

The window feeds it events (a face analysis, a touch, a result, the camera's status, the clock)
and shows `state`. Time is passed in, so tests drive it without waiting.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import Enum

from kiosk.messages import Analysis

log = logging.getLogger(__name__)


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
    results_seconds: float = 30.0   # results stay at most this long, even with the visitor still there
    hold_seconds: float = 1.0       # a ready face this still this long starts the countdown
    countdown_seconds: float = 3.0
    away_seconds: float = 8.0       # results close this long after the last face was seen
    failure_seconds: float = 3.0    # a failure hint stays at least this long, whatever the live view sees
    search_seconds: float = 15.0    # a search not answered by then has failed: the kiosk never waits for ever
    settle_seconds: float = 0.5     # a touch this soon after the live view appeared was meant for the screen before


class Flow:
    def __init__(self, timing: Timing = Timing()) -> None:
        self.timing = timing
        self.state = State.SPLASH
        self.hint = ""
        self.camera_problem = ""   # "" while the camera delivers; else why not (kept through the splash)
        self._since = 0.0          # when the current state began
        self._last_activity = 0.0  # last touch or face seen
        self._last_face = 0.0      # last frame with a face in it
        self._hint_until = 0.0     # a failure hint is not replaced before then
        self._steady_since: float | None = None

    def _go(self, state: State, now: float) -> None:
        if state is State.ATTRACT and self.state is not State.ATTRACT:
            log.info("attract loop")  # between two visits' lines: the booth was free again
        self.state, self._since = state, now
        self._steady_since = None

    def ready(self, now: float) -> None:
        """Models and gallery are loaded: the camera's status, as it stands now, decides the screen."""
        if self.state is State.SPLASH:
            self._last_activity = now
            self._go(State.CAMERA_WAIT if self.camera_problem else State.ATTRACT, now)

    def touch(self, now: float) -> bool:
        """A touch on the visitor screens; True when it asks for a capture now. A touch on the
        results (pointing at a portrait) keeps them up: only "try again" restarts."""
        self._last_activity = now
        if self.state is State.ATTRACT:
            self.hint = ""
            self._go(State.LIVE, now)
        elif self.state is State.RESULTS:
            self._last_face = max(self._last_face, now)  # someone is there, looking
        elif self.state is State.LIVE and now - self._since < self.timing.settle_seconds:
            pass  # a visitor touching the attract screen as their face turned it live: no capture yet
        elif self.state in (State.LIVE, State.COUNTDOWN):
            self._go(State.SEARCHING, now)
            return True
        return False

    def try_again(self, now: float) -> None:
        """The results' "try again" button: a new capture in the live view."""
        if self.state is State.RESULTS:
            self._last_activity = now
            self.hint = ""
            self._go(State.LIVE, now)

    def analysed(self, analysis: Analysis, now: float) -> None:
        if analysis.faces:
            self._last_activity = self._last_face = now
        if self.state is State.ATTRACT and analysis.faces:
            # any face, however far: the live view answers at once ("come closer")
            self.hint = analysis.hint
            self._go(State.LIVE, now)
        elif self.state is State.LIVE and now >= self._hint_until:
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

    def results_left(self, now: float) -> float:
        """The share of results_seconds left before the results close (0..1): the timer ring."""
        closes = min(self._since + self.timing.results_seconds, self._last_face + self.timing.away_seconds)
        return min(max((closes - now) / self.timing.results_seconds, 0.0), 1.0)

    def tick(self, now: float) -> bool:
        """Advance with the clock; True when the countdown just finished (capture now)."""
        if self.state is State.COUNTDOWN and now - self._since >= self.timing.countdown_seconds:
            self._go(State.SEARCHING, now)
            return True
        if self.state is State.RESULTS and self.results_left(now) <= 0:
            self._go(State.ATTRACT, now)
        elif self.state is State.SEARCHING and now - self._since >= self.timing.search_seconds:
            self.results("fail_search", now)
        elif self.state in (State.LIVE, State.COUNTDOWN) and now - self._last_activity >= self.timing.idle_seconds:
            self._go(State.ATTRACT, now)
        return False

    def results(self, failure: str, now: float) -> None:
        """The search came back: lookalikes to show (`failure` ""), or why not, an i18n key held
        on the live view for failure_seconds."""
        if self.state is State.SEARCHING:
            self._last_activity = self._last_face = now
            if not failure:
                self._go(State.RESULTS, now)
            else:
                self.hint, self._hint_until = failure, now + self.timing.failure_seconds
                self._go(State.LIVE, now)

    def camera_lost(self, reason: str, now: float) -> None:
        """The camera stopped delivering; remembered even during the splash, shown after it."""
        self.camera_problem = reason or "camera lost"
        if self.state not in (State.SPLASH, State.CAMERA_WAIT):
            self._go(State.CAMERA_WAIT, now)

    def camera_back(self, now: float) -> None:
        self.camera_problem = ""
        if self.state is State.CAMERA_WAIT:
            self._last_activity = now
            self._go(State.ATTRACT, now)

    def restart(self, now: float) -> None:
        """Staff are done: the visitor screens start afresh (the camera's status still decides)."""
        if self.state is not State.SPLASH:
            self._last_activity = now
            self._go(State.CAMERA_WAIT if self.camera_problem else State.ATTRACT, now)

    @property
    def forgets_visitor(self) -> bool:
        """True on screens where nothing about the last visitor may remain."""
        return self.state in (State.ATTRACT, State.CAMERA_WAIT, State.SPLASH)
