"""The staff screens: the PIN pad and the staff panel. They show and ask; kiosk.staff decides."""
from __future__ import annotations

from dataclasses import asdict

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from kiosk.config import MAX_LOOKALIKES, MAX_PIN_DIGITS, KioskConfig
from kiosk.hold import HoldButton
from kiosk.i18n import LANGUAGES, tr
from kiosk.messages import ExposureSummary
from kiosk.widgets import Page, label, set_texts


class PinPage(Page):
    """A touch keypad for the staff PIN."""

    entered = Signal(str)
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.digits = ""
        self.lang = "zh"
        self.heading, self.shown, self.message = label("heading"), label("name"), label("warning")
        grid = QGridLayout()
        for position, key in enumerate("123456789C0✓"):
            button = QPushButton(key)
            button.setObjectName("key")
            button.clicked.connect(lambda _=False, k=key: self.press(k))
            grid.addWidget(button, position // 3, position % 3)
        self.cancel = QPushButton()
        self.cancel.setObjectName("secondary")
        self.cancel.clicked.connect(self.cancelled)
        panel = QFrame()
        panel.setObjectName("panel")
        inner = QVBoxLayout(panel)
        for widget in (self.heading, self.shown, self.message):
            inner.addWidget(widget)
        inner.addLayout(grid)
        inner.addWidget(self.cancel)
        layout = QHBoxLayout(self)
        layout.addStretch()
        layout.addWidget(panel)
        layout.addStretch()

    def press(self, key: str) -> None:
        if key == "C":
            self.digits = ""
        elif key == "✓":
            self.entered.emit(self.digits)
            self.digits = ""
        elif len(self.digits) < MAX_PIN_DIGITS:
            self.digits += key
        self.shown.setText("•" * len(self.digits) or " ")

    def reset(self, message: str = "") -> None:
        """An empty pad saying `message`."""
        self.digits = ""
        self.shown.setText(" ")
        self.message.setText(message)

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        set_texts(lang, ((self.heading, "enter_pin"), (self.cancel, "cancel")))


class StaffPage(Page):
    """Camera, language, number of lookalikes; the camera's status, visits served, gallery, providers,
    live performance and the log's last lines; restart the camera, or quit by holding the button."""

    apply = Signal(str, str, int, bool)  # camera, language, lookalikes, sound: kiosk.staff checks, saves, closes
    quit = Signal()
    reset_exposure = Signal()
    restart_camera = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.heading = label("heading")
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.language = QComboBox()
        self.language.addItems(["中文 (zh)", "English (en)"])
        self.lookalikes = QSpinBox()
        self.lookalikes.setRange(1, MAX_LOOKALIKES)
        self.sound = QCheckBox()
        self.labels = {key: label("caption", Qt.AlignmentFlag.AlignLeft) for key in
                       ("camera", "language_setting", "lookalikes", "sound_setting", "camera_status", "visits",
                        "gallery", "providers", "performance", "exposure", "log")}
        self.camera_status, self.visits, self.gallery, self.providers, self.performance, self.exposure = (
            label("status", Qt.AlignmentFlag.AlignLeft) for _ in range(6))
        self.log = QPlainTextEdit()  # plain text: a log line is never rendered as markup
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.exposure_numbers: ExposureSummary | None = None
        self.lang = "zh"
        self.reset_button, self.restart_button = QPushButton(), QPushButton()
        for button in (self.reset_button, self.restart_button):
            button.setObjectName("secondary")
        self.reset_button.clicked.connect(self.reset_exposure)
        self.restart_button.clicked.connect(self.restart_camera)
        self.warning = label("warning", Qt.AlignmentFlag.AlignLeft)
        self.close_button, self.quit_button = QPushButton(), HoldButton()
        self.quit_button.setObjectName("secondary")
        self.close_button.clicked.connect(self._apply)
        self.quit_button.held.connect(self.quit)
        self._lay_out()

    def _lay_out(self) -> None:
        """The settings and the status rows, label beside value; the buttons under them."""
        panel = QFrame()
        panel.setObjectName("panel")
        grid = QGridLayout(panel)
        grid.addWidget(self.heading, 0, 0, 1, 2)
        rows = (("camera", self.camera), ("language_setting", self.language), ("lookalikes", self.lookalikes),
                ("sound_setting", self.sound), ("camera_status", self.camera_status), ("visits", self.visits),
                ("gallery", self.gallery), ("providers", self.providers), ("performance", self.performance),
                ("exposure", self.exposure),
                ("log", self.log))
        for row, (key, widget) in enumerate(rows, 1):
            grid.addWidget(self.labels[key], row, 0)
            grid.addWidget(widget, row, 1)
        grid.addWidget(self.warning, len(rows) + 1, 0, 1, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.restart_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch()
        buttons.addWidget(self.close_button)
        grid.addLayout(buttons, len(rows) + 2, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(len(rows), 1)  # the log takes the room left
        layout = QVBoxLayout(self)
        layout.addWidget(panel)

    def load(self, config: KioskConfig, cameras: list[tuple[str, str]]) -> None:
        """The settings in force; the cameras found (index, name) to pick from, the one in use first."""
        self.camera.clear()
        names = dict(cameras)
        for spec in dict.fromkeys([config.camera, *names]):
            self.camera.addItem(f"{spec}: {names[spec]}" if spec in names else spec, spec)
        self.language.setCurrentIndex(LANGUAGES.index(config.lang))
        self.lookalikes.setValue(config.lookalikes)
        self.sound.setChecked(config.sound)

    def show_status(self, status: dict[str, str]) -> None:
        """Plain texts for the status rows: camera_status, visits, gallery, providers, performance,
        log, and warning (what staff must act on)."""
        for key in ("camera_status", "visits", "gallery", "providers", "performance", "warning"):
            getattr(self, key).setText(status[key])
        if self.log.toPlainText() != status["log"]:
            self.log.setPlainText(status["log"])
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def show_exposure(self, numbers: ExposureSummary | None) -> None:
        """The exposure ledger's summary (kiosk.ledger.Ledger.summary); None before the first."""
        self.exposure_numbers = numbers
        self.exposure.setText(tr(self.lang, "exposure_status", **asdict(numbers)) if numbers is not None else "")

    def chosen_camera(self) -> str:
        """The camera picked from the list (its index or path), or as typed."""
        picked = self.camera.findText(self.camera.currentText())
        return self.camera.itemData(picked) if picked >= 0 else self.camera.currentText()

    def _apply(self) -> None:
        self.apply.emit(self.chosen_camera(), LANGUAGES[self.language.currentIndex()], self.lookalikes.value(),
                        self.sound.isChecked())

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        set_texts(lang, ((self.heading, "staff_panel"), (self.close_button, "close"),
                         (self.quit_button, "hold_to_quit"), (self.reset_button, "reset_exposure"),
                         (self.restart_button, "restart_camera"), (self.sound, "sound_on")))
        set_texts(lang, ((widget, key) for key, widget in self.labels.items()))
        self.show_exposure(self.exposure_numbers)
