"""The pipeline: stages in threads joined by channels (`graph`), the model side (`inference`), the kiosk loop (`kiosk`)."""
