"""`edgert bench`: what a device does, frame to decision, per backend and stage, with accuracy and comparisons."""
