"""OpenAI CLIP checkpoints in miniature, written from the published architecture (Radford et al., 2021; OpenAI's
``model.py``), and plain functional forwards over them, independent of fsar's modules.

``openai_state_dict(kind, ...)`` returns the keys and shapes of OpenAI's ``CLIP`` state dict (``visual.*``, the
text transformer, ``logit_scale``) with random values, at tiny widths.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _ln(sd, key, width, gen):
    sd[f"{key}.weight"] = 1 + 0.1 * torch.randn(width, generator=gen)
    sd[f"{key}.bias"] = 0.1 * torch.randn(width, generator=gen)


def _resblocks(sd, prefix, width, layers, gen):
    for i in range(layers):
        p = f"{prefix}transformer.resblocks.{i}."
        sd[p + "attn.in_proj_weight"] = torch.randn(3 * width, width, generator=gen) / math.sqrt(width)
        sd[p + "attn.in_proj_bias"] = 0.1 * torch.randn(3 * width, generator=gen)
        sd[p + "attn.out_proj.weight"] = torch.randn(width, width, generator=gen) / math.sqrt(width)
        sd[p + "attn.out_proj.bias"] = 0.1 * torch.randn(width, generator=gen)
        _ln(sd, p + "ln_1", width, gen)
        sd[p + "mlp.c_fc.weight"] = torch.randn(4 * width, width, generator=gen) / math.sqrt(width)
        sd[p + "mlp.c_fc.bias"] = 0.1 * torch.randn(4 * width, generator=gen)
        sd[p + "mlp.c_proj.weight"] = torch.randn(width, 4 * width, generator=gen) / math.sqrt(4 * width)
        sd[p + "mlp.c_proj.bias"] = 0.1 * torch.randn(width, generator=gen)
        _ln(sd, p + "ln_2", width, gen)


def _bn(sd, key, channels, gen):
    sd[f"{key}.weight"] = 1 + 0.1 * torch.randn(channels, generator=gen)
    sd[f"{key}.bias"] = 0.1 * torch.randn(channels, generator=gen)
    sd[f"{key}.running_mean"] = 0.1 * torch.randn(channels, generator=gen)
    sd[f"{key}.running_var"] = 1 + 0.2 * torch.rand(channels, generator=gen)
    sd[f"{key}.num_batches_tracked"] = torch.tensor(7)


def _conv(sd, key, cout, cin, k, gen):
    sd[key] = torch.randn(cout, cin, k, k, generator=gen) / math.sqrt(cin * k * k)


def add_resnet_visual(sd, gen, layers=(1, 2, 1, 1), width=8, embed=32, resolution=64):
    """``visual.*`` of OpenAI's ModifiedResNet: stem conv1-3 + bn1-3, bottleneck layers, attnpool."""
    _conv(sd, "visual.conv1.weight", width // 2, 3, 3, gen)
    _bn(sd, "visual.bn1", width // 2, gen)
    _conv(sd, "visual.conv2.weight", width // 2, width // 2, 3, gen)
    _bn(sd, "visual.bn2", width // 2, gen)
    _conv(sd, "visual.conv3.weight", width, width // 2, 3, gen)
    _bn(sd, "visual.bn3", width, gen)
    inplanes = width
    for s, blocks in enumerate(layers):
        planes = width * 2**s
        for b in range(blocks):
            p = f"visual.layer{s + 1}.{b}."
            _conv(sd, p + "conv1.weight", planes, inplanes, 1, gen)
            _bn(sd, p + "bn1", planes, gen)
            _conv(sd, p + "conv2.weight", planes, planes, 3, gen)
            _bn(sd, p + "bn2", planes, gen)
            _conv(sd, p + "conv3.weight", planes * 4, planes, 1, gen)
            _bn(sd, p + "bn3", planes * 4, gen)
            if b == 0 and (s > 0 or inplanes != planes * 4):
                _conv(sd, p + "downsample.0.weight", planes * 4, inplanes, 1, gen)
                _bn(sd, p + "downsample.1", planes * 4, gen)
            inplanes = planes * 4
    c = width * 32
    side = resolution // 32
    sd["visual.attnpool.positional_embedding"] = torch.randn(side * side + 1, c, generator=gen) / math.sqrt(c)
    for name in ("k", "q", "v"):
        sd[f"visual.attnpool.{name}_proj.weight"] = torch.randn(c, c, generator=gen) / math.sqrt(c)
        sd[f"visual.attnpool.{name}_proj.bias"] = 0.1 * torch.randn(c, generator=gen)
    sd["visual.attnpool.c_proj.weight"] = torch.randn(embed, c, generator=gen) / math.sqrt(c)
    sd["visual.attnpool.c_proj.bias"] = 0.1 * torch.randn(embed, generator=gen)


def add_vit_visual(sd, gen, width=128, layers=2, patch=16, resolution=32, embed=32):
    """``visual.*`` of OpenAI's VisionTransformer (no conv bias, class token, ln_pre/ln_post, ``proj`` [W, E])."""
    _conv(sd, "visual.conv1.weight", width, 3, patch, gen)
    sd["visual.class_embedding"] = torch.randn(width, generator=gen) / math.sqrt(width)
    grid = resolution // patch
    sd["visual.positional_embedding"] = torch.randn(grid * grid + 1, width, generator=gen) / math.sqrt(width)
    _ln(sd, "visual.ln_pre", width, gen)
    _resblocks(sd, "visual.", width, layers, gen)
    _ln(sd, "visual.ln_post", width, gen)
    sd["visual.proj"] = torch.randn(width, embed, generator=gen) / math.sqrt(width)


def add_text(sd, gen, width=128, layers=2, context=77, vocab=None, embed=32):
    vocab = TINY_VOCAB if vocab is None else vocab
    sd["token_embedding.weight"] = 0.1 * torch.randn(vocab, width, generator=gen)
    sd["positional_embedding"] = 0.01 * torch.randn(context, width, generator=gen)
    _resblocks(sd, "", width, layers, gen)
    _ln(sd, "ln_final", width, gen)
    sd["text_projection"] = torch.randn(width, embed, generator=gen) / math.sqrt(width)
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.07))


def openai_state_dict(kind: str, seed: int = 0, embed: int = 32, **visual) -> dict[str, torch.Tensor]:
    """A tiny OpenAI CLIP state dict, ``kind`` = ``"resnet"`` or ``"vit"`` (both with a text encoder)."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    if kind == "resnet":
        add_resnet_visual(sd, gen, embed=embed, **visual)
    else:
        add_vit_visual(sd, gen, embed=embed, **visual)
    add_text(sd, gen, embed=embed)
    return sd


def as_openai_file(sd, extras=True, half=True):
    """As OpenAI ships it: fp16 values and the integer entries ``input_resolution`` etc."""
    out = {k: (v.half() if half and v.is_floating_point() else v) for k, v in sd.items()}
    if extras:
        out |= {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}
    return out


def rounded(sd):
    """The float32 values a fp16 file holds."""
    return {k: (v.half().float() if v.is_floating_point() else v) for k, v in sd.items()}


# -- functional forwards --------------------------------------------------------------------------------------
def _resblock(x, sd, p, heads, mask=None):
    """x [N, L, W]: x + attn(ln_1(x)); x + mlp(ln_2(x)) with QuickGELU."""
    n, length, w = x.shape
    y = F.layer_norm(x, (w,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps=1e-5)
    qkv = y @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]
    q, k, v = (t.reshape(n, length, heads, w // heads).transpose(1, 2) for t in qkv.split(w, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(w // heads)
    if mask is not None:
        scores = scores + mask
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, w)
    x = x + out @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
    y = F.layer_norm(x, (w,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps=1e-5)
    h = y @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)
    return x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]


def _count(sd, prefix):
    return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})


def vit_reference(sd, images):
    w = sd["visual.conv1.weight"].shape[0]
    patch = sd["visual.conv1.weight"].shape[-1]
    x = F.conv2d(images, sd["visual.conv1.weight"], stride=patch).flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, w)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (w,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"], eps=1e-5)
    for i in range(_count(sd, "visual.transformer.resblocks.")):
        x = _resblock(x, sd, f"visual.transformer.resblocks.{i}.", w // 64)
    x = F.layer_norm(x[:, 0], (w,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"], eps=1e-5)
    return x @ sd["visual.proj"]


def text_reference(sd, ids):
    w = sd["ln_final.weight"].shape[0]
    length = ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:length]
    mask = torch.full((length, length), float("-inf")).triu(1)
    for i in range(_count(sd, "transformer.resblocks.")):
        x = _resblock(x, sd, f"transformer.resblocks.{i}.", w // 64, mask)
    x = F.layer_norm(x, (w,), sd["ln_final.weight"], sd["ln_final.bias"], eps=1e-5)
    return x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ sd["text_projection"]


def _bn_eval(x, sd, p):
    return F.batch_norm(
        x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"]
    )


def resnet_reference(sd, images):
    """OpenAI ModifiedResNet forward in eval mode (BatchNorm with running statistics)."""
    x = images
    for i in (1, 2, 3):
        stride = 2 if i == 1 else 1
        x = F.relu(
            _bn_eval(F.conv2d(x, sd[f"visual.conv{i}.weight"], stride=stride, padding=1), sd, f"visual.bn{i}")
        )
    x = F.avg_pool2d(x, 2)
    for s in range(1, 5):
        for b in range(_count(sd, f"visual.layer{s}.")):
            p = f"visual.layer{s}.{b}."
            stride = 2 if (s > 1 and b == 0) else 1
            out = F.relu(_bn_eval(F.conv2d(x, sd[p + "conv1.weight"]), sd, p + "bn1"))
            out = F.relu(_bn_eval(F.conv2d(out, sd[p + "conv2.weight"], padding=1), sd, p + "bn2"))
            if stride > 1:
                out = F.avg_pool2d(out, stride)
            out = _bn_eval(F.conv2d(out, sd[p + "conv3.weight"]), sd, p + "bn3")
            if p + "downsample.0.weight" in sd:
                short = F.avg_pool2d(x, stride) if stride > 1 else x
                short = _bn_eval(F.conv2d(short, sd[p + "downsample.0.weight"]), sd, p + "downsample.1")
            else:
                short = x
            x = F.relu(out + short)
    n, c, h, w = x.shape
    heads = c // 64
    tokens = x.reshape(n, c, h * w).permute(2, 0, 1)  # [HW, N, C] as OpenAI's attnpool
    tokens = (
        torch.cat([tokens.mean(dim=0, keepdim=True), tokens])
        + sd["visual.attnpool.positional_embedding"][:, None]
    )
    pre = "visual.attnpool."
    out, _ = F.multi_head_attention_forward(
        query=tokens[:1],
        key=tokens,
        value=tokens,
        embed_dim_to_check=c,
        num_heads=heads,
        q_proj_weight=sd[pre + "q_proj.weight"],
        k_proj_weight=sd[pre + "k_proj.weight"],
        v_proj_weight=sd[pre + "v_proj.weight"],
        in_proj_weight=None,
        in_proj_bias=torch.cat([sd[pre + "q_proj.bias"], sd[pre + "k_proj.bias"], sd[pre + "v_proj.bias"]]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=sd[pre + "c_proj.weight"],
        out_proj_bias=sd[pre + "c_proj.bias"],
        use_separate_proj_weight=True,
        training=False,
        need_weights=False,
    )
    return out.squeeze(0)


# -- a tiny BPE tokenizer folder ----------------------------------------------------------------------------------
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz_"
TOKEN_MERGES = [("p", "h"), ("ph", "o"), ("pho", "t"), ("phot", "o</w>"), ("o", "f</w>")]


def tiny_vocab() -> dict[str, int]:
    """CLIP-style BPE vocabulary: every character, alone and word-final (``</w>``), a few merges, then the start
    and end tokens (the end-of-text token has the largest id, as in CLIP)."""
    tokens = list(TOKEN_CHARS) + [c + "</w>" for c in TOKEN_CHARS] + ["".join(m) for m in TOKEN_MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


TINY_VOCAB = len(tiny_vocab())


def write_tiny_tokenizer(folder) -> dict[str, int]:
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in TOKEN_MERGES))
    return vocab
