"""Settings of the synthetic towns and traffic, and the per-kind agent profiles."""

from __future__ import annotations

from dataclasses import dataclass

from mapenc.errors import ConfigError


@dataclass(frozen=True)
class TownConfig:
    """Settings of a synthetic town.

    Attributes:
        blocks: number of blocks along x and y; the grid has (bx + 1) * (by + 1) junctions.
        block_length_m: distance between neighbouring junction centres (metres).
        lanes_per_direction: lanes each way on every road.
        lane_width_m: width of one lane (metres).
        curvature: peak curvature (1/m) of bent roads; 0 keeps every road straight.
        bent_road_fraction: share of roads that are bent (each by up to ``curvature``).
        removed_road_fraction: share of grid roads left out (never disconnecting the town and
            never leaving a junction with fewer than two roads), which makes T-junctions and bends.
        roundabouts: number of junctions (of three or more roads) built as one-lane roundabouts.
        crosswalks: put crosswalks on the approaches of junctions with three or more roads.
        seed: random seed; the same config always gives the same town.
    """

    blocks: tuple[int, int] = (3, 2)
    block_length_m: float = 80.0
    lanes_per_direction: int = 1
    lane_width_m: float = 3.5
    curvature: float = 0.04
    bent_road_fraction: float = 0.4
    removed_road_fraction: float = 0.1
    roundabouts: int = 1
    crosswalks: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.blocks) != 2 or min(self.blocks) < 1:
            raise ConfigError(f"TownConfig.blocks must be two counts >= 1, got {self.blocks}")
        if self.lanes_per_direction < 1 or self.lane_width_m <= 0:
            raise ConfigError("TownConfig needs lanes_per_direction >= 1 and lane_width_m > 0")
        half_size = self.roundabout_half_size_m if self.roundabouts else self.junction_half_size_m
        shortest = 2 * half_size + 20.0
        if self.block_length_m < shortest:
            raise ConfigError(
                f"TownConfig.block_length_m={self.block_length_m} is too short for "
                f"{self.lanes_per_direction} lanes per direction (need at least {shortest:.1f} m)"
            )
        if self.roundabouts < 0:
            raise ConfigError("TownConfig.roundabouts must be >= 0")
        road_half_width = self.lanes_per_direction * self.lane_width_m
        if self.curvature < 0 or self.curvature * 2 * road_half_width >= 1:
            raise ConfigError(
                f"TownConfig.curvature={self.curvature} must be >= 0 and below "
                f"{1 / (2 * road_half_width):.3f} 1/m so that lane boundaries stay smooth"
            )
        for name in ("bent_road_fraction", "removed_road_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"TownConfig.{name} must lie in [0, 1]")

    @property
    def junction_half_size_m(self) -> float:
        """Distance from a junction centre to where its roads begin (metres): room to turn."""
        return self.lanes_per_direction * self.lane_width_m + 5.0

    @property
    def roundabout_radius_m(self) -> float:
        """Radius of a roundabout's ring centerline (metres)."""
        return self.lanes_per_direction * self.lane_width_m + 4.0

    @property
    def roundabout_half_size_m(self) -> float:
        """Distance from a roundabout's centre to where its roads begin (metres)."""
        return self.roundabout_radius_m + 0.5 * self.lane_width_m + 8.0


@dataclass(frozen=True)
class ScenarioConfig:
    """Settings of a synthetic scenario on a town.

    Attributes:
        num_agents: number of tracks.
        num_steps: T, time steps per track (110 = 11 s at 10 Hz, as in AV2).
        dt: seconds between steps.
        cyclist_fraction, pedestrian_fraction: shares of cyclists and of pedestrians (the rest are
            vehicles); pedestrians need crosswalks and become vehicles on a town without any.
        partial_track_fraction: share of agents observed during only part of the scenario.
        lateral_noise_m: standard deviation of the smooth sideways offset from the centerline.
        seed: random seed; the same config and town always give the same scenario.
    """

    num_agents: int = 32
    num_steps: int = 110
    dt: float = 0.1
    cyclist_fraction: float = 0.08
    pedestrian_fraction: float = 0.08
    partial_track_fraction: float = 0.2
    lateral_noise_m: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_agents < 1 or self.num_steps < 2 or self.dt <= 0:
            raise ConfigError("ScenarioConfig needs num_agents >= 1, num_steps >= 2 and dt > 0")
        fractions = (self.cyclist_fraction, self.pedestrian_fraction, self.partial_track_fraction)
        if min(fractions) < 0 or self.cyclist_fraction + self.pedestrian_fraction > 1:
            raise ConfigError("ScenarioConfig fractions must be >= 0, cyclists + pedestrians <= 1")
        if self.partial_track_fraction > 1 or self.lateral_noise_m < 0:
            raise ConfigError(
                "ScenarioConfig needs partial_track_fraction <= 1, lateral_noise_m >= 0"
            )


@dataclass(frozen=True)
class AgentProfile:
    """How one kind of agent moves and how big it is.

    Attributes:
        cruise_speed_mps: range of the per-agent cruise speed (m/s).
        lateral_accel_mps2: largest sideways acceleration in curves (m/s^2).
        accel_mps2, decel_mps2: largest speed-up and braking (m/s^2).
        junction_speed_factor: speed cap inside junctions, as a fraction of the cruise speed.
        lateral_offset_m: mean sideways offset from the centerline, + to the left (metres).
        length_m, width_m: ranges of the box size (metres).
    """

    cruise_speed_mps: tuple[float, float]
    lateral_accel_mps2: float
    accel_mps2: float
    decel_mps2: float
    junction_speed_factor: float
    lateral_offset_m: float
    length_m: tuple[float, float]
    width_m: tuple[float, float]


AGENT_PROFILES: dict[str, AgentProfile] = {
    "vehicle": AgentProfile((8.0, 14.0), 2.5, 2.0, 3.0, 0.7, 0.0, (4.0, 5.2), (1.8, 2.1)),
    "cyclist": AgentProfile((4.0, 6.5), 1.5, 1.0, 2.0, 0.8, -0.9, (1.7, 2.0), (0.6, 0.8)),
    "pedestrian": AgentProfile((1.0, 1.6), 1.0, 0.5, 0.5, 1.0, 0.0, (0.5, 0.8), (0.5, 0.8)),
}
