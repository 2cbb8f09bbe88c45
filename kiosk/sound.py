"""The countdown's sound cue: a soft, short tone at each number and a brighter one at the capture.
The tones are synthesised here, never downloaded; `python -m kiosk.sound` writes them to
assets/sounds/ (committed; a test checks they are what this code makes). Staff mute them in
kiosk.toml (`sound = false`) or on the staff panel. Without QtMultimedia or an audio output (a CI
machine, an offscreen test) the booth goes on silent and the log says so once."""
from __future__ import annotations

import io
import logging
import wave
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QUrl

from kiosk.assets import ASSETS

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
CUES = {"tick": (660.0, 0.14), "capture": (990.0, 0.24)}  # name: (pitch in Hz, seconds)
LOUDNESS = 0.35  # peak of the synthesised wave, of full scale: a cue, not an alarm
VOLUME = 0.6     # QSoundEffect's volume on top of it
ATTACK = 0.012   # seconds of fade-in: no click at the start


def tone(pitch: float, seconds: float) -> np.ndarray:
    """A soft bell-like tone: a sine with a little octave, a quick fade-in and a smooth fade-out."""
    t = np.arange(round(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    wave_ = np.sin(2 * np.pi * pitch * t) + 0.25 * np.sin(4 * np.pi * pitch * t)
    envelope = np.minimum(1.0, t / ATTACK) * np.cos(np.pi / 2 * t / seconds) ** 2
    return (wave_ / 1.25 * envelope * LOUDNESS * 32767).astype("<i2")


def wav_bytes(samples: np.ndarray) -> bytes:
    """16-bit mono PCM samples as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(SAMPLE_RATE)
        file.writeframes(samples.tobytes())
    return out.getvalue()


def cue_file(name: str) -> Path:
    return Path(ASSETS) / "sounds" / f"{name}.wav"


def write_cues() -> list[Path]:
    """Synthesise every cue into assets/sounds/."""
    written = []
    for name, (pitch, seconds) in CUES.items():
        path = cue_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes(tone(pitch, seconds)))
        written.append(path)
    return written


class SoundCue(QObject):
    """Plays the cues when enabled and the machine can; `play` never fails."""

    def __init__(self, enabled: bool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.enabled = enabled
        self._effects: dict[str, QObject] | None = None  # loaded when first enabled
        if enabled:
            self._load()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        if enabled and self._effects is None:
            self._load()

    def play(self, name: str) -> None:
        effect = (self._effects or {}).get(name)
        if self.enabled and effect is not None:
            effect.play()  # type: ignore[attr-defined]

    def _load(self) -> None:
        self._effects = {}
        try:
            from PySide6.QtMultimedia import QMediaDevices, QSoundEffect
        except (ImportError, OSError) as error:  # PySide6-Addons missing, or its libpulse
            log.info("sound cue off: Qt Multimedia cannot load here (%s)", error)
            return
        if not QMediaDevices.audioOutputs():
            log.info("sound cue off: no audio output device")
            return
        for name in CUES:
            effect = QSoundEffect(self)
            effect.setSource(QUrl.fromLocalFile(str(cue_file(name))))
            effect.setVolume(VOLUME)
            self._effects[name] = effect


if __name__ == "__main__":
    for written in write_cues():
        print(written)
