"""Narrow the inside of a trained post-filter's residual blocks, as a start for fine-tuning:

    python -m training.prune_postfilter --ckpt runs/postfilter.pt --mid 32 --out runs/postfilter-mid32.pt

Each block keeps the inner channels whose weights in and out carry most (the product of the
first convolution's filter norm and the second's input-weight norm). The blocks' convolutions
are most of the filter's multiply-adds, so a narrower inside is the cheapest way to a faster
decoder; what the pruning loses, a short fine-tune (train_postfilter with --init) wins back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from training.checkpoints import save_atomic
from training.nets import PostFilter


def prune(model: PostFilter, mid: int) -> PostFilter:
    cfg = {"width": model.head.out_channels, "blocks": len(model.blocks), "mid": mid}
    out = PostFilter(**cfg)
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    for i, b in enumerate(model.blocks):
        first, second = b.body[0], b.body[2]
        if mid > first.out_channels:
            raise ValueError(f"mid {mid} is wider than the blocks' {first.out_channels}")
        score = first.weight.flatten(1).norm(dim=1) * second.weight.transpose(0, 1).flatten(1).norm(dim=1)
        keep = torch.sort(torch.topk(score, mid).indices).values
        state[f"blocks.{i}.body.0.weight"] = first.weight[keep].clone()
        state[f"blocks.{i}.body.0.bias"] = first.bias[keep].clone()
        state[f"blocks.{i}.body.2.weight"] = second.weight[:, keep].clone()
        state[f"blocks.{i}.body.2.bias"] = second.bias.clone()
    out.load_state_dict(state)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, required=True, help="a train_postfilter checkpoint or exported weights")
    ap.add_argument("--mid", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    src = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    model = PostFilter(**src["config"])
    model.load_state_dict({k: v.float() for k, v in src["model"].items()})
    small = prune(model, args.mid)
    cfg = {"width": model.head.out_channels, "blocks": len(model.blocks), "mid": args.mid}
    save_atomic({"config": cfg, "model": small.state_dict(), "step": src.get("step", 0)}, args.out)
    from training.export import macs_per_pixel

    example = (torch.rand(1, 3, 256, 256), torch.tensor([16.0]))
    before, after = (macs_per_pixel(m, example, 256 * 256) for m in (model, small))
    print(
        f"{args.ckpt} -> {args.out}: blocks' inside {model.blocks[0].body[0].out_channels} -> {args.mid}, "
        f"{before} -> {after} multiply-adds per pixel"
    )


if __name__ == "__main__":
    main()
