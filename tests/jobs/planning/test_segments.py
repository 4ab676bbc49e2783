from jobs.planning.segments import Segment, segments_for
from workers.video import Sampling, VideoInfo

CFR = VideoInfo(fps=12.0, frames=48, exact_count=True, splittable=True)


def test_long_video_is_cut_every_segment_frames_and_last_range_stays_open():
    segments = segments_for(CFR, Sampling(stride=4), segment_frames=20)
    assert [(s.start, s.stop) for s in segments] == [(0, 20), (20, 40), (40, None)]
    assert [s.expected for s in segments] == [5, 5, 2]


def test_max_frames_closes_the_last_range():
    segments = segments_for(CFR, Sampling(stride=4, max_frames=6), segment_frames=16)
    assert [(s.start, s.stop) for s in segments] == [(0, 16), (16, 21)]
    assert sum(s.expected for s in segments) == 6


def test_unsplittable_or_unprobed_videos_are_one_range():
    avi = VideoInfo(fps=12.0, frames=48, exact_count=True, splittable=False)
    assert [(s.start, s.stop, s.expected) for s in segments_for(avi, Sampling(), 10)] == [(0, None, 48)]
    assert segments_for(None, Sampling(), 10) == [Segment(0, None, 1, None)]
    unknown_length = VideoInfo(fps=30.0, frames=None, exact_count=False, splittable=True)
    assert [(s.start, s.stop) for s in segments_for(unknown_length, Sampling(), 10)] == [(0, None)]
