"""Distance to a detected pedestrian from its box, for a fixed camera over flat ground.

Two estimates, both from a pinhole camera looking level along the road:

- whole box: the box spans the pedestrian from head to feet, so its height in pixels is
  `focal * pedestrian_height / depth` ("height");
- box cut at the image bottom (the pedestrian is close and the feet are out of frame): the
  box height says nothing, but the head-top row still does, because the head is
  `camera_height - pedestrian_height` below the camera and the ground is flat:
  `top_row - horizon_row = focal * (camera_height - pedestrian_height) / depth` ("head_top").

The depth is along the optical axis; the distance reported is on the ground plane from the
car's reference point (what Labels.csv measures), so the box's column adds the lateral
offset and `forward_offset_m` the camera's position on the car.

The defaults are fitted on the lab's Labels.csv by `python -m tools.fit_camera`; refit
them there rather than editing them by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

HEIGHT = "height"
HEAD_TOP = "head_top"

# The lab's pedestrian is a CARLA child model 1.30 m tall (Labels.csv pedestrian_Height).
PEDESTRIAN_HEIGHT_M = 1.30
# Camera A frames are 1920x1080; the fit and the pixel constants below are in that grid.
IMAGE_WIDTH = 1920
IMAGE_HEIGHT = 1080
# Label boxes cut by the frame end at rows 1075-1080 and detector boxes a little higher
# (A_001's ends at 1056): a box this close to the bottom is treated as cut.
BOTTOM_MARGIN_PX = 30.0

# Fitted by `python -m tools.fit_camera --labels ../shared/design/Labels.csv` (146 labelled
# camera-A boxes, Huber-weighted least squares on the ground-plane distance).
# Mean error 0.12 m over all boxes (height 0.10, head_top 0.13); the two worst (A_031,
# A_090, 2.3 m) are labels whose box and locations disagree with their neighbours.
FOCAL_PX = 2018.0  # about 51 degrees horizontal field of view
HORIZON_ROW = 533.0  # close to the centre row: the camera looks level
CAMERA_HEIGHT_M = 1.575
FORWARD_OFFSET_M = -0.049  # the camera sits at the car's reference point


class DistanceEstimate(NamedTuple):
    distance_m: float  # on the ground plane, from the car's reference point
    kind: str  # HEIGHT or HEAD_TOP: which cue the estimate came from
    depth_m: float  # along the optical axis, from the camera
    lateral_m: float  # to the right of the optical axis (negative: left)


@dataclass(frozen=True)
class CameraModel:
    focal_px: float = FOCAL_PX
    horizon_row: float = HORIZON_ROW
    camera_height_m: float = CAMERA_HEIGHT_M
    forward_offset_m: float = FORWARD_OFFSET_M
    pedestrian_height_m: float = PEDESTRIAN_HEIGHT_M
    image_height: int = IMAGE_HEIGHT
    image_width: int = IMAGE_WIDTH
    bottom_margin_px: float = BOTTOM_MARGIN_PX

    def __post_init__(self):
        if not self.focal_px > 0:
            raise ValueError(f"focal_px must be positive, got {self.focal_px}")
        if not self.pedestrian_height_m > 0:
            raise ValueError(
                f"pedestrian_height_m must be positive, got {self.pedestrian_height_m}"
            )
        if not (self.image_height > 0 and self.image_width > 0):
            raise ValueError("image_height and image_width must be positive")

    @property
    def head_drop_m(self) -> float:
        """How far below the camera the head top is; the head-top cue needs it positive."""
        return self.camera_height_m - self.pedestrian_height_m

    def _to_model_pixels(self, box: Sequence[float], image_height: float | None):
        # Frames resized from the camera's native size keep the same angles: rescale the box
        # into the grid the constants were fitted in.
        x1, y1, x2, y2 = (float(v) for v in box)
        if image_height is None or image_height == self.image_height:
            return x1, y1, x2, y2
        if image_height <= 0:
            raise ValueError(f"image_height must be positive, got {image_height}")
        s = self.image_height / float(image_height)
        return x1 * s, y1 * s, x2 * s, y2 * s

    def foot_row(self, top_row: float) -> float | None:
        """Where the feet of a pedestrian whose head top is at `top_row` would be."""
        if self.head_drop_m <= 0 or top_row <= self.horizon_row:
            return None
        return self.horizon_row + (top_row - self.horizon_row) * (
            self.camera_height_m / self.head_drop_m
        )

    def is_cut(self, box: Sequence[float], image_height: float | None = None) -> bool:
        """True when the box (x1, y1, x2, y2) does not reach the pedestrian's feet.

        Either it ends at the frame bottom, or its head is so low that the feet of a
        pedestrian of the known height would be below the frame: detector boxes of a cut
        pedestrian often stop tens of pixels above the edge, and their height would then
        read as a pedestrian much farther away.
        """
        _, y1, _, y2 = self._to_model_pixels(box, image_height)
        limit = self.image_height - self.bottom_margin_px
        if y2 >= limit:
            return True
        foot = self.foot_row(y1)
        return foot is not None and foot >= limit

    def depth_from_height(self, box_height_px: float) -> float | None:
        if box_height_px <= 0:
            return None
        return self.focal_px * self.pedestrian_height_m / box_height_px

    def depth_from_head_top(self, top_row: float) -> float | None:
        # At or above the horizon the head-top cue has no finite distance.
        if self.head_drop_m <= 0 or top_row <= self.horizon_row:
            return None
        return self.focal_px * self.head_drop_m / (top_row - self.horizon_row)

    def distance(
        self, box: Sequence[float], image_height: float | None = None
    ) -> DistanceEstimate | None:
        """Ground-plane distance to the pedestrian in `box` (pixels x1, y1, x2, y2).

        `image_height` is the height of the frame the box is in (default: the camera's).
        Returns None when the box carries no usable distance (empty, or cut with the head
        at or above the horizon).
        """
        x1, y1, x2, y2 = self._to_model_pixels(box, image_height)
        if not (x2 > x1 and y2 > y1):
            return None
        if self.is_cut((x1, y1, x2, y2)):
            kind, depth = HEAD_TOP, self.depth_from_head_top(y1)
        else:
            kind, depth = HEIGHT, self.depth_from_height(y2 - y1)
        if depth is None or not math.isfinite(depth):
            return None
        lateral = ((x1 + x2) / 2.0 - self.image_width / 2.0) * depth / self.focal_px
        return DistanceEstimate(
            distance_m=math.hypot(depth + self.forward_offset_m, lateral),
            kind=kind,
            depth_m=depth,
            lateral_m=lateral,
        )


DEFAULT_CAMERA = CameraModel()
