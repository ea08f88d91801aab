"""The PyTorch side of the GAN speed comparison in BENCHMARKS.md (not part of the build).

The networks and hyperparameters of PyTorch-GAN's `implementations/gan/gan.py`, written out
here: G 100-128-256-512-1024-784 with LeakyReLU 0.2, BatchNorm1d(eps 0.8) on the hidden layers
after the first and a tanh output; D 784-512-256-1 with LeakyReLU 0.2; Adam 2e-4 with betas
(0.5, 0.999) for both; batch 64; data scaled to [-1, 1]. Per batch, as there: G's step on
`BCE(D(G(z)), 1)`, then D's step on the real batch and the same generated images, detached.
The one difference is that D outputs a logit and the losses are `BCEWithLogitsLoss` (what henbun
computes) instead of a sigmoid and `BCELoss`. The data are the committed `data/mnist/*.gz`, held
in memory as one tensor and batched with a fresh permutation every epoch.

    python3 benches/pytorch/gan_example.py --epochs 3 --threads 2

prints one line per epoch (training seconds, mean losses) and a summary.
"""

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from vae_example import read_idx


def generator(latent=100, pixels=784):
    def block(i, o, normalize=True):
        layers = [nn.Linear(i, o)]
        if normalize:
            layers.append(nn.BatchNorm1d(o, 0.8))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        return layers

    return nn.Sequential(
        *block(latent, 128, normalize=False),
        *block(128, 256),
        *block(256, 512),
        *block(512, 1024),
        nn.Linear(1024, pixels),
        nn.Tanh(),
    )


def discriminator(pixels=784):
    return nn.Sequential(
        nn.Linear(pixels, 512),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(512, 256),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(256, 1),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "data/mnist"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = read_idx(Path(args.data_dir) / "train-images-idx3-ubyte.gz").float() / 127.5 - 1.0

    g, d = generator(), discriminator()
    loss = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    seconds = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        totals, batches = [0.0, 0.0], 0
        for idx in torch.randperm(len(train)).split(args.batch_size):
            real = train[idx]
            valid = torch.ones(len(idx), 1)
            fake = torch.zeros(len(idx), 1)

            opt_g.zero_grad()
            gen = g(torch.randn(len(idx), 100))
            g_loss = loss(d(gen), valid)
            g_loss.backward()
            opt_g.step()

            opt_d.zero_grad()
            d_loss = (loss(d(real), valid) + loss(d(gen.detach()), fake)) / 2
            d_loss.backward()
            opt_d.step()
            totals[0] += d_loss.item()
            totals[1] += g_loss.item()
            batches += 1
        seconds.append(time.perf_counter() - start)
        print(
            f"epoch {epoch:3}  {seconds[-1]:6.2f} s  D loss {totals[0] / batches:6.3f}  "
            f"G loss {totals[1] / batches:6.3f}",
            flush=True,
        )
    ordered = sorted(seconds)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
        f"median {(ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2:.2f} s an epoch, mean {sum(seconds) / len(seconds):.2f} s"
    )


if __name__ == "__main__":
    main()
