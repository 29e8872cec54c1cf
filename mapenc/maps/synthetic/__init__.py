"""Seeded synthetic towns and traffic: the embedded default when no real data is at hand.

The town (``town``: the grid and ``make_town``; ``junctions``: lanes, crossings, roundabouts,
crosswalks) and its traffic (``traffic``: agents and ``make_scenario(s)``; ``driving``: paths,
speeds, car following); ``config`` holds the settings of both.
"""

from mapenc.maps.synthetic.config import AgentProfile, ScenarioConfig, TownConfig
from mapenc.maps.synthetic.town import make_town
from mapenc.maps.synthetic.traffic import (
    make_scenario,
    make_scenarios,
    write_scenarios,
)

__all__ = [
    "AgentProfile",
    "ScenarioConfig",
    "TownConfig",
    "make_scenario",
    "make_scenarios",
    "make_town",
    "write_scenarios",
]
