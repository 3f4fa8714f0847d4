"""CLIP-ReID person re-identification."""
