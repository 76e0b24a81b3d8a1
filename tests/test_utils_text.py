"""Lists written as prose on the pages."""

from buildgpt.utils.text import spoken


def test_a_list_reads_as_a_sentence():
    assert spoken((1, 7, 50)) == "1, 7 and 50"
    assert spoken(["a", "b"]) == "a and b"
    assert spoken(["only"]) == "only"
    assert spoken([]) == ""
    assert spoken(["x, 1", "y, 2", "z"], sep="; ", last="; and ") == "x, 1; y, 2; and z"
