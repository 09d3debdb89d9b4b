"""Each option is declared once (sigreload.options): the broadcaster's feature
flags too, so the one that adds a feature touches its declaration and the code
that uses it, never a list of flags in the broadcaster's main."""

import dataclasses
import json

import pytest

from conftest import ROOT, client, free_port, module, recv
from sigreload import broadcaster, options
from sigreload.broadcasting import Features

DECLARED = [option for option in options.OPTIONS if option.feature]


def test_the_features_are_the_declared_ones_at_their_defaults():
    assert {field.name for field in dataclasses.fields(Features)} == {o.feature[0] for o in DECLARED}
    assert Features(**options.features(broadcaster.make_parser().parse_args([]))) == Features()


@pytest.mark.parametrize("option", DECLARED, ids=lambda option: option.name)
def test_each_features_switch_sets_it_and_nothing_else(option):
    name, given = option.feature
    flags = options.features(broadcaster.make_parser().parse_args([option.flag("broadcast")]))
    assert flags == {**dataclasses.asdict(Features()), name: given}


def test_the_pages_hello_says_the_switches_given(procs):
    port = free_port()
    procs(module("broadcaster") + ["--port", port, "--morph", "--no-console", "--follow"],
          cwd=ROOT).wait_for("ready on", 15)
    with client(port) as page:
        hello = json.loads(recv(page))
    assert hello["type"] == "hello"
    assert (hello["morph"], hello["console"], hello["overlay"], hello["follow"]) == (True, False, True, True)
