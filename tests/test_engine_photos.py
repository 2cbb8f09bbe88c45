"""The engine on real photos, with both the default pack and an insightface-layout pack."""
from __future__ import annotations

import numpy as np
import pytest

SAME_PERSON_FLOOR = 0.5  # same-person cosine similarities sit above this for both packs


def centre_x(face) -> float:
    return float(face.box[0] + face.box[2]) / 2


def test_every_photo_has_its_expected_number_of_faces(engine, photos, manifest):
    wrong = []
    for row in manifest:
        found = len(engine.analyze(photos / row["file"]))
        if not int(row["faces_min"]) <= found <= int(row["faces_max"]):
            wrong.append(f"{row['file']}: {found} faces, expected {row['faces_min']}..{row['faces_max']}")
    assert not wrong, "\n".join(wrong)


def test_faces_come_largest_first_with_landmarks_inside_their_box(engine, photos):
    faces = engine.analyze(photos / "if_t1.jpg")
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert np.all((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2))
        assert np.all((face.landmarks[:, 1] > y1) & (face.landmarks[:, 1] < y2))
        assert face.embedding.dtype == np.float32
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def people(engine, photos):
    """Embeddings of barack_obama (5 photos, 6 faces), joe_biden (2) and the six of if_t1.jpg."""
    def largest(name):
        return engine.analyze(photos / name)[0]

    obama = [largest("fr_obama.jpg"), largest("fr_obama_partial_face.jpg"),
             largest("fr_obama_partial_face2.jpg"), largest("fr_32bit.png")]
    # Seen in the photos: fr_two_people has Obama on the left and Biden on the right;
    # fr_obama_and_biden has Biden left and Obama right as its two largest faces.
    left, right = sorted(engine.analyze(photos / "fr_two_people.jpg"), key=centre_x)
    obama.append(left)
    biden = [right]
    left, right = sorted(engine.analyze(photos / "fr_obama_and_biden.jpg")[:2], key=centre_x)
    obama.append(right)
    biden.append(left)
    stack = lambda faces: np.stack([f.embedding for f in faces])  # noqa: E731
    return stack(obama), stack(biden), stack(engine.analyze(photos / "if_t1.jpg"))


def test_obama_photos_are_closer_to_each_other_than_to_anyone_else(people):
    obama, biden, table = people
    same = obama @ obama.T
    closest_same = same[np.triu_indices(len(obama), 1)].min()
    assert closest_same > SAME_PERSON_FLOOR
    assert closest_same > (obama @ biden.T).max()
    assert closest_same > (obama @ table.T).max()
    assert float(biden[0] @ biden[1]) > SAME_PERSON_FLOOR


def test_the_six_people_at_the_table_are_told_apart(people):
    _, _, table = people
    assert len(table) == 6
    similarity = table @ table.T
    assert similarity[np.triu_indices(6, 1)].max() < SAME_PERSON_FLOOR


def test_yunet_detects_on_the_photos_own_shape_as_it_did_on_a_square(engine, photos):
    from face_engine.detectors import letterbox
    from face_engine.imaging import read_image

    if engine.pack.detector_kind != "yunet":
        pytest.skip("SCRFD is letterboxed into 640x640 by insightface")
    frame = read_image(photos / "fr_two_people.jpg")
    canvas, scale = letterbox(frame)
    assert max(canvas.shape[:2]) == 640 and canvas.shape[0] % 32 == 0 == canvas.shape[1] % 32
    assert min(canvas.shape[:2]) < 640 or frame.shape[0] == frame.shape[1], "a landscape photo costs less than a square"
    square = np.zeros((640, 640, 3), np.uint8)
    square[:canvas.shape[0], :canvas.shape[1]] = canvas  # the square every frame was letterboxed into before
    own, padded = engine.detect(frame), engine.detect(square)
    assert len(own.boxes) == len(padded.boxes) == 2
    assert np.abs(own.boxes * scale - padded.boxes).max() < 0.5, "in the canvas's pixels"
    assert np.abs(own.landmarks * scale - padded.landmarks).max() < 0.5
