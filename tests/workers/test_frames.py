import numpy as np

from workers.decoding import prepare_image
from workers.frames import FrameBatch, FrameBatchBuilder
from workers.letterbox import LetterboxSpec


def test_frames_placed_one_by_one_equal_their_canvases_stacked(coco_images):
    spec = LetterboxSpec()
    frames = [prepare_image(path.read_bytes(), spec) for path in coco_images[:4]]
    builder = FrameBatchBuilder(spec, capacity=6)
    builder.add(frames[0])
    builder.add(None)
    for frame in frames[1:]:
        builder.add(frame)
    batch = builder.build()
    assert len(batch) == 5 and not builder.full()
    np.testing.assert_array_equal(batch.images[[0, 2, 3, 4]], np.stack([f.image for f in frames]))
    assert np.all(batch.images[1] == spec.pad_value)
    assert batch.heights.tolist() == [frames[0].height, 0, *(f.height for f in frames[1:])]
    assert batch.scales[1] == 1.0 and batch.scales[0] == frames[0].scale
    assert (batch.pad_tops[0], batch.pad_lefts[0]) == (frames[0].pad_top, frames[0].pad_left)


def test_a_builder_is_full_at_capacity_and_stack_places_every_frame(coco_images):
    spec = LetterboxSpec(bgr=True)
    frames = [prepare_image(path.read_bytes(), spec) for path in coco_images[:3]]
    batch = FrameBatch.stack(frames)
    assert batch.images.shape == (3, 640, 640, 3)
    np.testing.assert_array_equal(batch.images, np.stack([f.image for f in frames]))
    builder = FrameBatchBuilder(spec, capacity=1)
    builder.add(frames[0])
    assert builder.full()
