"""Signed updates with A/B root slots (issue 9).

The pieces, each in its own module: `trust` verifies what the update server offers with The
Update Framework (python-tuf ngclient) against the root of trust shipped in the image;
`repository` publishes releases into such a repository; `bundle` is the release file (a slot
image, kernel and initrd with a manifest of hashes); `slots` (pure) knows which root slot is
booted and which is free; `bootenv` writes the loader entries with boot counting on the ESP;
`install` writes a verified bundle into the free slot; `commit` decides after the reboot
whether the new slot is blessed or the previous one comes back; `hooks` runs the
firmware hooks of every stage (firmware-hooks/README.md) for all of them and for the
hardware monitor.
"""
