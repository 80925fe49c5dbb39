"""Running edgert as a system service: systemd notifications and the watchdog."""
