"""One card family for everything belle-hf publishes: model, adapter, merged, quantized, XOR diff,
GGUF and dataset cards, in the spirit of huggingface_hub's ``ModelCard.from_template``.

Each kind has its own Jinja template in ``model_cards/`` (``model.md``, ``adapter.md``,
``merged.md``, ``quantized.md``, ``xor.md``, ``gguf.md``, ``dataset.md``); the model kinds extend
``_model_base.md``, which holds the shared sections (training data, method, results, evaluation,
how this was made, license, citation). The research-use notice and the citation are
:mod:`belle_hf.citation`'s, the same on every card.

A card reads its folder's provenance (:class:`Provenance`): ``recipe.yaml`` (data sources,
method, template, hyper-parameters), ``metrics.json``, ``quality.json``, an eval ``summary.json``
and ``belle_lineage.json`` (:mod:`belle_hf.hub.lineage`). ``datasets:`` lists only Hub ids;
local files appear in the body by name and SHA-256. Explicit :class:`CardOptions` override what
the folder says; nothing is invented. Every card is validated offline before it is used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from belle_hf.citation import BELLE_CITATION, RESEARCH_USE_NOTICE
from belle_hf.errors import BelleError
from belle_hf.hub.lineage import EVAL_SUMMARY_FILE, chain, read_lineage
from belle_hf.io import read_json_file
from belle_hf.models import is_hub_id, is_well_formed_hub_id
from belle_hf.shipped import shipped_path

MODEL_CARDS_DIR = shipped_path("model_cards")
"""The card templates shipped with belle-hf (override with ``BELLE_MODEL_CARDS``)."""

RELATIONS = ("finetune", "adapter", "quantized", "merge")
TEMPLATES = {"model": "model.md", "adapter": "adapter.md", "merge": "merged.md", "quantized": "quantized.md",
             "xor": "xor.md", "gguf": "gguf.md", "dataset": "dataset.md"}
KINDS = tuple(TEMPLATES)
KIND_RELATION = {"model": "finetune", "adapter": "adapter", "merge": "merge", "quantized": "quantized",
                 "gguf": "quantized", "xor": "finetune"}
"""How the Hub links each kind to its ``base_model``."""

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
QUALITY_FILE = "quality.json"

# The Hub's license identifiers (https://huggingface.co/docs/hub/repositories-licenses), embedded
# so that cards are checked offline; anything else must be ``other`` + license_name/license_link.
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc
cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0
cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0
cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1
eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c
ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib
pddl lgpl-lr deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2
llama3.3 llama4 gemma unknown other
""".split())

# Widget and usage examples are chat ``messages``, rendered by the model's own chat template.
DEFAULT_WIDGET = [
    {"example_title": "介绍", "messages": [{"role": "user", "content": "请用三句话介绍一下北京。"}]},
    {"example_title": "写诗", "messages": [{"role": "user", "content": "写一首关于秋天的五言绝句。"}]},
    {"example_title": "数学", "messages": [{"role": "user", "content": "小明有5个苹果，吃了2个，又买了3个，现在有几个苹果？请一步一步算。"}]},
    {"example_title": "多轮", "messages": [
        {"role": "user", "content": "我想学做饭，从哪道菜开始比较好？"},
        {"role": "assistant", "content": "可以从西红柿炒鸡蛋开始，食材简单，步骤也少。"},
        {"role": "user", "content": "具体应该怎么做？"},
    ]},
]

XOR_GATED_PROMPT = (
    "This repository holds an XOR diff: it can only be decoded with the original base model weights, "
    "which you must have obtained under their license. Confirm that you have."
)

# SFTConfig fields worth a line in the card, in this order, when the recipe sets them.
CARD_HYPERPARAMETERS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "max_length", "packing", "packing_strategy",
    "bf16", "fp16", "deepspeed", "activation_checkpointing", "gradient_checkpointing",
)


def _option(help: str, flag: str, repeatable: bool = False):
    return field(default=None, metadata={"help": help, "flag": flag, "repeatable": repeatable})


@dataclass
class CardOptions:
    """What a push may say about a model beyond what its folder records; each overrides the folder.

    The ``belle hub push-*`` options are derived from these fields (flag and help in each
    field's metadata), so they are declared once.
    """

    base_model: Optional[str] = _option("Hub id of the base model (card: base_model); default: from the folder's "
                                        "lineage or adapter_config.json.", "--base-model")
    datasets: Optional[list[str]] = _option("Hub id of a training dataset (repeatable); default: the sources "
                                            "recorded by belle train.", "--dataset", repeatable=True)
    license: Optional[str] = _option("Hub license id; 'other' needs --license-name and --license-link "
                                     "(e.g. LLaMA-1).", "--license")
    license_name: Optional[str] = _option("Name of an 'other' license (lowercase id, e.g. llama-license).",
                                          "--license-name")
    license_link: Optional[str] = _option("URL (or file in the repo) of an 'other' license.", "--license-link")
    eval_summary: Optional[str] = _option("Eval summary JSON from `belle eval judge --summary` (default: the "
                                          "folder's summary.json), shown as model-index results.", "--eval-summary")
    description: Optional[str] = _option("A paragraph at the top of the card.", "--description")

    def given(self) -> dict[str, Any]:
        """The options that were set (``None`` and empty lists are not)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, [])}


@dataclass
class CardConfig:
    """What a model card says. ``kind`` picks the template, relation, library and usage section."""

    repo_id: str
    kind: str = "model"
    """model (a full fine-tune), adapter (peft), merge (adapter merged into its base), quantized, gguf or xor."""
    base_model: str | None = None
    """Hub id of the model this one derives from (for xor: the license-restricted base)."""
    datasets: list[str] = field(default_factory=list)
    """Hub ids of the training data (no default: an unknown source is left out, not guessed)."""
    license: str = "apache-2.0"
    license_name: str | None = None
    """Required with ``license: other`` (e.g. ``llama-license`` for LLaMA-1's)."""
    license_link: str | None = None
    language: list[str] = field(default_factory=lambda: ["zh", "en"])
    eval_summary: dict[str, Any] | None = None
    """The JSON written by ``belle eval judge --summary`` ({"overall", "per_class", "score_wo_others", "judge"})."""
    quantization: str | None = None
    """Quantization method and bits, e.g. ``GPTQ 4-bit`` or ``GGUF q4_k_m``."""
    library_name: str | None = None
    """Default: transformers; peft for adapters; gguf for GGUF files."""
    title: str | None = None
    description: str = ""
    widget: list[dict[str, Any]] = field(default_factory=lambda: [dict(w) for w in DEFAULT_WIDGET])
    tags: list[str] = field(default_factory=list)
    provenance: "Provenance | None" = None
    """What the folder records (recipe, metrics, quality, lineage, carried evaluations)."""


@dataclass
class Provenance:
    """What a folder records about how it was made; every field is ``None`` when its file is absent."""

    recipe: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    eval_summary: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    folder: Path | None = None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "Provenance":
        from belle_hf.train.recipe import read_yaml

        folder = Path(folder)
        found = cls(folder=folder, lineage=read_lineage(folder) if folder.is_dir() else None)
        for attribute, name in (("metrics", METRICS_FILE), ("quality", QUALITY_FILE),
                                ("eval_summary", EVAL_SUMMARY_FILE)):
            path = folder / name
            if path.is_file():
                setattr(found, attribute, read_json_file(path))
        if found.eval_summary is not None and "overall" not in found.eval_summary:
            found.eval_summary = None  # a summary.json of something else
        if (folder / RECIPE_FILE).is_file():
            try:
                found.recipe = read_yaml((folder / RECIPE_FILE).read_text(encoding="utf-8"))
            except Exception as error:  # yaml errors of any kind: name the file
                raise BelleError(f"{folder / RECIPE_FILE}: not valid YAML: {error}") from None
        return found

    @property
    def records(self) -> list[dict[str, Any]]:
        return chain(self.lineage)

    @property
    def training(self) -> dict[str, Any] | None:
        """The ``train`` record of the chain (the run the weights come from), if any."""
        return next((r for r in self.records if r.get("stage") == "train"), None)

    @property
    def training_recipe(self) -> dict[str, Any] | None:
        """The recipe of the run: the folder's ``recipe.yaml``, else the one its chain recorded."""
        if self.recipe is not None:
            return self.recipe
        record = self.training
        return (record or {}).get("settings", {}).get("recipe")

    @property
    def training_metrics(self) -> dict[str, Any] | None:
        if self.metrics is not None:
            return self.metrics
        return (self.training or {}).get("settings", {}).get("metrics")

    @property
    def data_sources(self) -> list[dict[str, Any]]:
        """The training sources: ``{"source", "hub_id", "sha256", "weight", "max_samples"}`` each."""
        record = self.training
        if record is not None and record.get("data") is not None:
            return record["data"]
        recipe = self.recipe or {}
        return [{"source": Path(str(item.get("path"))).name if os.path.isabs(str(item.get("path"))) else item.get("path"),
                 "hub_id": dataset_hub_id(str(item.get("path"))), "weight": item.get("weight"),
                 "max_samples": item.get("max_samples")}
                for item in recipe.get("data") or [] if isinstance(item, dict)]

    def hub_datasets(self) -> list[str]:
        return list(dict.fromkeys(d["hub_id"] for d in self.data_sources if d.get("hub_id")))

    def _walk(self) -> list[dict[str, Any]]:
        """The chain, child first: each record with its folder on this machine (when the relative
        parent paths still lead there) and the Hub id it was published as."""
        walk, folder = [], self.folder
        for record in self.records:
            current = read_lineage(folder) if folder is not None and folder.is_dir() else None
            walk.append({"record": record, "folder": folder,
                         "published": (current or {}).get("published_as") or record.get("published_as")})
            path = (record.get("parent") or {}).get("path")
            folder = (folder / path) if folder is not None and path and (folder / path).exists() else None
        return walk

    def parent_hub_id(self, index: int = 0) -> str | None:
        """The Hub id of the parent of the ``index``-th record: recorded, or published since."""
        walk = self._walk()
        if index >= len(walk):
            return None
        reference = walk[index]["record"].get("parent") or {}
        if reference.get("id"):
            return reference["id"]
        return walk[index + 1]["published"] if index + 1 < len(walk) else None

    def base_model(self, kind: str) -> str | None:
        """The Hub id the card links as ``base_model`` for ``kind``, from the lineage."""
        records = self.records
        if not records:
            return None
        if kind in ("merge", "xor", "model", "adapter"):
            # A merge and an XOR diff link to the base model the chain started from, as the Hub
            # does for merges; a fine-tune or adapter to the model it was trained from.
            index = next((i for i, r in enumerate(records) if r.get("stage") == "train"), len(records) - 1)
            return self.parent_hub_id(index)
        return self.parent_hub_id(0)

    def evaluation(self) -> tuple[dict[str, Any] | None, str | None]:
        """``(summary, measured_on)``: this folder's own eval summary (``measured_on`` None), else
        the newest one carried from a parent, with the model it was measured on (its Hub id when
        that model has been published)."""
        if self.eval_summary is not None:
            return self.eval_summary, None
        walk = self._walk()
        names = {}
        for index, step in enumerate(walk[1:], start=1):
            reference = walk[index - 1]["record"].get("parent") or {}
            if reference.get("name"):
                names[reference["name"]] = reference.get("id") or step["published"]
        for record in self.records:
            for evaluation in reversed(record.get("evaluations") or []):
                if evaluation.get("overall") is not None:
                    summary = {key: evaluation.get(key) for key in ("overall", "score_wo_others", "per_class")}
                    summary["judge"] = {"model": evaluation.get("judge_model")}
                    measured_on = evaluation.get("measured_on") or "the model this one was made from"
                    return summary, names.get(measured_on) or measured_on
        return None, None

    def how_made(self) -> list[str]:
        """The chain back to the base model and the data, base first, one line per stage."""
        walk = list(reversed(self._walk()))
        if not walk:
            return []
        root = walk[0]["record"].get("parent") or {}
        lines = [f"base model: `{self.parent_hub_id(len(walk) - 1) or root.get('name') or 'unknown'}`"]
        for step in walk:
            record = step["record"]
            settings = record.get("settings") or {}
            stage = record.get("stage")
            if stage == "train":
                sources = ", ".join(f"`{d.get('hub_id') or d.get('source')}`" for d in record.get("data") or [])
                detail = f"{(settings.get('recipe') or {}).get('method', '')} fine-tuning with TRL on {sources or 'recorded data'}"
            elif stage == "quantize":
                detail = " ".join(str(settings[k]) for k in ("method", "bits") if settings.get(k)) + "-bit quantization"
            else:
                detail = {"merge": "LoRA adapter merged into its base (peft merge_and_unload)",
                          "gguf-export": f"GGUF export ({settings.get('type', '')})",
                          "xor-encode": "XOR diff against the base weights"}.get(stage, str(stage))
            published = f", published as `{step['published']}`" if step["published"] else ""
            lines.append(f"{stage}: {detail.strip()}{published}")
        return lines


def dataset_hub_id(source: str) -> str | None:
    """The Hub dataset id behind a training source (a BELLE corpus, ``hf://datasets/...`` or an
    ``owner/name`` id), or ``None`` for local files and bundled samples."""
    from belle_hf.data.registry import resolve_corpus

    corpus = resolve_corpus(source)
    if corpus is not None:
        return corpus.repo_id
    if source.startswith("hf://datasets/"):
        return "/".join(source[len("hf://datasets/"):].split("/")[:2])
    return source if is_hub_id(source) and ":" not in source else None


def load_eval_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Read an eval summary JSON (``belle eval judge --summary``); :class:`BelleError` if malformed."""
    summary = read_json_file(path, missing=f"eval summary not found: {path}")
    if not isinstance(summary, dict) or "overall" not in summary:
        raise BelleError(f"{path}: not an eval summary (needs at least 'overall', from belle eval judge --summary)")
    return summary


def _eval_results(summary: dict[str, Any], measured_on: str | None = None):
    from huggingface_hub import EvalResult

    judge = summary.get("judge") or {}
    judge_model = judge.get("model") or "an LLM judge"
    where = f", measured on {measured_on}" if measured_on else ""
    common = {"task_type": "text-generation", "task_name": "Chinese instruction following",
              "dataset_type": "BelleGroup/eval_set", "dataset_name": "BELLE eval set", "dataset_split": "test",
              "verified": False}
    results = []
    scores = [("overall", "Overall judge score", summary.get("overall")),
              ("score_wo_others", "Judge score without math and code", summary.get("score_wo_others"))]
    scores += [("score_" + re.sub(r"\W+", "_", name).strip("_"), f"Judge score ({name})", value)
               for name, value in sorted((summary.get("per_class") or {}).items())]
    for metric_type, metric_name, value in scores:
        if value is None:
            continue
        results.append(EvalResult(metric_type=metric_type, metric_name=f"{metric_name}, judged by {judge_model}{where}",
                                  metric_value=round(float(value), 4), **common))
    return results


def _library(config: CardConfig) -> str | None:
    if config.library_name:
        return config.library_name
    if config.kind == "adapter":
        return "peft"
    if config.kind == "xor":
        return None  # the repo itself is not loadable; decoding gives a transformers folder
    if config.kind == "gguf" or (config.quantization and "gguf" in config.quantization.lower()):
        return "gguf"
    return "transformers"


def _measured_on(config: CardConfig) -> tuple[dict[str, Any] | None, str | None]:
    if config.eval_summary is not None:
        return config.eval_summary, None
    if config.provenance is not None:
        return config.provenance.evaluation()
    return None, None


def card_data(config: CardConfig):
    """The card's metadata as :class:`huggingface_hub.ModelCardData`."""
    from huggingface_hub import ModelCardData

    if config.kind not in KINDS or config.kind == "dataset":
        raise BelleError(f"card kind must be one of {', '.join(k for k in KINDS if k != 'dataset')}, "
                         f"not {config.kind!r}")
    tags = ["belle", "chinese", "conversational", "text-generation"]
    tags += {"adapter": ["lora", "peft"], "quantized": ["quantized"], "gguf": ["quantized", "gguf"],
             "merge": ["merge"], "xor": ["xor-diff"]}.get(config.kind, [])
    if config.quantization:
        tags.append(config.quantization.split()[0].lower())
    extra: dict[str, Any] = {"widget": config.widget}
    if config.base_model:
        extra["base_model_relation"] = KIND_RELATION[config.kind]
    if config.kind == "xor":
        extra.update(
            extra_gated_heading="Access requires the original base model",
            extra_gated_prompt=XOR_GATED_PROMPT,
            extra_gated_fields={"I have obtained the base model weights under their license": "checkbox",
                                "I will use this model for research only": "checkbox"},
        )
    summary, measured_on = _measured_on(config)
    eval_results = _eval_results(summary, measured_on) if summary else None
    return ModelCardData(
        language=config.language,
        license=config.license,
        license_name=config.license_name,
        license_link=config.license_link,
        library_name=_library(config),
        pipeline_tag="text-generation",
        tags=list(dict.fromkeys(tags + config.tags)),
        base_model=config.base_model,
        datasets=config.datasets or None,
        model_name=config.repo_id.split("/")[-1] if eval_results else None,
        eval_results=eval_results,
        **extra,
    )


def templates_dir() -> Path:
    return Path(os.environ.get("BELLE_MODEL_CARDS", MODEL_CARDS_DIR))


def render_card(kind: str, data, template: str | os.PathLike | None = None, **variables) -> str:
    """Render the template of ``kind`` (or the file ``template``) with ``data`` (card metadata) as its
    YAML header, as ``ModelCard.from_template`` does; templates may extend each other."""
    import jinja2

    path = Path(template) if template is not None else templates_dir() / TEMPLATES[kind]
    if not path.is_file():
        raise BelleError(f"card template not found: {path} (set BELLE_MODEL_CARDS to the model_cards/ folder of a "
                         "belle-hf checkout, or pass a template)")
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader([str(path.parent), str(templates_dir())]),
                                     keep_trailing_newline=True)
    return environment.get_template(path.name).render(
        card_data=data.to_yaml(), kind=kind, research_notice=RESEARCH_USE_NOTICE, citation=BELLE_CITATION,
        **variables)


def _recipe_rows(recipe: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if not recipe:
        return []
    rows = [("method", recipe.get("method")), ("chat template", recipe.get("template")), ("seed", recipe.get("seed"))]
    lora = recipe.get("lora") or {}
    if recipe.get("method") in ("lora", "qlora") and lora:
        rows += [("LoRA r / alpha / dropout", f"{lora.get('r')} / {lora.get('alpha')} / {lora.get('dropout')}"),
                 ("LoRA target modules", lora.get("target_modules") or "per-architecture default")]
    training = recipe.get("training") or {}
    rows += [(key, training[key]) for key in CARD_HYPERPARAMETERS if key in training]
    return [(key, value) for key, value in rows if value is not None]


def _result_rows(metrics: dict[str, Any] | None) -> list[tuple[str, str]]:
    results = {**((metrics or {}).get("train") or {}), **((metrics or {}).get("eval") or {})}
    return [(key, f"{value:.4g}" if isinstance(value, float) else str(value)) for key, value in results.items()]


def build_model_card(config: CardConfig, template: str | os.PathLike | None = None, **extra_vars):
    """Render the card for ``config`` from its kind's template and validate it offline.

    ``extra_vars`` reach the template (e.g. ``xor_files`` for decode instructions).
    """
    from huggingface_hub import ModelCard

    data = card_data(config)
    provenance = config.provenance or Provenance()
    summary, measured_on = _measured_on(config)
    metrics = provenance.training_metrics
    content = render_card(
        config.kind, data, template,
        repo_id=config.repo_id,
        title=config.title or config.repo_id.split("/")[-1],
        description=config.description,
        base_model=config.base_model,
        quantization=config.quantization,
        datasets=config.datasets,
        data_sources=provenance.data_sources,
        recipe=provenance.training_recipe,
        recipe_rows=_recipe_rows(provenance.training_recipe),
        result_rows=_result_rows(metrics),
        examples=(metrics or {}).get("examples"),
        eval_summary=summary or None,
        measured_on=measured_on,
        judge_model=((summary or {}).get("judge") or {}).get("model"),
        quality=provenance.quality,
        how_made=provenance.how_made(),
        license_name=config.license_name,
        license_link=config.license_link,
        **extra_vars,
    )
    card = ModelCard(content)
    validate_card(card)
    return card


def card_for_folder(folder: str | os.PathLike, repo_id: str, kind: str, options: CardOptions | None = None,
                    **config_values) -> CardConfig:
    """The :class:`CardConfig` of ``folder`` published as ``repo_id``: what the folder records,
    with ``options`` (and ``config_values``, e.g. ``quantization``) overriding it."""
    provenance = Provenance.from_folder(folder)
    given = (options or CardOptions()).given()
    summary = given.pop("eval_summary", None)
    if summary is not None and not isinstance(summary, dict):
        summary = load_eval_summary(summary)
    values: dict[str, Any] = {"base_model": provenance.base_model(kind), "datasets": provenance.hub_datasets(),
                              "provenance": provenance}
    if (provenance.training_recipe or {}).get("description") and "description" not in given:
        values["description"] = str(provenance.training_recipe["description"]).strip()
    values.update(given)
    values.update({key: value for key, value in config_values.items() if value is not None})
    return CardConfig(repo_id=repo_id, kind=kind, eval_summary=summary, **values)


def _check_repo_ids(value: Any, field_name: str, problems: list[str]) -> None:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not is_well_formed_hub_id(item):
            problems.append(f"{field_name}: {item!r} is not a well-formed Hub id (namespace/name)")


def validate_card(card, require_license_details: bool = True) -> None:
    """Check a ModelCard or DatasetCard (or a card's text) offline, as the Hub would; :class:`BelleError` lists every problem.

    Checks: the YAML header parses to a mapping; the license is one of the Hub's identifiers
    (``other`` needs ``license_name`` and ``license_link``); ``widget`` is a list of examples
    with ``messages`` lists or ``text``; ``datasets`` and ``base_model`` are well-formed ids;
    ``base_model_relation`` is one the Hub knows. ``require_license_details=False`` accepts
    ``license: other`` without a name and link (dataset cards of unlisted data).
    """
    import yaml

    content = str(card)
    match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
    if not match:
        raise BelleError("card has no YAML metadata header")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        raise BelleError(f"card metadata is not valid YAML: {error}") from None
    if not isinstance(meta, dict):
        raise BelleError("card metadata must be a YAML mapping")
    problems: list[str] = []
    licenses = meta.get("license")
    for license_id in licenses if isinstance(licenses, list) else [licenses]:
        if license_id is None:
            problems.append("license: missing")
        elif license_id not in HUB_LICENSES:
            problems.append(f"license: {license_id!r} is not a Hub license id; use 'other' with license_name "
                            "and license_link")
    if licenses == "other" and require_license_details:
        if not meta.get("license_name") or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", str(meta.get("license_name"))):
            problems.append("license_name: required with license 'other' (lowercase id, e.g. llama-license)")
        if not meta.get("license_link"):
            problems.append("license_link: required with license 'other' (URL or LICENSE file in the repo)")
    if "widget" in meta:
        widget = meta["widget"]
        if not isinstance(widget, list):
            problems.append("widget: must be a list of examples")
        else:
            for index, example in enumerate(widget):
                messages = example.get("messages") if isinstance(example, dict) else None
                if isinstance(example, dict) and "text" in example and messages is None:
                    continue
                if not isinstance(messages, list) or not messages or not all(
                        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                        and isinstance(m.get("content"), str) for m in messages):
                    problems.append(f"widget[{index}]: needs a 'messages' list of {{role, content}}")
    if meta.get("datasets") is not None:
        _check_repo_ids(meta["datasets"], "datasets", problems)
    if meta.get("base_model") is not None:
        _check_repo_ids(meta["base_model"], "base_model", problems)
    relation = meta.get("base_model_relation")
    if relation is not None and relation not in RELATIONS:
        problems.append(f"base_model_relation: {relation!r} is not one of {', '.join(RELATIONS)}")
    if relation is not None and meta.get("base_model") is None:
        problems.append("base_model_relation: needs base_model")
    if meta.get("tags") is not None and not (isinstance(meta["tags"], list)
                                             and all(isinstance(t, str) for t in meta["tags"])):
        problems.append("tags: must be a list of strings")
    if problems:
        raise BelleError("invalid card metadata:\n  " + "\n  ".join(problems))
