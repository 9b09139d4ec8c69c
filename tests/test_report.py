"""Plain-text table of near-size."""

import types

import numpy as np

from layersize.report import format_table


def _layer(number, width, x_star, x_error, gamma):
    fit = types.SimpleNamespace(width=x_star, width_stderr=x_error, gamma=gamma, gamma_stderr=0.1,
                                r_squared=0.91)
    return types.SimpleNamespace(layer=number, width=width, fit=fit, widths=np.array([10, 640]))


def test_table_aligns_large_estimates():
    result = types.SimpleNamespace(layers=[_layer(1, 179, 178.6, 52.9, -0.022), _layer(2, 63, 62.4, 1.3, -0.282)])

    header, rule, first, second = format_table(result).splitlines()

    assert len({len(header), len(rule), len(first), len(second)}) == 1
    assert first.index("±") == second.index("±")
    assert first.rindex("±") == second.rindex("±")
    assert "178.6 ± 52.9" in first
    assert first.split()[:2] == ["1", "179"]


def test_empty_table_is_header():
    header, rule = format_table(types.SimpleNamespace(layers=[])).splitlines()

    assert header.split() == ["layer", "width", "x*", "gamma", "R^2", "swept"]
    assert set(rule) == {"-"}
