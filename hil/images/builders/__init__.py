"""The images hil builds itself: the reference image (busybox, A/B roots) and plain Debian images."""
