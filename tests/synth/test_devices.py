"""The device table: names, capacities, and agreement with what nextpnr says the chips hold."""

import json

import pytest

from hwgen.devices import DEVICES, DoesNotFitError, Family, device
from hwgen.errors import InvalidOptionError
from hwgen.synth.report import nextpnr_resources

from .conftest import DATA


def test_the_four_devices_of_the_issue():
    assert list(DEVICES) == ["ice40-up5k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]
    up5k = DEVICES["ice40-up5k"]
    assert (up5k.family, up5k.logic, up5k.dsps, up5k.dsp_width) == (Family.ICE40, 5280, 8, (16, 16))
    assert (up5k.brams, up5k.bram_total_bits, up5k.sprams, up5k.spram_total_bits) == (30, 120 * 1024, 4, 1024 * 1024)
    assert "-dsp" in up5k.synth_command.split()  # multipliers stay in LUTs without it
    assert up5k.nextpnr_args == ("--up5k", "--package", "sg48") and up5k.nextpnr == "nextpnr-ice40"
    for name in ("ecp5-25k", "ecp5-45k", "ecp5-85k"):
        d = DEVICES[name]
        assert d.family is Family.ECP5 and d.nextpnr == "nextpnr-ecp5" and d.sprams == 0
        assert d.nextpnr_args[0] == f"--{name.split('-')[1]}" and d.dsp_width == (18, 18)
    # Bigger devices hold more of everything.
    ecp5 = [DEVICES[n] for n in ("ecp5-25k", "ecp5-45k", "ecp5-85k")]
    for small, big in zip(ecp5, ecp5[1:]):
        assert small.logic < big.logic and small.dsps < big.dsps and small.brams < big.brams
    assert DEVICES["ecp5-85k"].bram_total_bits == 208 * 18 * 1024
    assert {d.default_clock_mhz for d in DEVICES.values()} == {48.0, 80.0}
    assert {d.name: d.placer for d in DEVICES.values()} == {
        "ice40-up5k": "heap", "ecp5-25k": "static", "ecp5-45k": "static", "ecp5-85k": "static"}


@pytest.mark.parametrize("family,name", [("ice40", "ice40-up5k"), ("ecp5", "ecp5-85k")])
def test_capacities_match_nextpnr(family, name):
    report = json.loads((DATA / f"{family}_mac2.nextpnr.json").read_text())
    available = nextpnr_resources(report, Family(family), "available")
    d = DEVICES[name]
    assert (available.logic, available.dsp, available.bram, available.spram) == (d.logic, d.dsps, d.brams, d.sprams)
    if family == "ecp5":
        assert available.ff == d.ffs


def test_unknown_device_is_refused_with_the_choices():
    with pytest.raises(InvalidOptionError, match=r"^unknown device 'xc7a35t'; choose from ice40-up5k, ecp5-25k, "
                                                 r"ecp5-45k, ecp5-85k$"):
        device("xc7a35t")
    assert device(DEVICES["ecp5-45k"]) is DEVICES["ecp5-45k"]


def test_does_not_fit_says_which_resource_and_by_how_much():
    error = DoesNotFitError(DEVICES["ice40-up5k"], "DSPs", 16, 8)
    assert str(error) == "does not fit ice40-up5k: needs 16 DSPs, 8 more than the 8 it has"
    assert (error.resource, error.need, error.have, error.exit_code) == ("DSPs", 16, 8, 2)
    assert str(DoesNotFitError(DEVICES["ecp5-85k"], "SPRAMs", 1, 0)) == \
        "does not fit ecp5-85k: needs 1 SPRAMs, it has none"
