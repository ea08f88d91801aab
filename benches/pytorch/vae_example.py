"""The PyTorch side of the speed comparison in BENCHMARKS.md (not part of the build).

The model and training loop of pytorch/examples' `vae/main.py`, written out here: 784-400-20
encoder, 20-400-784 decoder, ReLU, sigmoid + BCE (summed) + KL, Adam 1e-3, batch 128, grayscale
targets. The data are the committed `data/mnist/*.gz`, held in memory as one tensor and batched
with a fresh permutation every epoch: PyTorch's fastest path, without the example's DataLoader and
per-image transforms (which only add time).

    python3 benches/pytorch/vae_example.py --epochs 10 --threads 2

prints one line per epoch (training seconds, test loss per image) and a summary.
"""

import argparse
import gzip
import struct
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def read_idx(path):
    raw = gzip.decompress(Path(path).read_bytes())
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        body = raw[16:]
        assert len(body) == count * rows * cols, path
        return torch.frombuffer(bytearray(body), dtype=torch.uint8).view(count, rows * cols)
    raise ValueError(f"{path}: not an IDX image file")


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_function(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "data/mnist"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = Path(args.data_dir)
    train = read_idx(data / "train-images-idx3-ubyte.gz").float() / 255.0
    test = read_idx(data / "t10k-images-idx3-ubyte.gz").float() / 255.0

    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        for idx in torch.randperm(len(train)).split(args.batch_size):
            x = train[idx]
            optimizer.zero_grad()
            recon, mu, logvar = model(x)
            loss = loss_function(recon, x, mu, logvar)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            total = 0.0
            for x in test.split(1000):
                recon, mu, logvar = model(x)
                total += loss_function(recon, x, mu, logvar).item()
        print(f"epoch {epoch:3}  {seconds[-1]:6.2f} s  test loss {total / len(test):8.2f}", flush=True)
    ordered = sorted(seconds)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
        f"median {(ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2:.2f} s an epoch, mean {sum(seconds) / len(seconds):.2f} s"
    )


if __name__ == "__main__":
    main()
