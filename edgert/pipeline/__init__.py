"""The pipeline: stage threads and channels (`graph`), the model side (`inference`), the kiosk loop (`kiosk`)."""
