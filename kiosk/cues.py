"""What tells people at the booth what the camera is doing: the camera-on sign over every screen
whose frames are analysed, the attract screen's notice in the booth's own words, and the
countdown's soft sound cue (kiosk.sound)."""
from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from kiosk.attract import AttractPage
from kiosk.config import KioskConfig, notice
from kiosk.flow import State
from kiosk.i18n import LANGUAGES, tr
from kiosk.sound import SoundCue
from kiosk.widgets import CameraOn

# the screens whose camera frames go to the inference worker (KioskWindow.on_frame): the attract
# screen too (a face turns it live), and the results (they close when the face has gone)
ANALYSED = (State.ATTRACT, State.LIVE, State.COUNTDOWN, State.RESULTS)
CAMERA_ON = (*ANALYSED, State.SEARCHING)  # the sign's screens: and while the captured frame is searched


class BoothCues(QObject):
    """The window's cues: `show` at every state change and tick, `captured` at each capture,
    `apply` when the settings or the language change, `place` when the window is resized."""

    def __init__(self, window: QWidget, attract: AttractPage, sound: bool) -> None:
        super().__init__(window)
        self.window, self.attract = window, attract
        self.camera_on = CameraOn(window)
        self.sound = SoundCue(sound, self)
        self._counted = 0  # the countdown's number last sounded

    def show(self, state: State, countdown: int) -> None:
        """The sign while frames are analysed; a tone at each new number of the countdown."""
        shown = state in CAMERA_ON
        if self.camera_on.isHidden() == shown:  # changed: no repaint on every tick
            self.camera_on.setVisible(shown)
            self.camera_on.raise_()
        if countdown and countdown != self._counted:
            self.sound.play("tick")
        self._counted = countdown

    def captured(self) -> None:
        self.sound.play("capture")

    def apply(self, config: KioskConfig, lang: str) -> None:
        """The settings in force (sound, the notice's wording) and the visitor's language."""
        self.sound.set_enabled(config.sound)
        self.camera_on.show_text(tr(lang, "camera_on"))
        self.attract.show_notice([notice(config, each) for each in sorted(LANGUAGES, key=lambda other: other != lang)])
        self.place()

    def place(self) -> None:
        self.camera_on.place(self.window.width(), self.window.height())
