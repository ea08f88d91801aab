"""The PyTorch side of pixel-ar's speed comparison in BENCHMARKS.md (not part of the build).

The model of `vae-train --model pixel-ar`, written for PyTorch: every pixel's causal window (by
default, `--window 7,7`, the 7 rows above it, 15 pixels centred on its column, and the 7 pixels
to its left; black, -1, outside the image) by `unfold`, the pixel's row and column as a learned bias of the first layer,
an MLP (window -> 128 -> 128 -> location, log-scale floored at -7) shared by all pixels, and the
discretized logistic over 256 levels (PixelCNN++'s, one component). Adam 1e-3, batch 128, the
committed Fashion-MNIST held in memory, a fresh permutation every epoch.

    python3 benches/pytorch/pixel_ar_example.py --epochs 2 --threads 2 [--window 3,3]

prints one line per epoch (training seconds, test bits per pixel) and a summary.
"""

import argparse
import gzip
import math
import struct
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SIDE = 28
ROWS_ABOVE, HALF_WIDTH = 7, 7  # --window


def read_idx(path):
    raw = gzip.decompress(Path(path).read_bytes())
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        body = raw[16:]
        assert len(body) == count * rows * cols, path
        return torch.frombuffer(bytearray(body), dtype=torch.uint8).view(count, rows * cols)
    raise ValueError(f"{path}: not an IDX image file")


class PixelAr(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        kh, kw = ROWS_ABOVE + 1, 2 * HALF_WIDTH + 1
        # The unfolded patch's elements that precede the pixel: the rows above, then the left.
        keep = torch.ones(kh, kw, dtype=torch.bool)
        keep[ROWS_ABOVE, HALF_WIDTH:] = False
        self.register_buffer("keep", keep.flatten().nonzero().squeeze(1))
        self.fc1 = nn.Linear(len(self.keep), hidden)
        self.position = nn.Parameter(torch.empty(2 * SIDE, hidden).uniform_(-0.1, 0.1))
        one_hot = torch.zeros(SIDE * SIDE, 2 * SIDE)
        pixels = torch.arange(SIDE * SIDE)
        one_hot[pixels, pixels // SIDE] = 1
        one_hot[pixels, SIDE + pixels % SIDE] = 1
        self.register_buffer("one_hot", one_hot)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 2)

    def nll(self, x):
        """-ln p(x) per image in nats, x in [-1, 1] (levels -1 + 2k/255)."""
        n = x.shape[0]
        img = F.pad(x.view(n, 1, SIDE, SIDE), (HALF_WIDTH, HALF_WIDTH, ROWS_ABOVE, 0), value=-1.0)
        kernel = (ROWS_ABOVE + 1, 2 * HALF_WIDTH + 1)
        ctx = F.unfold(img, kernel).transpose(1, 2)[..., self.keep]  # n, 784, window
        h = F.relu(self.fc1(ctx) + self.one_hot @ self.position)
        out = self.fc3(F.relu(self.fc2(h)))
        mu, log_s = out[..., 0], out[..., 1].clamp(min=-7.0)
        c, inv, half = x - mu, torch.exp(-log_s), 1.0 / 255.0
        plus, minus = inv * (c + half), inv * (c - half)
        log_cdf_plus = plus - F.softplus(plus)
        log_one_minus_cdf_minus = -F.softplus(minus)
        mid = torch.log(torch.clamp(torch.sigmoid(plus) - torch.sigmoid(minus), min=1e-12))
        lp = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, mid))
        return -lp.sum(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    default_data = Path(__file__).resolve().parents[2] / "data/fashion-mnist"
    parser.add_argument("--data-dir", default=str(default_data))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", default="7,7", help="ROWS,HALF_WIDTH, as vae-train's")
    args = parser.parse_args()
    global ROWS_ABOVE, HALF_WIDTH
    ROWS_ABOVE, HALF_WIDTH = (int(v) for v in args.window.split(","))

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = Path(args.data_dir)
    train = read_idx(data / "train-images-idx3-ubyte.gz").float() / 127.5 - 1.0
    test = read_idx(data / "t10k-images-idx3-ubyte.gz").float() / 127.5 - 1.0

    model = PixelAr(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        for idx in torch.randperm(len(train)).split(args.batch_size):
            optimizer.zero_grad()
            model.nll(train[idx]).mean().backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        with torch.no_grad():
            total = sum(model.nll(x).sum().item() for x in test.split(500))
        bits = total / len(test) / (SIDE * SIDE) / math.log(2)
        print(f"epoch {epoch:3}  {seconds[-1]:6.2f} s  test {bits:.4f} bits/dim", flush=True)
    ordered = sorted(seconds)
    median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
        f"median {median:.2f} s an epoch, mean {sum(seconds) / len(seconds):.2f} s"
    )


if __name__ == "__main__":
    main()
