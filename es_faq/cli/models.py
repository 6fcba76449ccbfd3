"""`es-faq models ...` and `es-faq train ...`: model files, and training new ones."""

from __future__ import annotations

from pathlib import Path

import click

from ..config.settings import Settings
from ..models import manifest as models_mod
from ..models.onnx import execution_providers
from .common import _emit, pass_settings


@click.group()
def models() -> None:
    """ONNX models: provision, inspect, export."""


@models.command("pull")
@click.argument("names", nargs=-1)
@pass_settings
def models_pull(settings: Settings, names: tuple[str, ...]) -> None:
    """Fetch models (default: the embedding model, and the cross-encoder when searches decide or
    rerank with it) into the cache, checking sha256.

    A trained model comes from onnx_models/ when shipped there; a pull never trains one (that is
    `es-faq train`, docs/training.md)."""
    defaults = (settings.embed_model, *((settings.rerank_model,) if settings.uses_reranker else ()))
    for name in names or defaults:
        path = models_mod.pull(models_mod.Manifest.load(name), settings)
        click.echo(f"{name}: ready in {path}")


@models.command("list")
@pass_settings
def models_list(settings: Settings) -> None:
    """Known models, whether their files are in the cache, and the execution provider."""
    providers = execution_providers()
    rows = []
    for manifest in models_mod.list_manifests():
        problems = models_mod.verify(manifest, settings)
        rows.append({"name": manifest.name, "task": manifest.data.get("task"), "dims": manifest.data.get("dims"),
                     "quantization": manifest.data.get("quantization"), "ready": not problems,
                     "provider": providers[0], "problems": problems})
    _emit(rows)


@models.command("ship")
@click.argument("name")
@pass_settings
def models_ship(settings: Settings, name: str) -> None:
    """Put a trained model's INT8 file into onnx_models/NAME/ with pinned sha256 (to commit)."""
    click.echo(f"{name}: shipped in {models_mod.ship(models_mod.Manifest.load(name), settings)}")


@models.command("quantize")
@click.argument("source")
@click.argument("name")
@click.option("--calibration", "calibration", multiple=True, required=True, type=click.Path(path_type=Path),
              help="FAQ JSONL whose questions set the activation ranges (repeatable).")
@click.option("--size", default=256, show_default=True,
              help="Calibration texts (a seeded sample; percentile ranges keep every activation in memory: "
                   "about 17 MB a text).")
@click.option("--seed", default=13, show_default=True)
@pass_settings
def models_quantize(settings: Settings, source: str, name: str, calibration: tuple[Path, ...], size: int,
                    seed: int) -> None:
    """Ship a static-INT8 copy of the fp32 embedder SOURCE as onnx_models/NAME/ (batch-independent vectors)."""
    from ..models.quantize import derive_static

    click.echo(f"{name}: shipped in {derive_static(settings, source, name, calibration, size, seed)}")


@models.command("requantize")
@click.argument("source")
@click.argument("name")
@pass_settings
def models_requantize(settings: Settings, source: str, name: str) -> None:
    """Ship the embedder es-faq trained as SOURCE again as onnx_models/NAME/ in dynamic INT8, run one text at a
    time (the same int8 weights; needs the [train] extra)."""
    from ..train.embedder import requantize_embedder

    click.echo(f"{name}: shipped in {requantize_embedder(settings, source, name)}")


@models.command("export")
@click.argument("model_id")
@click.option("--int8", is_flag=True, help="Also quantize to INT8 (dynamic, AVX2).")
@click.option("--output", type=click.Path(path_type=Path), default=None)
@pass_settings
def models_export(settings: Settings, model_id: str, int8: bool, output: Path | None) -> None:
    """Export a Hugging Face model (hub id or local directory) to ONNX with optimum."""
    from ..models.export import export

    target = output or settings.models_path / model_id.rstrip("/").split("/")[-1]
    click.echo(f"exported to {export(model_id, target, int8)}")


# --- train ------------------------------------------------------------------------------------------
def _layer_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give encoder layer indices separated by commas, e.g. 0,3") from None


@click.group()
def train() -> None:
    """Fine-tune the reranker or the embedder on a faq-bench directory (needs the [train] extra)."""


@train.command("reranker")
@click.argument("name", default="reranker-zh")
@click.option("--corpus", "corpora", multiple=True, help="A pair corpus under pairs_dir (repeatable; default: "
              "bq, atec, atec-preprocessed, chip2019).")
@click.option("--bench", "benches", multiple=True, help="A faq-bench under bench_dir whose train groups to add "
              "(repeatable; default: diac).")
@click.option("--corpus-limit", type=click.IntRange(1), default=None, help="Sample this many pairs of each corpus.")
@click.option("--mined-per-query", type=click.IntRange(0), default=None, help="Mined negatives per bench query.")
@click.option("--bench-repeat", type=click.IntRange(1), default=None,
              help="Times a bench's pairs are seen each epoch (they are few and in the decision's own shape).")
@click.option("--hard-cases", type=click.IntRange(0), default=None,
              help="Texts the hard-case generator edits into near-misses and paraphrases (0: none).")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--max-tokens", type=click.IntRange(8, 512), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--no-bf16", "bf16", flag_value=False, default=None, help="Train in fp32 (CPUs without avx512_bf16).")
@click.option("--train-word-embeddings", "freeze_word_embeddings", flag_value=False, default=None,
              help="Update the word embeddings too (slower a step on CPU).")
@click.option("--init", default=None, help="A shipped cross-encoder to continue from (e.g. reranker-zh) instead of "
              "bge-small-zh-v1.5.")
@click.option("--both-orders", "both_orders", flag_value=True, default=None,
              help="Train on each pair read both ways, (a, b) and (b, a), in the same step (2 x batch-size sequences).")
@click.option("--layers", callback=_layer_list, default=None,
              help="Keep only these encoder layers of the starting model, e.g. 0,3: a smaller, faster cross-encoder.")
@click.option("--teacher", default=None,
              help="A shipped cross-encoder (e.g. reranker-zh) or embedder (e.g. embedder-zh: its cosine, put on a "
              "logit scale by a logistic fit on the run's labels) whose verdicts the run learns from besides the "
              "labels (distillation; see --distill-weight).")
@click.option("--distill-weight", type=click.FloatRange(0, 1), default=None,
              help="Share of the teacher in each target: (1 - w) x label + w x sigmoid(teacher logit). Default 0.5.")
@click.option("--distill-on", type=click.Choice(["all", "real", "corpora"]), default=None,
              help="Pairs the teacher speaks on: all (default); real, the labelled pairs (corpora and benches: the "
              "generated hard cases keep their labels); or corpora, the pair corpora only.")
@click.option("--eval-every", type=click.IntRange(1), default=None, help="Steps between dev evaluations.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help="Steps between checkpoints.")
@pass_settings
def train_reranker_cmd(settings: Settings, name: str, corpora: tuple[str, ...], benches: tuple[str, ...],
                       **options) -> None:
    """The cross-encoder from bge-small-zh-v1.5, on labelled pairs plus a bench's train groups.

    Resumable: run the same command again after an interruption and it continues from the last
    checkpoint under ~/.cache/es-faq/train-runs/NAME. Ends with the ONNX export (fp32 + INT8)."""
    from ..train.cross_encoder import recipe_of, train_reranker

    recipe = recipe_of(corpora=list(corpora) or None, benches=list(benches) or None, **options)
    _emit(train_reranker(settings, name, recipe))


@train.command("embedder")
@click.argument("name", default="embedder-zh")
@click.option("--corpus", "corpora", multiple=True, help="A pair corpus under pairs_dir (repeatable; default: "
              "bq, atec, chip2019).")
@click.option("--bench", "benches", multiple=True, help="A faq-bench under bench_dir whose train groups to add "
              "(repeatable; default: diac, bq, atec).")
@click.option("--mine", "mine", multiple=True, help="A bench whose groups get negatives mined by the hybrid search "
              "(repeatable; default: diac, bq).")
@click.option("--corpus-limit", type=click.IntRange(1), default=None, help="Sample this many pairs of each corpus.")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(2), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--temperature", type=float, default=None, help="InfoNCE temperature.")
@click.option("--hard-cases", type=click.IntRange(0), default=None,
              help="Texts the hard-case generator edits: each near-miss becomes a hard negative, each "
              "meaning-keeping edit a query (0, the default: none).")
@click.option("--init", default=None, help="A shipped embedder es-faq trained to continue from (e.g. embedder-zh) "
              "instead of bge-small-zh-v1.5.")
@click.option("--seed", type=int, default=None)
@click.option("--no-bf16", "bf16", flag_value=False, default=None, help="Train in fp32 (CPUs without avx512_bf16).")
@click.option("--eval-every", type=click.IntRange(1), default=None, help="Steps between dev evaluations.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help="Steps between checkpoints.")
@pass_settings
def train_embedder_cmd(settings: Settings, name: str, corpora: tuple[str, ...], benches: tuple[str, ...],
                       mine: tuple[str, ...], **options) -> None:
    """The bi-encoder from bge-small-zh-v1.5: InfoNCE with in-batch and hard negatives.

    Resumable like `train reranker` (~/.cache/es-faq/train-runs/NAME); ends with the ONNX export
    (fp32 + dynamic INT8). Ship it with `es-faq models ship NAME`."""
    from ..train.embedder import recipe_of, train_embedder

    recipe = recipe_of(corpora=list(corpora) or None, benches=list(benches) or None, mine=list(mine) or None,
                       **options)
    _emit(train_embedder(settings, name, recipe))
