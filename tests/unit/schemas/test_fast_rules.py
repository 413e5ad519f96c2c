"""The fast paths' rules as data (schemas.fast) against the contract's models they stand for."""

from __future__ import annotations

from typing import get_args

from schemas.events import EVENT_MODELS, AccountScoped
from schemas.fast import ACCOUNT_KINDS, FAST_KINDS

ENVELOPE = set(AccountScoped.model_fields)


def test_every_account_kind_of_the_contract_is_read_by_the_sql_lane_with_its_own_fields():
    account_kinds = {k for k, m in EVENT_MODELS.items() if issubclass(m, AccountScoped) and k not in FAST_KINDS}
    assert set(ACCOUNT_KINDS) == account_kinds
    for kind, fields in ACCOUNT_KINDS.items():
        model = EVENT_MODELS[kind]
        assert set(model.model_fields) - ENVELOPE - {"type"} == set(fields), kind


def _literal_values(annotation) -> set[str]:
    """The strings of a Literal, or of the Literal inside `Literal[...] | None`."""
    args = get_args(annotation)
    if type(None) in args:
        (annotation,) = [a for a in args if a is not type(None)]
        args = get_args(annotation)
    return {a for a in args if isinstance(a, str)}


def test_each_field_form_matches_its_model():
    for kind, fields in ACCOUNT_KINDS.items():
        for name, form in fields.items():
            info = EVENT_MODELS[kind].model_fields[name]
            assert not info.is_required(), (kind, name)  # the lane takes a line without the field
            if form.form == "enum":
                assert set(form.values) == _literal_values(info.annotation), (kind, name)
