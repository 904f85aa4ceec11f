"""Fuzzing the one parser of appliance/update/rootfs.py: `dumpe2fs -h` output to a size."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.update import rootfs

FIELDS = st.sampled_from(["Block count", "Block size", "Inode count", "Block count ",
                          "block count", "Free blocks"])
VALUES = st.one_of(st.integers(min_value=-5, max_value=1 << 40).map(str), st.text(max_size=12))
LINES = st.lists(st.tuples(FIELDS, VALUES).map(lambda kv: f"{kv[0]}:  {kv[1]}"), max_size=8)


@given(st.one_of(st.text(max_size=300), LINES.map("\n".join)))
@example("Block count: 5\nBlock size: 4096")
@example("Block count: 5\r\nBlock size: 4096\r\n")
def test_fs_size_raises_only_rootfs_error(text: str) -> None:
    try:
        size = rootfs.parse_fs_size(text)
    except rootfs.RootFsError:
        return
    assert isinstance(size, int)
    assert size > 0
