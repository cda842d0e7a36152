import cv2
import numpy as np

from edge_agent.annotate import REGION_COLOUR, annotate, label_for


def test_annotate_draws_label_bar_and_region_outline():
    preview = np.full((240, 320, 3), 255, np.uint8)
    jpeg = annotate(preview, label_for("open", 0.934), region=(0.5, 0.5, 1.0, 1.0), quality=95)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == preview.shape
    assert img[5:15, 5:40].mean() < 200  # the dark label bar, top left
    edge = img[120:240, 159:162].reshape(-1, 3).mean(axis=0)  # the region's left edge at x=160
    assert abs(edge[2] - REGION_COLOUR[2]) < 60 and edge[0] < 120
    assert img[60, 60].mean() > 240  # outside bar and region: untouched
    assert (preview == 255).all()  # the input is not drawn on


def test_label_for():
    assert label_for("closed", 0.5) == "closed 50%"
