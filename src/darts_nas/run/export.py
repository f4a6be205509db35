"""`darts-nas export CHECKPOINT --format onnx|torchscript`: a trained network as a file other runtimes load, checked
by running the exported file against PyTorch.

- Image networks (CIFAR, ImageNet): input ``images`` [batch, C, H, W] (normalized as in training: the mean and
  std are recorded in the checkpoint and printed), output ``logits``; any batch size. The auxiliary head and
  drop-path are training-only and not exported.
- Language models: inputs ``tokens`` [steps, batch] and ``hidden`` [batch, units], outputs ``logits`` [steps,
  batch, vocabulary] and ``next_hidden``; any batch size, but a fixed number of steps (``--steps``, default the
  training BPTT), since both formats record the recurrence unrolled over the steps.

ONNX goes through ``torch.onnx.export`` (the torch.export-based exporter, which needs onnxscript) and is checked
with onnxruntime; TorchScript through ``torch.jit.trace`` (deprecated in PyTorch in favour of torch.export, but
still what C++ and older deployments load), checked with ``torch.jit.load``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from ..errors import DartsNasError

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


class LanguageModelExport(torch.nn.Module):
    """The language model with the two outputs a deployment needs (logits, next hidden state)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens, hidden):
        logits, last, _, _ = self.model(tokens, hidden)
        return logits, last


def _load(path):
    """(module in eval mode, example inputs, input names, output names, dynamic dims, description, state)."""
    from .checkpoint import LM_TRAIN_KIND, TRANSFORMER_TRAIN_KIND
    from .dispatch import load_trained, trained_kind

    file, state = load_trained(path)
    if trained_kind(state) == TRANSFORMER_TRAIN_KIND:
        raise DartsNasError(f"{path}: export covers image networks and recurrent language models; a trained "
                            "reversible Transformer is not exported yet")
    if trained_kind(state) == LM_TRAIN_KIND:
        from .lm import load_lm

        model, state = load_lm(file, state=state)
        return model, state, True
    from .train import load_network

    model, state = load_network(file, state=state)
    return model, state, False


def example_inputs(model, state, language: bool, batch: int, steps: int | None):
    if language:
        steps = steps or int(state.get("config", {}).get("bptt", 35))
        vocab = model.hparams.get("vocab_size") or model.encoder.weight.shape[0]
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, vocab, (steps, batch), generator=g)
        hidden = 0.1 * torch.randn(batch, model.units, generator=g)
        return (tokens, hidden)
    hp, config = model.hparams, state.get("config", {})
    size = 32 if hp.get("kind", "cifar") == "cifar" else int(config.get("image_size", 224))
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, hp.get("in_channels", 3), size, size, generator=g),)


def export_model(path, fmt: str, out=None, steps: int | None = None, tolerance: float = 1e-4) -> dict:
    """Export the trained network in `path` (best.pt, last.pt, checkpoint.pt or a run directory) to `fmt`; run the
    exported file on a batch of another size and compare its outputs with PyTorch's. Returns what was written
    and the largest absolute difference; stops if it exceeds `tolerance`."""
    if fmt not in FORMATS:
        raise DartsNasError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    model, state, language = _load(path)
    model.eval()
    module = LanguageModelExport(model).eval() if language else model
    src = Path(path)
    stem = ("best" if language else "last") if src.is_dir() else src.stem  # what the loaders read in a run dir
    out = Path(out) if out else (src if src.is_dir() else src.parent) / f"{stem}{SUFFIX[fmt]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = example_inputs(model, state, language, 2, steps)
    names_in = ["tokens", "hidden"] if language else ["images"]
    names_out = ["logits", "next_hidden"] if language else ["logits"]
    check = example_inputs(model, state, language, 3, inputs[0].shape[0] if language else None)
    with torch.no_grad():
        expected = module(*check)
    expected = expected if isinstance(expected, tuple) else (expected,)
    if fmt == "onnx":
        _export_onnx(module, inputs, out, names_in, names_out, language)
        got = _run_onnx(out, names_in, check)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice
            traced = torch.jit.trace(module, inputs)
            traced.save(str(out))
            loaded = torch.jit.load(str(out))
            with torch.no_grad():
                got = loaded(*check)
        got = [t.numpy() for t in (got if isinstance(got, tuple) else (got,))]
    diff = max(float(abs(torch.as_tensor(g) - e).max()) for g, e in zip(got, expected))
    result = {"path": str(out), "format": fmt, "inputs": names_in, "outputs": names_out,
              "input_shapes": [list(t.shape) for t in check], "max_abs_diff": diff, "language_model": language}
    if not language and "data" in state:
        result["normalization"] = {"mean": state["data"]["mean"], "std": state["data"]["std"]}
    if diff > tolerance:
        raise DartsNasError(f"{out}: the exported {fmt} network differs from PyTorch by {diff:.3g} (more than "
                            f"{tolerance:g}); the file is kept for inspection")
    return result


def _export_onnx(module, inputs, out: Path, names_in, names_out, language: bool) -> None:
    from ..plots import need

    need("onnxscript", "ONNX export")
    need("onnx", "ONNX export")
    batch = torch.export.Dim("batch")
    dynamic = ({1: batch}, {0: batch}) if language else ({0: batch},)
    log = io.StringIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # progress lines and notes about absent optional packages (torchvision)
    with warnings.catch_warnings(), contextlib.redirect_stdout(log):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, inputs, str(out), dynamo=True, input_names=names_in, output_names=names_out,
                              dynamic_shapes=dynamic, external_data=False)
        except Exception as e:  # the exporter's own errors are long: keep the first line
            raise DartsNasError(f"ONNX export failed: {str(e).strip().splitlines()[0][:300]}") from None
        finally:
            quiet.setLevel(level)


def _run_onnx(path: Path, names_in, inputs) -> list:
    from ..plots import need

    ort = need("onnxruntime", "checking the ONNX export")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {n: t.numpy() for n, t in zip(names_in, inputs)})
