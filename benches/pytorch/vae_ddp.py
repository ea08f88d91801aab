"""The PyTorch side of the data-parallel comparison in BENCHMARKS.md (not part of the build).

henbun's default VAE written in PyTorch (784-400-32 encoder, 32-400-784 decoder, ReLU, Bernoulli
logits, dynamically binarized targets, Adam 1e-3, a global batch of 128) trained with
DistributedDataParallel over the gloo backend: each of `--procs` processes takes its contiguous
share of every global batch (the same permutation on every process) and DDP averages the
gradients, as `mpirun -np N vae-train train` does with MPI. The data are the committed
`data/mnist/*.gz`, held in memory.

    python3 benches/pytorch/vae_ddp.py --procs 2 --threads 1 --epochs 5
    python3 benches/pytorch/vae_ddp.py --procs 1 --threads 2 --epochs 5

Process 0 prints one line per epoch (training seconds, test -ELBO per image) and a summary.
"""

import argparse
import gzip
import os
import struct
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def read_idx(path):
    raw = gzip.decompress(Path(path).read_bytes())
    magic, count = struct.unpack(">II", raw[:8])
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file")
    rows, cols = struct.unpack(">II", raw[8:16])
    body = raw[16:]
    assert len(body) == count * rows * cols, path
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).view(count, rows * cols)


class VAE(nn.Module):
    def __init__(self, hidden=400, latent=32):
        super().__init__()
        self.enc = nn.Linear(784, hidden)
        self.stats = nn.Linear(hidden, 2 * latent)
        self.dec = nn.Linear(latent, hidden)
        self.out = nn.Linear(hidden, 784)
        self.latent = latent

    def forward(self, x):
        mu, logvar = self.stats(F.relu(self.enc(x))).split(self.latent, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.out(F.relu(self.dec(z))), mu, logvar


def neg_elbo(logits, x, mu, logvar):
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return recon + kl


def worker(rank, args):
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", rank=rank, world_size=args.procs)
    torch.manual_seed(args.seed)
    data = Path(args.data_dir)
    train = read_idx(data / "train-images-idx3-ubyte.gz").float() / 255.0
    test = read_idx(data / "t10k-images-idx3-ubyte.gz").float() / 255.0
    model = DistributedDataParallel(VAE())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(args.seed)
    noise = torch.Generator().manual_seed(args.seed + 1 + rank)
    torch.manual_seed(args.seed + 1 + rank)
    seconds = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        for batch in torch.randperm(len(train), generator=order).split(args.batch_size):
            share = batch[rank * len(batch) // args.procs : (rank + 1) * len(batch) // args.procs]
            x = torch.bernoulli(train[share], generator=noise)
            optimizer.zero_grad()
            logits, mu, logvar = model(x)
            # The share's mean: DDP averages the processes' gradients.
            (neg_elbo(logits, x, mu, logvar) / len(share)).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        if rank == 0:
            model.eval()
            with torch.no_grad():
                x = torch.bernoulli(test, generator=torch.Generator().manual_seed(0))
                total = 0.0
                for xs in x.split(1000):
                    logits, mu, logvar = model.module(xs)
                    total += neg_elbo(logits, xs, mu, logvar).item()
            print(f"epoch {epoch:3}  {seconds[-1]:6.3f} s  test -ELBO {total / len(test):8.2f}", flush=True)
    if rank == 0:
        print(
            f"torch {torch.__version__}, {args.procs} processes x {torch.get_num_threads()} threads (DDP, gloo): "
            f"mean {sum(seconds) / len(seconds):.3f} s an epoch"
        )
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "data/mnist"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    mp.spawn(worker, args=(args,), nprocs=args.procs, join=True)


if __name__ == "__main__":
    main()
