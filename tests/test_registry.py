"""Tests of registry.py: lookups by name for a flag."""

import pytest

import losses
import registry
import utils


class Base:
    pass


class First(Base):
    pass


class Second(Base):
    pass


def test_a_registry_lists_and_finds_its_classes():
    found = registry.Registry("--thing", {"First": First, "Second": Second})
    assert found.names() == ["First", "Second"] and "First" in found
    assert found.get("Second") is Second
    with pytest.raises(utils.UserInputError, match="--thing=Third is not known.*First, Second"):
        found.get("Third")


def test_the_loss_registry_holds_the_starters_losses_and_not_their_base():
    assert losses.LOSSES.names() == ["CrossEntropyLoss", "HingeLoss", "SoftmaxLoss"]
    assert "BaseLoss" not in losses.LOSSES
    with pytest.raises(utils.UserInputError, match="--label_loss=BaseLoss"):
        losses.LOSSES.get("BaseLoss")
