"""Make `weights.pt`, the torch MLP backend's weights: `python -m packflow.examples.torch_mlp.make_weights`.

Trains the MLP of `model.py` for a few hundred steps on synthetic records labelled by
`labels_of`, from a fixed seed, on the CPU with deterministic algorithms, and saves its state
dict with `torch.save`. The file is committed; this script is how it was made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .model import FEATURES, build_mlp, labels_of

WEIGHTS = Path(__file__).with_name("weights.pt")


def train(seed: int = 0, steps: int = 400, batch: int = 512) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    model = build_mlp()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(steps):
        x = torch.randn(batch, FEATURES)
        optimiser.zero_grad()
        loss = loss_fn(model(x), labels_of(x))
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        x = torch.randn(10_000, FEATURES)
        accuracy = (model(x).argmax(1) == labels_of(x)).float().mean().item()
    print(f"trained {steps} steps, held-out accuracy {accuracy:.3f}")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.save(train(args.seed), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
