"""``yolonas-batch track``: tracks of objects over the videos of a job's committed detections."""
