"""hwgen.detect (anchors, decoding, NMS), images as inputs, the config file, and `hwgen detect`."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import hwgen
from hwgen.cli import main
from hwgen.detect import _iou, decode, detect_outputs, non_max_suppression, score_of, ssd_anchors
from hwgen.errors import InvalidOptionError
from hwgen.images import input_geometry, load_image
from hwgen.modelconfig import Anchors, NmsKind, config_for, load_config, parse_config

from ..conftest import DETECT, PERSON, load_pb, ort_run

BLAZEFACE = DETECT / "blazeface_qdq_s8s8_pc.onnx"
ASTRONAUT = DETECT / "astronaut.png"
PERSON_MODEL = PERSON / "person_detect_qdq.onnx"


@pytest.fixture(scope="module")
def blazeface():
    return hwgen.compile(BLAZEFACE)


@pytest.fixture(scope="module")
def config():
    return config_for(BLAZEFACE)


# -- anchors ---------------------------------------------------------------------------------------------

def test_blazeface_anchors_follow_mediapipe(config):
    """16x16 cells x 2 anchors (stride 8) then 8x8 cells x 6 (three stride-16 layers merged)."""
    a = ssd_anchors(config.detect.anchors)
    assert a.shape == (896, 4) and a.dtype == np.float32
    assert np.array_equal(a[0], a[1]) and a[0, 0] == a[0, 1] == 0.5 / 16
    assert a[2, 0] == 1.5 / 16 and a[32, 1] == 1.5 / 16        # next column, next row
    assert np.all(a[512:518] == a[512]) and a[512, 0] == 0.5 / 8 and a[518, 0] == 1.5 / 8
    assert np.all(a[:, 2:] == 1.0)                              # fixed anchor size


def test_anchor_sizes_follow_scales_and_aspect_ratios():
    """TensorFlow-style anchors: per layer the aspect ratios at the layer's scale plus the
    interpolated one; the lowest layer reduced to (0.1, 1), (scale, 2), (scale, 0.5)."""
    opts = Anchors(num_layers=3, min_scale=0.2, max_scale=0.9, input_size_height=64, input_size_width=96,
                   strides=(16, 32, 64), aspect_ratios=(1.0, 2.0, 0.5), reduce_boxes_in_lowest_layer=True)
    a = ssd_anchors(opts).astype(np.float64)
    per_cell = [3, 4, 4]
    cells = [(4, 6), (2, 3), (1, 2)]
    assert len(a) == sum(n * h * w for n, (h, w) in zip(per_cell, cells))
    assert np.allclose(a[0, 2:], [0.1, 0.1]) and np.allclose(a[1, 2:] ** 2 / 2, [0.04, 0.01])
    second = a[3 * 24:3 * 24 + 4]
    scale, following = 0.2 + 0.35, 0.9
    assert np.allclose(second[:, 2] * second[:, 3], [scale ** 2] * 3 + [scale * following], rtol=1e-6)
    assert np.allclose(second[:3, 2] / second[:3, 3], [1, 2, 0.5], rtol=1e-6)


# -- decoding and scores ---------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-128, 127), min_size=16, max_size=16), st.integers(0, 895), st.booleans())
def test_decode_offsets_boxes_from_their_anchor(config, raw, index, reverse):
    d = replace(config.detect.decode, reverse_output_order=reverse)
    anchors = ssd_anchors(config.detect.anchors)
    head = np.zeros((896, 16), np.float32)
    head[index] = np.array(raw, np.float32) * np.float32(0.5)
    boxes, keypoints = decode(head, d, anchors)
    x, y, w, h = (head[index, k] / 128 for k in ((0, 1, 2, 3) if reverse else (1, 0, 3, 2)))
    ax, ay = anchors[index, :2]
    assert np.allclose(boxes[index], [ax + x - w / 2, ay + y - h / 2, ax + x + w / 2, ay + y + h / 2], atol=1e-6)
    kx, ky = (head[index, 4], head[index, 5]) if reverse else (head[index, 5], head[index, 4])
    assert np.allclose(keypoints[index, 0], [ax + kx / 128, ay + ky / 128], atol=1e-6)
    others = np.delete(np.arange(896), index)
    assert np.array_equal(boxes[others, 0], anchors[others, 0]) and np.array_equal(boxes[others, 2], anchors[others, 0])


def test_exponential_sizes_and_clipped_scores(config):
    d = replace(config.detect.decode, apply_exponential_on_box_size=True, w_scale=5.0, h_scale=5.0,
                score_clipping_thresh=3.0)
    anchors = ssd_anchors(config.detect.anchors)
    head = np.zeros((896, 16), np.float32)
    head[0, 2] = 5 * math.log(2)
    boxes, _ = decode(head, d, anchors)
    assert boxes[0, 2] - boxes[0, 0] == pytest.approx(2.0, rel=1e-6) and boxes[0, 3] - boxes[0, 1] == 1.0
    scores = score_of(np.array([-50, -3, 0, 3, 50], np.float32), d)
    assert scores.dtype == np.float32 and scores[2] == 0.5
    assert scores[0] == scores[1] and scores[3] == scores[4] == np.float32(1 / (1 + math.exp(-3)))


# -- NMS -------------------------------------------------------------------------------------------------

boxes_st = st.lists(st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.02, 0.5), st.floats(0.02, 0.5),
                              st.floats(0.5, 1.0)), min_size=1, max_size=40)


def _candidates(drawn):
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h, _ in drawn], np.float32)
    scores = np.array([s for *_, s in drawn], np.float32)
    order = np.lexsort((np.arange(len(scores)), -scores.astype(np.float64)))
    return boxes, scores, order


@settings(max_examples=60, deadline=None)
@given(boxes_st, st.floats(0.1, 0.7))
def test_hard_nms_keeps_the_best_of_each_overlapping_group(config, drawn, threshold):
    cfg = replace(config.detect, nms=replace(config.detect.nms, algorithm=NmsKind.DEFAULT,
                                             min_suppression_threshold=threshold))
    boxes, scores, order = _candidates(drawn)
    kept = non_max_suppression(order, scores, boxes, np.zeros((len(boxes), 0, 2), np.float32),
                               np.zeros(len(boxes), np.int64), cfg)
    ids = [d.anchor for d in kept]
    assert ids[0] == order[0] and [scores[i] for i in ids] == sorted((scores[i] for i in ids), reverse=True)
    for k, i in enumerate(ids):
        assert not (_iou(boxes[i], boxes[ids[:k]]) > np.float32(threshold)).any() if k else True
    for i in set(range(len(boxes))) - set(ids):   # every dropped box overlaps a kept one ranked above it
        rank = list(order).index(i)
        above = [j for j in ids if list(order).index(j) < rank]
        assert (_iou(boxes[i], boxes[above]) > np.float32(threshold)).any()


@settings(max_examples=60, deadline=None)
@given(boxes_st)
def test_weighted_nms_averages_each_group_by_score(config, drawn):
    cfg = replace(config.detect, nms=replace(config.detect.nms, algorithm=NmsKind.WEIGHTED))
    boxes, scores, order = _candidates(drawn)
    merged = non_max_suppression(order, scores, boxes, np.zeros((len(boxes), 0, 2), np.float32),
                                 np.zeros(len(boxes), np.int64), cfg)
    remaining = list(order)
    for d in merged:   # replay: the group is the remaining boxes overlapping the best one
        top = remaining[0]
        group = [i for i in remaining if i == top or _iou(boxes[top], boxes[[i]])[0] > np.float32(0.3)]
        w = scores[group].astype(np.float64)
        assert d.anchor == top and d.score == scores[top]
        assert np.allclose(d.box, (boxes[group] * w[:, None]).sum(0) / w.sum(), atol=1e-5)
        remaining = [i for i in remaining if i not in group]
    assert not remaining


def test_identical_boxes_merge_into_one(config):
    boxes = np.array([[0.1, 0.1, 0.3, 0.3]] * 3 + [[0.6, 0.6, 0.8, 0.8]], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.8], np.float32)
    out = non_max_suppression(np.array([1, 3, 2, 0]), scores, boxes, np.zeros((4, 0, 2), np.float32),
                              np.zeros(4, np.int64), config.detect)
    assert [(d.anchor, d.score) for d in out] == [(1, np.float32(0.9)), (3, np.float32(0.8))]
    assert np.allclose(out[0].box, boxes[0]) and np.allclose(out[1].box, boxes[3])   # (b * s) / s: within an ulp


# -- BlazeFace on the astronaut photograph -----------------------------------------------------------------

def test_blazeface_finds_the_astronauts_face_as_onnxruntime_does(blazeface, config):
    feeds, placement = hwgen.image_input(blazeface, ASTRONAUT)
    ours = detect_outputs(hwgen.run(blazeface, feeds), config.detect)
    session_outputs = ort_run(BLAZEFACE, feeds)
    theirs = detect_outputs(dict(zip(["regressors", "classificators"], session_outputs)), config.detect)
    assert len(ours) == len(theirs) == 1
    assert abs(ours[0].score - theirs[0].score) < 0.01 and ours[0].score > 0.9
    assert _iou(np.array(ours[0].box, np.float32), np.array([theirs[0].box], np.float32))[0] > 0.95
    x0, y0 = placement.to_image(*ours[0].box[:2])
    x1, y1 = placement.to_image(*ours[0].box[2:])
    assert 160 < x0 < 200 and 60 < y0 < 100 and 250 < x1 < 290 and 155 < y1 < 195   # her face, in pixels


def test_hwgen_detect_prints_the_face_and_draws_it(tmp_path, capsys):
    drawing = tmp_path / "faces.png"
    assert main(["detect", str(BLAZEFACE), "--input", str(ASTRONAUT), "--draw", str(drawing)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    found = json.loads(lines[0])
    assert found["score"] > 0.9 and len(found["keypoints"]) == 6 and found["class"] == 0
    x0, y0, x1, y1 = found["box"]
    assert all(x0 < x < x1 and y0 < y < y1 for x, y in found["keypoints"][:4])   # eyes, nose, mouth inside
    drawn = np.asarray(Image.open(drawing).convert("RGB")).astype(int)
    photo = np.asarray(Image.open(ASTRONAUT).convert("RGB")).astype(int)
    assert drawn.shape == photo.shape
    changed = np.argwhere((drawn != photo).any(axis=2))
    assert changed[:, 1].min() >= x0 - 12 and changed[:, 1].max() <= x1 + 12    # only on and around the box
    assert (drawn[round(y0), round(x0) + 5:round(x1) - 5] == [0, 255, 64]).all()  # its top edge


def test_image_preprocessing_matches_the_bundled_input(blazeface):
    """Pillow's bilinear downscaling of the photograph against skimage's anti-aliased resize that
    made astronaut_128.npy: close, in [-1, 1]."""
    feeds, _ = hwgen.image_input(blazeface, ASTRONAUT)
    x = feeds["input"]
    bundled = np.load(DETECT / "astronaut_128.npy")
    assert x.shape == bundled.shape == (1, 3, 128, 128) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1 and np.abs(x - bundled).mean() < 0.02


@pytest.mark.parametrize("case, image", [(0, "person.bmp"), (1, "no_person.bmp")])
def test_person_detect_images_are_its_test_vectors(case, image, capsys):
    """The TFLite Micro images hold the int8 input values as bytes: the bundled config wraps them."""
    compiled = hwgen.compile(PERSON_MODEL)
    feeds, _ = hwgen.image_input(compiled, PERSON / image)
    bundled = load_pb(PERSON / "cases" / f"test_data_set_{case}" / "input_0.pb")
    assert np.array_equal(next(iter(feeds.values())), bundled)
    assert main(["run", str(PERSON_MODEL), "--input", str(PERSON / image)]) == 0
    logits = hwgen.run(compiled, bundled)
    assert capsys.readouterr().out.strip().endswith(np.array2string(logits, threshold=64))
    assert (logits[0, 1] > logits[0, 0]) == (image == "person.bmp")


def test_letterbox_places_the_input_in_the_image(tmp_path, blazeface):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (255, 255, 255)).save(wide)
    cfg = replace(config_for(BLAZEFACE), image=replace(config_for(BLAZEFACE).image,
                                                       resize=hwgen.modelconfig.Resize.LETTERBOX))
    x, placement = load_image(wide, blazeface.graph.input_ports[0], cfg.image)
    assert x[0, 0, 0, 0] == -1 and x[0, 0, 64, 64] == 1        # black band above, white photo in the middle
    assert placement.to_image(0, 0) == (0, -50) and placement.to_image(1, 1) == (200, 150)


# -- bad input: one line, exit 2, nothing written ----------------------------------------------------------

def _write(path, text):
    path.write_text(text)
    return path


BAD_CONFIGS = {
    "not json": ("{", "not valid JSON (line 1, column 2"),
    "missing key": ('{"detect": {"anchors": {"num_layers": 1}, "decode": {}}}', "detect.anchors.min_scale: missing"),
    "unknown key": ('{"image": {"colour": "RGB"}}', "image.colour: unknown key"),
    "wrong type": ('{"image": {"scale": "big"}}', "image.scale: must be a list of numbers"),
    "bad choice": ('{"image": {"resize": "crop"}}', "image.resize: must be one of 'stretch', 'letterbox', 'none'"),
    "strides": ('{"detect": {"anchors": {"num_layers": 2, "min_scale": 0.1, "max_scale": 0.5, '
                '"input_size_height": 8, "input_size_width": 8, "strides": [8]}, "decode": {}}}',
                "detect.anchors.strides: has 1 values for num_layers 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line(name, tmp_path, capsys):
    text, message = BAD_CONFIGS[name]
    path = _write(tmp_path / "c.json", text)
    with pytest.raises(InvalidOptionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(path)
    drawing = tmp_path / "d.png"
    code = main(["detect", str(BLAZEFACE), "--input", str(ASTRONAUT), "--config", str(path), "--draw", str(drawing)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and not drawing.exists()


def test_compile_checks_a_config_it_is_given(tmp_path, capsys):
    bad = _write(tmp_path / "c.json", '{"detect": {"anchors": {}}}')
    out = tmp_path / "out"
    assert main(["compile", str(BLAZEFACE), "-o", str(out), "--config", str(bad)]) == 2
    assert "detect.decode: missing" in capsys.readouterr().err and not out.exists()


def test_anchor_count_must_match_the_head(tmp_path, capsys):
    data = json.loads((DETECT / "blazeface_qdq_s8s8_pc.json").read_text())
    data["detect"]["anchors"]["strides"] = [8, 16, 32, 32]   # 16x16x2 + 8x8x2 + 4x4x4 anchors
    path = _write(tmp_path / "c.json", json.dumps(data))
    drawing = tmp_path / "d.png"
    code = main(["detect", str(BLAZEFACE), "--input", str(ASTRONAUT), "--config", str(path), "--draw", str(drawing)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "anchor options give 704 anchors; decode.num_boxes is 896" in err and not drawing.exists()


@pytest.mark.parametrize("content, message", [
    (b"GIF89a not really", "not an image Pillow can read"),
    (b"", "not an image Pillow can read"),
])
def test_an_image_that_is_not_an_image(tmp_path, capsys, content, message):
    bad = tmp_path / "photo.png"
    bad.write_bytes(content)
    for argv in (["detect", str(BLAZEFACE), "--input", str(bad)], ["run", str(BLAZEFACE), "--input", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_other_detect_refusals(tmp_path, capsys):
    no_config = tmp_path / "model.onnx"
    no_config.write_bytes(BLAZEFACE.read_bytes())
    cases = [
        (["detect", str(no_config), "--input", str(ASTRONAUT)], "no config file (looked for"),
        (["run", str(no_config), "--input", str(ASTRONAUT)], "no config file (looked for"),
        (["detect", str(PERSON_MODEL), "--input", str(ASTRONAUT)], "no 'detect' section"),
        (["detect", str(BLAZEFACE), "--input", str(ASTRONAUT), "--draw", str(tmp_path / "d.jpg")], "writes a PNG"),
        (["detect", str(BLAZEFACE), "--input", str(tmp_path / "none.png")], "no such file"),
        (["run", str(PERSON_MODEL), "--input", str(ASTRONAUT), "--config",
          str(_write(tmp_path / "rgb.json", '{"image": {"color": "RGB"}}'))], "has 1 channel(s)"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "d.jpg").exists()


def test_config_parsing_fills_mediapipe_defaults():
    cfg = parse_config({"detect": {"anchors": {"num_layers": 1, "min_scale": 0.2, "max_scale": 0.2,
                                               "input_size_height": 32, "input_size_width": 32, "strides": [8]},
                                   "decode": {"boxes": "b", "scores": "s", "num_boxes": 32, "num_coords": 4}}},
                       "inline")
    assert cfg.image is None and cfg.detect.nms.algorithm is NmsKind.DEFAULT
    assert cfg.detect.decode.reverse_output_order is False and cfg.detect.anchors.anchor_offset_x == 0.5
    assert len(ssd_anchors(cfg.detect.anchors)) == 32   # 4x4 cells, aspect ratio 1 + interpolated


def test_detections_need_float_outputs(config):
    with pytest.raises(InvalidOptionError, match="decodes the model's float outputs"):
        detect_outputs({"regressors": np.zeros((1, 896, 16), np.int8), "classificators": np.zeros((1, 896, 1))},
                       config.detect)
    with pytest.raises(InvalidOptionError, match="no output 'classificators'"):
        detect_outputs({"regressors": np.zeros((1, 896, 16), np.float32)}, config.detect)



def test_run_writes_an_npz_of_the_outputs_by_name(tmp_path, capsys, blazeface):
    npy, npz = tmp_path / "y.npy", tmp_path / "y.npz"
    assert main(["run", str(BLAZEFACE), "--input", str(ASTRONAUT), "--output", str(npy)]) == 2
    err = capsys.readouterr().err
    assert "the model has 2 outputs ('regressors', 'classificators'); give an .npz file" in err and not npy.exists()
    assert main(["run", str(BLAZEFACE), "--input", str(ASTRONAUT), "--output", str(npz)]) == 0
    saved = np.load(npz)
    feeds, _ = hwgen.image_input(blazeface, ASTRONAUT)
    want = hwgen.run(blazeface, feeds)
    assert sorted(saved.files) == sorted(want) and all(np.array_equal(saved[k], want[k]) for k in want)


@pytest.mark.parametrize("config_file", sorted(p.name for p in (DETECT.glob("*.json"))) + ["person_detect_qdq.json"])
def test_bundled_configs_fit_their_models(config_file):
    path = (PERSON if config_file.startswith("person") else DETECT) / config_file
    compiled = hwgen.compile(path.with_suffix(".onnx"))
    config = load_config(path)
    port = compiled.graph.input_ports[0]
    layout, h, w, c = input_geometry(port, config.image)
    assert (h, w, c) == tuple(port.shape[2:]) + (port.shape[1],) and layout.value == "NCHW"
    if config.detect is not None:
        assert len(ssd_anchors(config.detect.anchors)) == config.detect.decode.num_boxes
