"""The frame producer and consumer tools: their pure parts, the drawing, and both CLIs
against the Cloud SDK's Pub/Sub emulator (small synthetic frames: no lab data needed)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from PIL import Image

from pipelines.pedestrian.frames import frame_from_message, result_message
from tests.support import pubsub_emulator as emulator
from tools import frame_consumer, frame_producer

PROJECT = emulator.PROJECT
RED = frame_consumer.BOX_COLOUR


def write_png(path, width=64, height=48, value=90):
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path, format="PNG")
    return path.read_bytes()


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


# ---- producer -----------------------------------------------------------------------------


def test_list_frames_takes_png_and_jpeg_in_name_order(tmp_path):
    for name in ("b.PNG", "a.png", "c.jpg", "d.jpeg", "notes.txt", "e.gif"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in frame_producer.list_frames(tmp_path)] == [
        "a.png",
        "b.PNG",
        "c.jpg",
        "d.jpeg",
    ]


@pytest.mark.parametrize("as_json", [False, True])
def test_what_the_producer_sends_is_what_the_job_reads(tmp_path, as_json):
    image = write_png(tmp_path / "A_001.png")
    data, attributes = frame_producer.encode_frame("A_001.png", image, as_json)
    assert attributes == {"name": "A_001.png"}
    assert frame_from_message(data, attributes) == ("A_001.png", image)
    # JSON carries the name itself too: it survives without the attribute.
    assert frame_from_message(data, {})[0] == ("A_001.png" if as_json else "unnamed")


def test_frames_over_the_pubsub_limit_are_skipped_with_a_warning(tmp_path, capsys, monkeypatch):
    small = write_png(tmp_path / "a.png", 4, 4)
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "b.png")  # PNG cannot compress noise: large
    monkeypatch.setattr(frame_producer, "MAX_MESSAGE_BYTES", len(small) + 100)
    messages = list(frame_producer.frame_messages(frame_producer.list_frames(tmp_path), repeat=2))
    assert messages == [(small, {"name": "a.png"})] * 2
    err = capsys.readouterr().err
    assert err.count("skipping") == 2 and "b.png" in err and "over Pub/Sub's limit" in err


def test_producer_rejects_a_missing_or_empty_folder(tmp_path, capsys):
    for folder in (tmp_path / "nope", tmp_path):
        with pytest.raises(SystemExit) as exited:
            frame_producer.main(["--project", PROJECT, "--folder", str(folder)])
        assert exited.value.code == 2
        assert "--folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("as_json", [False, True])
def test_producer_publishes_a_folder_to_the_emulator(pubsub_emulator, tmp_path, capsys, as_json):
    topic, subscription = emulator.create_topic_with_subscription(unique("frames"))
    images = {
        name: write_png(tmp_path / name, value=i * 40)
        for i, name in enumerate(("x_1.png", "x_2.png", "x_3.png"))
    }
    argv = [
        "--project",
        PROJECT,
        "--topic",
        topic.rsplit("/", 1)[1],
        "--folder",
        str(tmp_path),
        "--rate",
        "0",
        "--limit",
        "2",
    ]
    assert frame_producer.main(argv + (["--json"] if as_json else [])) == 0
    assert f"published 2 frames to {topic}" in capsys.readouterr().out
    received = emulator.pull(subscription, 2, timeout=30)
    frames = dict(frame_from_message(m.data, dict(m.attributes)) for m in received)
    assert frames == {"x_1.png": images["x_1.png"], "x_2.png": images["x_2.png"]}
    if as_json:
        assert all(json.loads(m.data)["name"] == m.attributes["name"] for m in received)


# ---- consumer -----------------------------------------------------------------------------

RESULT = {
    "name": "A_001.png",
    "model": "m",
    "width": 400,
    "height": 300,
    "pedestrians": [
        {
            "box": [100, 80, 160, 280],
            "score": 0.93,
            "distance_m": 4.123,
            "distance_method": "head_top",
        },
        {"box": [300, 10, 330, 60], "score": 0.51, "distance_m": None, "distance_method": None},
    ],
}
EMPTY = {"name": "B_001.png", "model": "m", "width": 400, "height": 300, "pedestrians": []}


def test_consumer_lines():
    assert frame_consumer.describe(RESULT) == [
        "A_001.png  400x300  2 pedestrians",
        "    [100, 80, 160, 280]  score 0.93   4.12 m (head_top)",
        "    [300, 10, 330, 60]  score 0.51  distance unknown",
    ]
    assert frame_consumer.describe(EMPTY) == ["B_001.png  400x300  no pedestrian"]
    assert frame_consumer.label_text(RESULT["pedestrians"][0]) == "4.1 m  93%"
    assert frame_consumer.label_text(RESULT["pedestrians"][1]) == "? m  51%"


def test_drawn_path_stays_in_the_output_folder(tmp_path):
    assert frame_consumer.drawn_path(tmp_path, "../../etc/A_001.jpg") == tmp_path / "A_001.png"


def test_draw_puts_boxes_and_labels_on_a_copy_of_the_frame(tmp_path):
    write_png(tmp_path / "A_001.png", 400, 300, value=0)
    out = tmp_path / "drawn" / "A_001.png"
    frame_consumer.draw(RESULT, tmp_path / "A_001.png", out)
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape == (300, 400, 3)
    assert tuple(drawn[180, 100]) == RED and tuple(drawn[180, 159]) == RED  # box sides
    assert tuple(drawn[180, 130]) == (0, 0, 0)  # inside the box: the frame untouched
    above = drawn[40:80, 100:160]  # the label sits above the first box
    assert (above == RED).all(axis=2).any() and (above == 255).all(axis=2).any()


@pytest.mark.slow
def test_consumer_prints_and_draws_from_the_emulator(pubsub_emulator, tmp_path, capsys):
    topic, subscription = emulator.create_topic_with_subscription(unique("pedestrian_depth"))
    frames = tmp_path / "frames"
    frames.mkdir()
    write_png(frames / "A_001.png", 400, 300)
    write_png(frames / "B_001.png", 400, 300)
    messages = [result_message(r) for r in (RESULT, EMPTY)]
    frame_producer.publish(
        topic, [(m.data, m.attributes) for m in messages] + [(b'{"not": "a result"}', {})], rate=0
    )
    drawn = tmp_path / "drawn"
    assert (
        frame_consumer.main(
            [
                "--project",
                PROJECT,
                "--subscription",
                subscription.rsplit("/", 1)[1],
                "--limit",
                "3",
                "--timeout",
                "20",
                "--frames",
                str(frames),
                "--draw",
                str(drawn),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    for line in frame_consumer.describe(RESULT) + frame_consumer.describe(EMPTY):
        assert line in captured.out
    assert "not a prediction" in captured.err or "skipping" in captured.err
    assert sorted(p.name for p in drawn.iterdir()) == ["A_001.png", "B_001.png"]
    assert Image.open(drawn / "A_001.png").size == (400, 300)


def test_consumer_needs_frames_to_draw(capsys):
    with pytest.raises(SystemExit) as exited:
        frame_consumer.main(["--project", PROJECT, "--draw", "out"])
    assert exited.value.code == 2 and "--draw needs --frames" in capsys.readouterr().err
