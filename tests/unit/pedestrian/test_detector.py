"""Detector: decoding and post-processing without the model, then the model on the lab's
sample frames (DESIGN_FRAMES, default ../shared/design: tests/support/markers.py)."""

import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.core.models import MODELS_DIR_ENV
from pipelines.pedestrian import detector as det
from pipelines.pedestrian.detector import (
    Frame,
    PedestrianDetector,
    decode_frame,
    decode_image,
    detections_from_outputs,
    make_tile_batch,
    reduction_for,
)
from pipelines.pedestrian.geometry import DEFAULT_CAMERA
from pipelines.pedestrian.tiling import iou
from tests.support import markers

REPO = Path(__file__).resolve().parents[3]
DESIGN = markers.DESIGN
FRAMES = ("A_001.png", "A_002.png", "A_003.png")


def encode(array, fmt="PNG", mode=None):
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


# ---- decode_image ---------------------------------------------------------------------


def test_decode_png_rgba_to_rgb():
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    out = decode_image(encode(rgba))
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()


def test_decode_jpeg_and_grey():
    rgb = np.full((16, 16, 3), 128, dtype=np.uint8)
    assert decode_image(encode(rgb, "JPEG")).shape == (16, 16, 3)
    grey = np.full((5, 7), 9, dtype=np.uint8)
    out = decode_image(encode(grey))
    assert out.shape == (5, 7, 3) and (out == 9).all()
    assert decode_image(bytearray(encode(grey))).shape == (5, 7, 3)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"hello, not an image", "not a PNG or JPEG"),
        ("A_001.png", "must be bytes"),
    ],
)
def test_decode_rejects_non_images(data, reason):
    with pytest.raises(ValueError, match=reason):
        decode_image(data)


def test_decode_rejects_other_formats_and_corrupt_data():
    gif = encode(np.zeros((4, 4, 3), dtype=np.uint8), "GIF")
    with pytest.raises(ValueError, match="GIF is not accepted"):
        decode_image(gif)
    png = encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="could not be decoded"):
        decode_image(png[: len(png) // 2])


def test_decode_limits():
    png = encode(np.zeros((100, 200, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="more than the limit of 10 bytes"):
        decode_image(png, max_bytes=10)
    with pytest.raises(ValueError, match="100 = 20000 pixels, more than the limit of 19999"):
        decode_image(png, max_pixels=19_999)
    assert decode_image(png, max_pixels=20_000, max_bytes=len(png)).shape == (100, 200, 3)


def png_claiming(width, height):
    """A small PNG whose header claims width x height (the pixel data stays 1x1)."""
    png = bytearray(encode(np.zeros((1, 1, 3), dtype=np.uint8)))
    start = 8 + 8  # signature, then the IHDR chunk's length and type
    png[start : start + 8] = struct.pack(">II", width, height)
    png[start + 13 : start + 17] = struct.pack(">I", zlib.crc32(bytes(png[start - 4 : start + 13])))
    return bytes(png)


def mpo(first, *others, **options):
    """A multi-picture JPEG, as phones write them: `first` is the photo. Pillow's options
    (quality) are the JPEG encoder's."""
    buffer = io.BytesIO()
    pictures = [Image.fromarray(a) for a in others]
    Image.fromarray(first).save(
        buffer, format="MPO", save_all=True, append_images=pictures, **options
    )
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"  # not a plain JPEG
    return data


def test_an_mpo_decodes_as_its_first_picture():
    photo = gradient_frame(64, 48)
    data = mpo(photo, np.full((48, 64, 3), 200, np.uint8))
    jpeg = np.asarray(Image.open(io.BytesIO(encode(photo, "JPEG"))).convert("RGB"))
    assert np.array_equal(decode_image(data), jpeg)
    with pytest.raises(ValueError, match="more than the limit of 3071"):
        decode_image(data, max_pixels=3071)  # the first picture's size, from its header


@pytest.mark.parametrize("width,height", [(5000, 5000), (20000, 10000)])
def test_decode_rejects_huge_images_from_the_header(width, height):
    with pytest.raises(ValueError, match="large|more than the limit"):
        decode_image(png_claiming(width, height))


# ---- decode_frame: pixels at the scale the tiles need -----------------------------------


@pytest.mark.parametrize(
    "width,height,tile,expected",
    [
        (1920, 1080, 720, 2),  # the lab's frames: 360 px tiles, still above 300
        (3840, 2160, 720, 2),  # 180 px would be upsampled
        (3840, 2160, 2400, 4),  # min side 2160: 540 px at 1/4, 270 px at 1/8
        (960, 540, 720, 1),  # 540 px tiles: 270 px at half size
        (599, 1000, 720, 1),
        (600, 1000, 720, 2),
        (100, 50, 720, 1),
    ],
)
def test_reduction_never_shrinks_a_tile_below_the_model_input(width, height, tile, expected):
    assert reduction_for(width, height, tile) == expected


def gradient_frame(width=1920, height=1080):
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2).astype(np.uint8)


@pytest.mark.parametrize("fmt,mode", [("JPEG", None), ("PNG", None), ("PNG", "RGBA")])
def test_decode_frame_reduces_and_keeps_the_full_size(fmt, mode):
    rgb = gradient_frame()
    pixels = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]) if mode else rgb
    frame = decode_frame(encode(pixels, fmt, mode), reduce_for_tile=720)
    assert (frame.width, frame.height) == (1920, 1080)
    assert frame.image.size == (960, 540) and frame.image.mode == "RGB"
    # The same picture, half size: a smooth gradient survives DCT scaling and box averaging.
    half = np.asarray(Image.fromarray(rgb).reduce(2), dtype=np.int16)
    assert np.abs(np.asarray(frame.image, dtype=np.int16) - half).max() <= 6
    whole = decode_frame(encode(pixels, fmt, mode))
    assert whole.image.size == (1920, 1080)


def test_an_mpo_frame_is_reduced_like_its_jpeg():
    photo = gradient_frame()
    data = mpo(photo, np.zeros((1080, 1920, 3), np.uint8))
    frame, jpeg = (decode_frame(d, reduce_for_tile=720) for d in (data, encode(photo, "JPEG")))
    assert (frame.width, frame.height, frame.image.size) == (1920, 1080, (960, 540))
    assert np.array_equal(np.asarray(frame.image), np.asarray(jpeg.image))


def test_decode_frame_odd_sizes_and_grey_jpeg():
    frame = decode_frame(encode(gradient_frame(1921, 1081), "JPEG"), reduce_for_tile=720)
    assert (frame.width, frame.height) == (1921, 1081)
    assert frame.image.size == (961, 541)  # libjpeg rounds the scaled size up
    grey = decode_frame(encode(np.full((1080, 1920), 90, np.uint8), "JPEG"), reduce_for_tile=720)
    assert grey.image.mode == "RGB" and grey.image.size == (960, 540)
    assert np.abs(np.asarray(grey.image, dtype=np.int16) - 90).max() <= 2


@pytest.mark.parametrize("width,height", [(5000, 5000), (20000, 10000)])
def test_decode_frame_refuses_huge_images_from_the_header(width, height):
    with pytest.raises(ValueError, match="large|more than the limit"):
        decode_frame(png_claiming(width, height), reduce_for_tile=720)


def test_decode_frame_gives_decode_image_reasons():
    png = encode(np.zeros((100, 200, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="100 = 20000 pixels, more than the limit of 19999"):
        decode_frame(png, max_pixels=19_999, reduce_for_tile=720)
    with pytest.raises(ValueError, match="could not be decoded"):
        decode_frame(png[: len(png) // 2], reduce_for_tile=720)
    with pytest.raises(ValueError, match="not a PNG or JPEG"):
        decode_frame(b"nope", reduce_for_tile=720)


def test_a_png_decoder_failure_is_a_reason():
    png = encode(np.zeros((40, 50, 4), dtype=np.uint8))

    def broken(data):
        raise RuntimeError("{{function_node X}} Invalid PNG data, size 12 [Op:DecodePng]")

    with pytest.raises(
        ValueError,
        match=r"^PNG image could not be decoded: Invalid PNG "
        r"data, size 12$",
    ):
        decode_frame(png, png_decoder=broken)
    with pytest.raises(ValueError, match="decoded to"):
        decode_frame(png, png_decoder=lambda data: np.zeros((40, 49, 3), np.uint8))
    # Grey and 16-bit PNGs keep Pillow's conversions: the decoder is not asked.
    grey = decode_frame(encode(np.full((40, 50), 7, np.uint8)), png_decoder=broken)
    assert (np.asarray(grey.image) == 7).all()
    deep = decode_frame(png_rgb16(np.full((3, 5, 3), 0x1234, np.uint16)), png_decoder=broken)
    assert deep.image.size == (5, 3) and (np.asarray(deep.image) == 0x12).all()


def png_rgb16(pixels):
    """A 16-bit RGB PNG (Pillow writes none): filter byte 0, big-endian samples."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_tiles_of_a_reduced_frame_are_cut_where_the_full_frame_is():
    rgb = gradient_frame()
    windows = PedestrianDetector().windows(1920, 1080)
    full = make_tile_batch(rgb, windows).astype(np.int16)
    half = make_tile_batch(Frame(Image.fromarray(rgb).reduce(2), 1920, 1080), windows)
    # A window off by one tile step (400 or 360 px) would differ by 50+ levels here.
    assert np.abs(half.astype(np.int16) - full).max() <= 3


# ---- pure parts of the detector ---------------------------------------------------------


def test_default_graph_path(monkeypatch):
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    assert det.default_graph_path() == REPO / "models" / det.GRAPH_RELATIVE_PATH
    monkeypatch.setenv(MODELS_DIR_ENV, "/opt/models")
    assert det.default_graph_path() == Path("/opt/models") / det.GRAPH_RELATIVE_PATH
    assert PedestrianDetector().graph_path == det.default_graph_path()


def test_missing_graph_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nope.pb"
    d = PedestrianDetector(missing)
    with pytest.raises(FileNotFoundError) as err:
        d.load()
    assert str(missing) in str(err.value)
    assert det.INSTALL_HINT in str(err.value)
    assert not d.loaded
    with pytest.raises(RuntimeError, match="load"):
        d.run_model(np.zeros((1, 300, 300, 3), np.uint8))


@pytest.mark.parametrize("kwargs", [{"score_threshold": 1.5}, {"tile": 0}, {"overlap": 1.0}])
def test_constructor_validates(kwargs):
    with pytest.raises(ValueError):
        PedestrianDetector(**kwargs)


def test_detector_pickles_before_load():
    d = pickle.loads(pickle.dumps(PedestrianDetector(score_threshold=0.4, tile=640)))
    assert (d.score_threshold, d.tile, d.loaded) == (0.4, 640, False)


def test_make_tile_batch():
    rgb = np.zeros((100, 200, 3), dtype=np.uint8)
    rgb[:, 100:] = 255
    batch = make_tile_batch(rgb, [(0, 0, 100, 100), (100, 0, 200, 100)], size=30)
    assert batch.shape == (2, 30, 30, 3) and batch.dtype == np.uint8
    assert (batch[0] == 0).all() and (batch[1] == 255).all()
    with pytest.raises(ValueError, match="HxWx3"):
        make_tile_batch(np.zeros((10, 10), np.uint8), [(0, 0, 5, 5)])
    with pytest.raises(ValueError, match="uint8"):
        make_tile_batch(np.zeros((10, 10, 3), np.float32), [(0, 0, 5, 5)])


def crop_by_crop(image: Image.Image, boxes, size: int) -> np.ndarray:
    return np.stack(
        [np.asarray(image.crop(box).resize((size, size), Image.BILINEAR)) for box in boxes]
    )


@pytest.mark.parametrize(
    "width, height, windows",
    [
        # the job's: a 1080p frame's eight 720 px windows on its half-scale pixels
        (1920, 1080, PedestrianDetector().windows(1920, 1080)),
        # windows sharing a column range but not their rows, an upsampled one, a lone one
        (640, 480, [(0, 0, 400, 300), (0, 200, 400, 480), (0, 10, 400, 90), (500, 7, 611, 402)]),
    ],
)
def test_tiles_share_their_column_pass_with_the_same_pixels_as_crop_by_crop(width, height, windows):
    # Noise: every pixel differs from its neighbours, so any change in the filter's inputs
    # or rounding shows. Cut from a half-scale frame as the job's are.
    rgb = np.random.default_rng(7).integers(0, 256, (height // 2, width // 2, 3), np.uint8)
    frame = Frame(Image.fromarray(rgb), width, height)
    boxes = [tuple(round(v / 2) for v in window) for window in windows]
    expected = crop_by_crop(frame.image, boxes, det.INPUT_SIZE)
    assert np.array_equal(make_tile_batch(frame, windows), expected)


def test_detections_from_outputs_maps_filters_and_merges():
    windows = [(0, 0, 100, 100), (50, 0, 150, 100)]
    num = np.array([3, 2], dtype=np.float32)
    scores = np.array([[0.9, 0.8, 0.3, 0], [0.7, 0.95, 0, 0]], dtype=np.float32)
    boxes = np.zeros((2, 4, 4), dtype=np.float32)
    boxes[0, 0] = [0.1, 0.6, 0.9, 0.8]  # x 60-80, y 10-90: upright
    boxes[0, 1] = [0.1, 0.0, 0.5, 0.9]  # wider than tall: dropped
    boxes[0, 2] = [0.1, 0.1, 0.9, 0.2]  # below the threshold
    boxes[1, 0] = [0.1, 0.1, 0.9, 0.3]  # x 60-80 again, from the second tile: merged
    boxes[1, 1] = [0.2, 0.7, 0.8, 0.8]  # x 120-130, another class
    classes = np.array([[1, 1, 1, 1], [1, 2, 1, 1]], dtype=np.float32)
    out = detections_from_outputs(
        windows, num, scores, boxes, classes, 150, 100, score_threshold=0.5
    )
    assert out == [([60, 10, 80, 90], pytest.approx(0.9))]
    assert all(isinstance(v, int) for v in out[0][0])
    everything = detections_from_outputs(
        windows, num, scores, boxes, classes, 150, 100, score_threshold=0.5, person_class=None
    )
    assert [b for b, _ in everything] == [[120, 20, 130, 80], [60, 10, 80, 90]]


# ---- the model on the lab's frames --------------------------------------------------------

needs_model = markers.needs_detector
needs_design = markers.needs_design


@pytest.fixture(scope="module")
def detector():
    d = PedestrianDetector().load()
    yield d
    d.close()


@pytest.fixture(scope="module")
def labels():
    from tools.fit_camera import load_labels

    return {s.name: s for s in load_labels(DESIGN / "Labels.csv")}


def frame(name):
    return decode_image((DESIGN / name).read_bytes())


def as_jpeg(name, quality=92):
    # What tools/demo.py sends: the lab's PNG frames as JPEG at quality 92.
    buffer = io.BytesIO()
    Image.open(DESIGN / name).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# The full-scale array is the reference; the job decodes PNG and JPEG at reduced scale.
INPUTS = {
    "full-scale array": lambda d, name: frame(name),
    "png, reduced": lambda d, name: d.decode((DESIGN / name).read_bytes()),
    "jpeg, reduced": lambda d, name: d.decode(as_jpeg(name)),
}


@needs_model
@needs_design
@pytest.mark.parametrize("source", INPUTS)
def test_finds_the_child_in_the_a_frames(detector, labels, source):
    matched = 0
    for name in FRAMES:
        truth = labels[name]
        found = detector.detect(INPUTS[source](detector, name))
        assert len(found) <= 1, f"{name}: more than one pedestrian: {found}"
        for box, score in found:
            overlap = iou(box, truth.box)
            est = DEFAULT_CAMERA.distance(box, image_height=1080)
            print(
                f"{name}: box {box} score {score:.2f} IoU {overlap:.2f} "
                f"distance {est.distance_m:.2f} m ({est.kind}) truth {truth.distance_m:.2f} m"
            )
            assert overlap >= 0.5, f"{name}: box {box} is not the child {truth.box}"
            assert abs(est.distance_m - truth.distance_m) <= 0.5
            matched += 1
    assert matched >= 2


@needs_model
def test_the_loaded_detector_decodes_png_to_the_same_pixels(detector):
    rgba = np.random.default_rng(3).integers(0, 255, (600, 700, 4), dtype=np.uint8)
    for data in (encode(rgba, mode="RGBA"), encode(rgba[..., :3])):
        ours = detector.decode(data)
        pillow = decode_frame(data, reduce_for_tile=detector.tile)
        assert ours.image.size == pillow.image.size == (350, 300)
        assert np.array_equal(np.asarray(ours.image), np.asarray(pillow.image))
    png = encode(rgba[..., :3])
    with pytest.raises(ValueError, match="PNG image could not be decoded"):
        detector.decode(png[: len(png) // 2])


@needs_model
@needs_design
def test_the_loaded_detector_decodes_a_lab_frame_as_pillow_does(detector):
    data = (DESIGN / "A_002.png").read_bytes()
    ours = np.asarray(detector.decode(data).image)
    assert np.array_equal(ours, np.asarray(decode_frame(data, reduce_for_tile=720).image))


@needs_model
@needs_design
def test_an_mpo_of_a_lab_frame_is_detected_like_its_jpeg(detector):
    photo = np.asarray(Image.open(DESIGN / "A_001.png").convert("RGB"))
    other = np.asarray(Image.open(DESIGN / "B_001.png").convert("RGB"))
    found = detector.detect(detector.decode(mpo(photo, other, quality=92)))
    assert found == detector.detect(detector.decode(as_jpeg("A_001.png")))
    assert len(found) == 1


@needs_model
@needs_design
def test_reduced_decoding_finds_the_same_boxes(detector):
    for name in FRAMES:
        reference = detector.detect(frame(name))
        for data in ((DESIGN / name).read_bytes(), as_jpeg(name)):
            found = detector.detect(detector.decode(data))
            assert len(found) == len(reference), f"{name}: {found} vs {reference}"
            for (box, score), (ref_box, ref_score) in zip(found, reference):
                assert iou(box, ref_box) >= 0.9, f"{name}: {box} vs {ref_box}"
                assert abs(score - ref_score) <= 0.1


@needs_model
@needs_design
@pytest.mark.parametrize("source", INPUTS)
def test_no_pedestrian_in_b_001(detector, source):
    assert detector.detect(INPUTS[source](detector, "B_001.png")) == []


@needs_model
def test_loaded_detector_still_pickles_and_reloads(detector):
    copy = pickle.loads(pickle.dumps(detector))
    assert not copy.loaded
    copy.load()
    try:
        assert copy.detect(np.zeros((200, 300, 3), np.uint8)) == []
    finally:
        copy.close()
