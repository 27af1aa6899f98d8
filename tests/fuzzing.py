"""Random corruptions of valid files, for the readers' fuzz tests."""
from hypothesis import strategies as st


def corrupt(data: bytes, edits):
    """Apply (position, action, value) edits: overwrite a byte, cut the file, or insert bytes."""
    b = bytearray(data)
    for pos, action, value in edits:
        if not b:
            break
        pos %= len(b)
        if action == 0:
            b[pos] = value
        elif action == 1:
            del b[pos:]
        else:
            b[pos:pos] = bytes([value]) * 3
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 2), st.integers(0, 255)),
                 min_size=1, max_size=4)
