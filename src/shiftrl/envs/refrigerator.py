"""MOREC's synthetic task: a refrigerator with a 1-d temperature, a power action and a hidden
door state, after Polixir's public simulator (polixir/revive examples/task/Refrigerator).

Per step (dt = 1, outdoor temperature 15 C):

    T <- T - u                        (cooling at power u in [0, 10])
    T <- T - k (T - 15),  k = 0.02 with the door closed, 0.08 with it open
    T <- T + N(0, noise^2)

Door process: in every block of 200 steps the door opens with probability 0.5, for 20
steps at a uniformly random offset in [0, 180]. Episodes start at T = 10.

Where this deviates from the reference: its N(0, 0.1^2) is observation noise on a noiseless
temperature; here it is process noise on the state (the temperature the data records is
the one the next step starts from), so a transition (T, u, T') is Markov in what is logged.

Controllers (u clipped to [0, 10]):
- behaviour: the reference's `SamplingPolicy`, u = 0.2 (T - (-3.75)) + N(0, 0.1^2); it
  keeps the temperature in about [-2.5, 10] (then near -2 C);
- evaluation (the paper's "test policy"): u = 0.5 (T - (-8)), a colder set-point and a
  stronger gain, so it drives the temperature to about -7 C and uses powers up to 9,
  states and actions the data never holds.
"""

from __future__ import annotations

import numpy as np

OUTDOOR, K_CLOSED, K_OPEN = 15.0, 0.02, 0.08
U_MAX = 10.0
BLOCK, OPEN_STEPS = 200, 20


def step(temperature: np.ndarray, power: np.ndarray, door: np.ndarray, noise: np.ndarray):
    """The next temperature for arrays of temperature, power, door (0 / 1) and noise draws."""
    t = temperature - np.clip(power, 0.0, U_MAX)
    k = np.where(door > 0.5, K_OPEN, K_CLOSED)
    return t - k * (t - OUTDOOR) + noise


def door_schedule(steps: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's door process: per 200-step block, open w.p. 0.5 for 20 steps."""
    door = np.zeros(steps, np.float32)
    for start in range(0, steps, BLOCK):
        if rng.random() < 0.5:
            at = start + int(rng.integers(0, BLOCK - OPEN_STEPS + 1))
            door[at : at + OPEN_STEPS] = 1.0
    return door


def behaviour_controller(temperature: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(
        0.2 * (temperature + 3.75) + rng.normal(0.0, 0.1, np.shape(temperature)), 0, U_MAX
    )


def evaluation_controller(
    temperature: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    return np.clip(0.5 * (temperature + 8.0), 0.0, U_MAX)


def run(controller, steps: int, seed: int, noise: float = 0.1, start: float = 10.0) -> dict:
    """One trajectory: arrays temperature [steps + 1], power [steps], door [steps]."""
    rng = np.random.default_rng(seed)
    door = door_schedule(steps, rng)
    temps = np.empty(steps + 1, np.float32)
    power = np.empty(steps, np.float32)
    temps[0] = start
    for t in range(steps):
        power[t] = controller(temps[t : t + 1], rng)[0]
        temps[t + 1] = step(temps[t], power[t], door[t], rng.normal(0.0, noise))
    return {"temperature": temps, "power": power, "door": door}


def offline_data(episodes: int = 4, steps: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Behaviour-controller transitions: obs [N, 1], action [N, 1] (power), next_obs [N, 1],
    door [N, 1] (the hidden factor), reward [N] (-|T' + 2|, the reference's)."""
    parts = [run(behaviour_controller, steps, seed + i) for i in range(episodes)]
    obs = np.concatenate([p["temperature"][:-1] for p in parts])[:, None]
    nxt = np.concatenate([p["temperature"][1:] for p in parts])[:, None]
    return {
        "obs": obs,
        "action": np.concatenate([p["power"] for p in parts])[:, None],
        "next_obs": nxt,
        "door": np.concatenate([p["door"] for p in parts])[:, None],
        "reward": -np.abs(nxt[:, 0] + 2.0),
    }
