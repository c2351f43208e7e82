"""The BELLE corpora on the Hugging Face Hub: where each lives, its schema, license and size.

Every file is JSON Lines despite its ``.json`` extension. All corpora were generated with
ChatGPT and are released for research use only.
"""

from __future__ import annotations

from dataclasses import dataclass

from belle_hf.citation import RESEARCH_USE_NOTICE


@dataclass(frozen=True)
class Corpus:
    """One BELLE corpus on the Hub."""

    name: str
    """Short name, as used in recipes (``train_0.5M_CN``)."""
    repo_id: str
    """Hub dataset repository (``BelleGroup/train_0.5M_CN``)."""
    filename: str
    """The JSON Lines file inside the repository."""
    schema: str
    """Record layout, one of :data:`belle_hf.data.schemas.SCHEMAS`."""
    approx_rows: int
    """Approximate number of records (for progress bars and planning; not checked)."""
    description: str
    license: str = "gpl-3.0"
    license_note: str = RESEARCH_USE_NOTICE

    @property
    def hf_path(self) -> str:
        """An ``hf://`` path to the file; it follows ``HF_ENDPOINT``, so mirrors work."""
        return f"hf://datasets/{self.repo_id}/{self.filename}"


CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus("train_0.5M_CN", "BelleGroup/train_0.5M_CN", "Belle_open_source_0.5M.json", "alpaca", 519_000,
               "0.5M Chinese instructions generated from 175 seed tasks translated to Chinese."),
        Corpus("train_1M_CN", "BelleGroup/train_1M_CN", "Belle_open_source_1M.json", "alpaca", 917_000,
               "1M Chinese instructions, cleaned (see `belle data clean`)."),
        Corpus("train_2M_CN", "BelleGroup/train_2M_CN", "train_2M_CN.json", "alpaca", 2_000_000,
               "2M Chinese instructions."),
        Corpus("train_3.5M_CN", "BelleGroup/train_3.5M_CN", "train_3.5M_CN.json", "conversations", 3_600_000,
               "3.5M single- and multi-turn conversations with instruction categories."),
        Corpus("school_math_0.25M", "BelleGroup/school_math_0.25M", "school_math_0.25M.json", "alpaca", 250_000,
               "0.25M Chinese school math problems with step-by-step solutions."),
        Corpus("multiturn_chat_0.8M", "BelleGroup/multiturn_chat_0.8M", "multiturn_chat_0.8M.json",
               "belle-multiturn", 830_000, "0.8M multi-turn user-assistant dialogues."),
        Corpus("generated_chat_0.4M", "BelleGroup/generated_chat_0.4M", "generated_chat_0.4M.json",
               "generated-chat", 400_000, "0.4M generated role-play dialogues between characters."),
    )
}


def resolve_corpus(name: str) -> Corpus | None:
    """The corpus called ``name`` (short name or ``BelleGroup/<name>``), or ``None``."""
    if name in CORPORA:
        return CORPORA[name]
    for corpus in CORPORA.values():
        if corpus.repo_id.lower() == name.lower():
            return corpus
    return None
