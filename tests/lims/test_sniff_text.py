"""The sniffing toolkit's shortcuts: the cached decode hands out fresh lists, and a line
skipped as numeric can hold no column label. (That every fixture still gets the same parser
is the detection tests' job: they ran unchanged.)"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lims.ingestion.text import numeric_row, sniff_lines


def test_sniffed_lines_are_a_fresh_list_each_call():
    head = b"a,b,c\n1,2,3\n4,5,6\n"
    first = sniff_lines(head, 3)
    assert first == ["a,b,c", "1,2,3", "4,5,6"]
    first.append("changed by a caller")
    assert sniff_lines(head, 3) == ["a,b,c", "1,2,3", "4,5,6"]
    assert sniff_lines(bytearray(head), 2) == ["a,b,c", "1,2,3"]  # not only bytes
    assert sniff_lines(b"\x00\x01binary", 3) is None


@pytest.mark.parametrize(
    ("line", "numeric"),
    [
        ("1,0,1499006353,0.723,10,1,-9.63E-05,3.2796359", True),
        ("2019-07-02 10:00:00\t3.5\t-0.001", True),
        ('"1","2.5e+3"', True),
        ("", True),
        ("Data_Point,Test_Time,Voltage", False),
        ("freq/Hz,Re(Z)/Ohm,-Im(Z)/Ohm", False),
        ("1,2,nan", False),  # a word: looked at (cheaply wrong is never a skipped header)
        ("测试,1", False),
    ],
)
def test_numeric_row(line, numeric):
    assert numeric_row(line) is numeric


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_a_line_with_a_letter_other_than_e_is_never_numeric(line):
    if any(c.isalpha() and c not in "eE" for c in line):
        assert not numeric_row(line)
