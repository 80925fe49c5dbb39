"""The surveillance product: streams -> detectors -> tracker -> zone/line analytics -> events."""
