"""The images hil builds itself: the reference image (busybox, A/B roots), plain Debian images, and a
Debian image updated by RAUC with its test bundles."""
