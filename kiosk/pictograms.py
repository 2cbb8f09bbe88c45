"""Pictograms drawn with QPainter: one beside every hint and failure a visitor may see, and one for the
attract screen's call to action. Shapes are read before words (a visitor may read neither language),
so each says its message with one figure. Every drawing works in a 100 x 100 box, scaled to the one
it is given; lines are thick and round, in one colour, like museum wayfinding signs."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen

STROKE = 6.0  # line width in the 100 x 100 box


def person(painter: QPainter, x: float, y: float, size: float) -> None:
    """A standing figure (head and shoulders to the waist) whose head's top is at (x, y - size / 2)."""
    head = size * 0.22
    painter.drawEllipse(QPointF(x, y - size / 2 + head), head, head)
    body = QPainterPath()
    top = y - size / 2 + head * 2.3
    body.moveTo(x - size * 0.32, y + size / 2)
    body.cubicTo(x - size * 0.32, top, x + size * 0.32, top, x + size * 0.32, y + size / 2)
    painter.drawPath(body)


def face(painter: QPainter, x: float, y: float, radius: float) -> None:
    """A face seen from the front: outline, two eyes, a smile."""
    painter.drawEllipse(QPointF(x, y), radius * 0.8, radius)
    eye = radius * 0.11
    for side in (-1, 1):
        painter.drawEllipse(QPointF(x + side * radius * 0.32, y - radius * 0.15), eye, eye)
    painter.drawArc(QRectF(x - radius * 0.35, y + radius * 0.05, radius * 0.7, radius * 0.45), -20 * 16, -140 * 16)


def viewfinder(painter: QPainter, box: QRectF) -> None:
    """The four corners of a camera's frame."""
    arm = box.width() * 0.22
    for corner, dx, dy in ((box.topLeft(), 1, 1), (box.topRight(), -1, 1),
                           (box.bottomLeft(), 1, -1), (box.bottomRight(), -1, -1)):
        painter.drawLine(corner, corner + QPointF(dx * arm, 0))
        painter.drawLine(corner, corner + QPointF(0, dy * arm))


def arrow(painter: QPainter, start: QPointF, end: QPointF) -> None:
    painter.drawLine(start, end)
    direction = end - start
    length = max(1e-6, (direction.x() ** 2 + direction.y() ** 2) ** 0.5)
    unit = direction / length
    normal = QPointF(-unit.y(), unit.x())
    for side in (-1, 1):
        painter.drawLine(end, end - unit * 12 + normal * side * 10)


def glyph(painter: QPainter, box: QRectF, text: str) -> None:
    """A bold character (?, !, 1) drawn as part of a figure."""
    font = painter.font()
    font.setPixelSize(int(box.height()))
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


def walk_up(painter: QPainter) -> None:
    """A person stepping up to a screen that holds a face: the attract screen's call to action."""
    person(painter, 22, 62, 50)
    arrow(painter, QPointF(40, 62), QPointF(56, 62))
    painter.drawRoundedRect(QRectF(62, 24, 34, 52), 6, 6)
    face(painter, 79, 47, 11)
    painter.drawLine(QPointF(72, 88), QPointF(86, 88))


def come_closer(painter: QPainter) -> None:
    """A small figure, an arrow, the same figure large: step nearer."""
    person(painter, 18, 66, 32)
    arrow(painter, QPointF(33, 66), QPointF(50, 66))
    person(painter, 74, 54, 72)


def one_person(painter: QPainter) -> None:
    """One figure kept, a second one crossed out."""
    person(painter, 36, 54, 72)
    person(painter, 78, 64, 40)
    painter.drawLine(QPointF(62, 44), QPointF(94, 84))


def too_dark(painter: QPainter) -> None:
    """A crescent moon and a star: not enough light."""
    moon = QPainterPath()
    moon.addEllipse(QPointF(44, 54), 32, 32)
    bite = QPainterPath()
    bite.addEllipse(QPointF(62, 42), 28, 28)
    painter.drawPath(moon.subtracted(bite))
    for dx, dy in ((0, -9), (0, 9), (-9, 0), (9, 0)):
        painter.drawLine(QPointF(80, 74), QPointF(80 + dx, 74 + dy))


def face_camera(painter: QPainter) -> None:
    """A face square in a camera's frame."""
    viewfinder(painter, QRectF(10, 10, 80, 80))
    face(painter, 50, 50, 26)


def no_face(painter: QPainter) -> None:
    """An empty camera frame with a question mark."""
    viewfinder(painter, QRectF(10, 10, 80, 80))
    glyph(painter, QRectF(25, 22, 50, 56), "?")


def no_match(painter: QPainter) -> None:
    """A magnifying glass over a face, with nothing found."""
    painter.drawEllipse(QPointF(42, 42), 28, 28)
    face(painter, 42, 42, 14)
    painter.drawLine(QPointF(62, 62), QPointF(88, 88))
    painter.drawLine(QPointF(70, 14), QPointF(90, 34))
    painter.drawLine(QPointF(90, 14), QPointF(70, 34))


def search_broke(painter: QPainter) -> None:
    """A warning triangle: something went wrong on our side."""
    triangle = QPainterPath()
    triangle.moveTo(50, 10)
    triangle.lineTo(92, 86)
    triangle.lineTo(8, 86)
    triangle.closeSubpath()
    painter.drawPath(triangle)
    glyph(painter, QRectF(30, 34, 40, 48), "!")


def searching(painter: QPainter) -> None:
    """A magnifying glass over a face: looking for the other you."""
    painter.drawEllipse(QPointF(44, 44), 30, 30)
    face(painter, 44, 44, 16)
    painter.drawLine(QPointF(66, 66), QPointF(90, 90))


def tap(painter: QPainter) -> None:
    """A fingertip touching the screen, with the ripples of the touch."""
    for radius in (14, 26):
        painter.drawArc(QRectF(50 - radius, 30 - radius, radius * 2, radius * 2), 20 * 16, 140 * 16)
    finger = QPainterPath()
    finger.addRoundedRect(QRectF(41, 30, 18, 56), 9, 9)
    painter.drawPath(finger)


def any_height(painter: QPainter) -> None:
    """A tall figure, a child and a wheelchair user side by side: the camera finds a face at any height."""
    person(painter, 17, 50, 78)
    person(painter, 45, 69, 40)
    painter.drawEllipse(QPointF(77, 36), 7, 7)
    seated = QPainterPath()
    seated.moveTo(76, 46)
    seated.lineTo(76, 64)
    seated.lineTo(90, 64)
    seated.lineTo(92, 84)
    painter.drawPath(seated)
    painter.drawEllipse(QPointF(74, 76), 14, 14)


PICTOGRAMS: dict[str, Callable[[QPainter], None]] = {
    "walk_up": walk_up,
    "any_height": any_height,
    "tap_to_capture": tap,
    "searching": searching,
    "hint_come_closer": come_closer,
    "hint_one_person": one_person,
    "hint_too_dark": too_dark,
    "hint_face_camera": face_camera,
    "hint_no_face": no_face,
    "fail_no_face": no_face,
    "fail_no_match": no_match,
    "fail_search": search_broke,
}


def draw_pictogram(painter: QPainter, key: str, box: QRectF, colour: QColor) -> bool:
    """Draw the pictogram for `key` (an i18n key) filling the square centred in `box`; False when
    the key has none."""
    drawing = PICTOGRAMS.get(key)
    if drawing is None:
        return False
    side = min(box.width(), box.height())
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.translate(box.center().x() - side / 2, box.center().y() - side / 2)
    painter.scale(side / 100, side / 100)
    pen = QPen(colour, STROKE)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    drawing(painter)
    painter.restore()
    return True
