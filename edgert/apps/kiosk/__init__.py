"""The waste-sorting kiosk: camera -> classify -> vote -> GPIO bins, with its journal and snapshots."""
