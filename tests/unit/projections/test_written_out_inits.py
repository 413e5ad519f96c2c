"""Decision and Record write their frozen dataclass `__init__` out for speed (the batch path builds
one per account and per account event): each must stay the one the dataclass would generate."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from projections.decide import Decision
from projections.facts import Record


@pytest.mark.parametrize("cls", [Decision, Record])
def test_init_takes_every_field_in_order_with_its_default_and_stays_frozen(cls):
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    values = [f"v{i}" for i in range(len(fields))]
    obj = cls(*values)
    assert [getattr(obj, f.name) for f in fields] == values
    assert obj == cls(**{f.name: v for f, v in zip(fields, values, strict=True)})
    assert hash(obj) == hash(cls(*values))
    last = fields[-1].name
    assert getattr(dataclasses.replace(obj, **{last: "x"}), last) == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, last, "y")  # the point: a frozen field cannot be assigned
