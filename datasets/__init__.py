"""The data generators behind synthetic_data.py and proxy_data.py: synthetic YouTube-8M-format
videos whose labels live in a few frames, and the real-label proxy built around real
video-level records.
"""
