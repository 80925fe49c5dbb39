"""`edgert quantize`: post-training int8 quantisation with a calibration set, and the float vs int8 report.

`calibration` reads the calibration images through edgert's own `Preprocessor` (so calibration sees
what the device will see), `tflite` quantises a float ``.tflite`` with ai-edge-quantizer, `output`
writes the model and its card, `report` measures float against int8, and `job` runs the whole command.
"""
