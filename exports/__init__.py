"""Exports of a job's output: annotation-tool formats for pre-labelling, and a visual review report.

Reads what ``jobs/`` wrote (``frames``, ``detections``, ``_runs``), never the inputs' pixels except for the
report's thumbnails, and streams: memory stays bounded however many frames the output holds.
"""
