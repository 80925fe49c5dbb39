"""The floor everything stands on: errors, tensors and frames, settings, durable writes, hardware and `Model`.

Nothing here imports any other part of edgert (checked by import-linter).
"""
