"""Hub-native dataset repositories: dataset cards, parquet shards, ``push_to_hub``.

``datasets`` >= 4 no longer runs loading scripts, so a dataset repository on the Hub is
parquet shards plus a dataset card whose YAML header declares the ``configs`` (which files
make which split) and the ``dataset_info`` features. This module makes both:

* :func:`dataset_card` renders the card of a BELLE corpus (or of any converted file) from the
  ``dataset`` template of the card family (:mod:`belle_hf.hub.cards`) as a
  :class:`huggingface_hub.DatasetCard`; :func:`write_dataset_scripts` regenerates
  ``datasets_scripts/<corpus>/README.md`` for every corpus in the registry
  (``python -m belle_hf.data.publish`` or ``belle data card all -o datasets_scripts``);
* :func:`publish_local` normalizes a source and writes the repository layout to a folder
  (``README.md`` + ``messages/train-00000-of-00001.parquet``) that
  ``datasets.load_dataset(folder, "messages")`` loads;
* :func:`publish_to_hub` pushes the same with ``Dataset.push_to_hub(repo_id, config_name=...)``
  and then the card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from belle_hf.citation import RESEARCH_USE_NOTICE
from belle_hf.data.registry import CORPORA, Corpus, resolve_corpus
from belle_hf.errors import BelleError
from belle_hf.io import atomic_dir

DEFAULT_CONFIG = "messages"
DEFAULT_SPLIT = "train"
DEFAULT_MAX_SHARD_SIZE = "300MB"
DEFAULT_ROW_GROUP_SIZE = "100MB"
DATASETS_SCRIPTS = Path(__file__).resolve().parents[3] / "datasets_scripts"
"""Where the cards of the registry's corpora live in a checkout of this repository."""



def messages_features():
    """The ``datasets.Features`` of normalized records: ``messages``, ``id``, ``source``."""
    import datasets

    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({"messages": datasets.List(message), "id": datasets.Value("string"),
                              "source": datasets.Value("string")})


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket of ``rows``."""
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if rows < bound:
            return label
    return "100M<n<1B"


def _data_files_pattern(config_name: str, split: str) -> str:
    return f"{config_name}/{split}-*.parquet"


def dataset_card(
    corpus: Corpus | str,
    *,
    repo_id: str | None = None,
    config_name: str = DEFAULT_CONFIG,
    split: str = DEFAULT_SPLIT,
    dataset_info: Any = None,
    num_rows: int | None = None,
):
    """The dataset card (:class:`huggingface_hub.DatasetCard`) of a repository holding ``corpus``.

    Args:
        corpus: a registry corpus (or its name), or a :class:`Corpus` describing other data.
        repo_id: the repository the card is for (default: the corpus's Hub id).
        config_name, split: the config and split the parquet shards make.
        dataset_info: a ``datasets.DatasetInfo`` (features, split sizes) of the published data;
            default: the ``messages`` features without sizes.
        num_rows: the exact number of rows, when known.
    """
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    from belle_hf.hub.cards import render_card

    if isinstance(corpus, str):
        found = resolve_corpus(corpus)
        if found is None:
            raise BelleError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
        corpus = found
    repo_id = repo_id or corpus.repo_id
    rows = num_rows or corpus.approx_rows
    card_data = DatasetCardData(
        language=["zh"],
        license=corpus.license,
        pretty_name=corpus.name,
        task_categories=["text-generation"],
        size_categories=[size_category(rows)],
        tags=["belle", "chinese", "instruction-tuning", "sft", "conversational", "trl"],
    )
    info = dataset_info if dataset_info is not None else DatasetInfo(features=messages_features())
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card_data)
    MetadataConfigs({config_name: {"data_files": [{"split": split, "path": _data_files_pattern(config_name, split)}],
                                   "default": True}}).to_dataset_card_data(card_data)
    upstream = resolve_corpus(corpus.name)
    return DatasetCard(render_card(
        "dataset",
        card_data,
        pretty_name=corpus.name,
        description=corpus.description,
        license_note=corpus.license_note,
        config_name=config_name,
        split=split,
        repo_id=repo_id,
        upstream_repo_id=upstream.repo_id if upstream is not None else None,
        upstream_file=corpus.filename,
        schema=corpus.schema,
        publish_source=corpus.name if upstream is not None else corpus.filename,
        num_rows=num_rows,
        approx_rows=corpus.approx_rows,
        card_data_license=corpus.license,
    ))


def write_card(corpus: Corpus | str, out_dir: str | os.PathLike, **card_kwargs) -> Path:
    """Write ``out_dir/README.md``, the card of ``corpus`` (atomically)."""
    from belle_hf.io import atomic_write_text

    path = Path(out_dir) / "README.md"
    atomic_write_text(path, str(dataset_card(corpus, **card_kwargs)))
    return path


def write_dataset_scripts(root: str | os.PathLike = DATASETS_SCRIPTS) -> list[Path]:
    """Regenerate ``root/<corpus>/README.md`` for every corpus in the registry."""
    return [write_card(corpus, Path(root) / name) for name, corpus in CORPORA.items()]


# --- publishing data ---------------------------------------------------------------------------


@dataclass
class PublishResult:
    """Where the data went and how much of it."""

    destination: str
    config_name: str
    split: str
    rows: int
    files: list[str]

    def summary(self) -> str:
        return (f"{self.rows} rows -> {self.destination} (config {self.config_name}, split {self.split}, "
                f"{len(self.files)} parquet file(s))")


def corpus_for(source: str | os.PathLike, license: str | None = None, rows: int | None = None) -> Corpus:
    """The registry corpus ``source`` names or whose file it is, else a :class:`Corpus` describing it."""
    name = str(source)
    corpus = resolve_corpus(name)
    if corpus is None:
        filename = Path(name).name
        corpus = next((c for c in CORPORA.values() if c.filename == filename), None)
    if corpus is None:
        stem = Path(name).stem
        corpus = Corpus(name=stem, repo_id=stem, filename=Path(name).name, schema="auto",
                        approx_rows=rows or 0, license=license or "other", license_note=RESEARCH_USE_NOTICE,
                        description=f"Conversations from `{Path(name).name}`, normalized to TRL's `messages` "
                                    f"format by belle-hf.")
    elif license:
        corpus = replace(corpus, license=license)
    return corpus


def _normalized_dataset(source: str | os.PathLike, schema: str | None):
    from belle_hf.data.loading import load
    from belle_hf.data.stream import iter_normalized
    from belle_hf.errors import DataFormatError

    try:
        dataset = load(source, schema=schema)
    except DataFormatError as error:
        if error.location is None and Path(source).is_file():
            # ``datasets`` cannot say which line was bad; one streaming pass finds and names it.
            for _ in iter_normalized(source, schema=schema or "auto"):
                pass
        raise
    return dataset.cast(messages_features())


def publish_local(
    source: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    config_name: str = DEFAULT_CONFIG,
    split: str = DEFAULT_SPLIT,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    row_group_size: str | int = DEFAULT_ROW_GROUP_SIZE,
    schema: str | None = None,
    license: str | None = None,
    repo_id: str | None = None,
) -> PublishResult:
    """Normalize ``source`` and write a Hub dataset repository to ``folder``.

    ``folder`` gets ``README.md`` (the card, with ``configs`` and ``dataset_info``) and
    ``<config_name>/<split>-0000i-of-0000n.parquet`` shards of at most ``max_shard_size``
    (uncompressed), with row groups of at most ``row_group_size``: the layout
    ``push_to_hub`` makes. The folder is written beside its final place and renamed
    into it when complete; an existing ``folder`` is replaced.
    """
    from datasets.info import DatasetInfo
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.py_utils import convert_file_size_to_int

    dataset = _normalized_dataset(source, schema)
    nbytes = dataset.data.nbytes
    num_shards = int(nbytes / convert_file_size_to_int(max_shard_size)) + 1
    rows_per_group = max(1, len(dataset) * convert_file_size_to_int(row_group_size) // max(nbytes, 1))
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        files = []
        for index in range(num_shards):
            relative = f"{config_name}/{split}-{index:05d}-of-{num_shards:05d}.parquet"
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True)
            shard.to_parquet(tmp / relative, batch_size=rows_per_group)
            files.append(relative)
        info = DatasetInfo(
            features=dataset.features,
            splits=SplitDict({split: SplitInfo(name=split, num_bytes=nbytes, num_examples=len(dataset))}),
            download_size=sum((tmp / f).stat().st_size for f in files),
            dataset_size=nbytes,
        )
        corpus = corpus_for(source, license=license, rows=len(dataset))
        card = dataset_card(corpus, repo_id=repo_id or corpus.repo_id, config_name=config_name, split=split,
                            dataset_info=info, num_rows=len(dataset))
        (tmp / "README.md").write_text(str(card), encoding="utf-8")
    return PublishResult(str(folder), config_name, split, len(dataset), files)


def publish_to_hub(
    source: str | os.PathLike,
    repo_id: str,
    *,
    config_name: str = DEFAULT_CONFIG,
    split: str = DEFAULT_SPLIT,
    private: bool = False,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    schema: str | None = None,
    license: str | None = None,
    token: str | None = None,
) -> PublishResult:
    """Normalize ``source`` and push it to the Hub dataset ``repo_id`` (follows ``HF_ENDPOINT``).

    ``Dataset.push_to_hub(repo_id, config_name=...)`` uploads the parquet shards (at most
    ``max_shard_size`` each) and records their features and sizes in the card's
    ``dataset_info``; the card rendered by :func:`dataset_card`, carrying those, is pushed after.
    The token comes from ``token``, ``HF_TOKEN`` or the saved login, and is never logged.
    """
    from huggingface_hub import DatasetCard

    dataset = _normalized_dataset(source, schema)
    dataset.push_to_hub(repo_id, config_name=config_name, set_default=True, split=split, private=private,
                        max_shard_size=max_shard_size, token=token)
    pushed = DatasetCard.load(repo_id, repo_type="dataset", token=token)
    corpus = corpus_for(source, license=license, rows=len(dataset))
    card = dataset_card(corpus, repo_id=repo_id, config_name=config_name, split=split,
                        dataset_info=_pushed_dataset_info(pushed, config_name), num_rows=len(dataset))
    card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Update dataset card (belle-hf)")
    files = [f"{config_name}/{split}-*.parquet"]
    return PublishResult(repo_id, config_name, split, len(dataset), files)


def _pushed_dataset_info(card, config_name: str):
    """The ``DatasetInfo`` that ``push_to_hub`` wrote into ``card`` for ``config_name``."""
    from datasets.info import DatasetInfosDict

    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    return infos.get(config_name)


if __name__ == "__main__":
    for written in write_dataset_scripts():
        print(written)
