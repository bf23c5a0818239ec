"""Prompts prepended to inputs, per input type (sentence-transformers' `prompts`)."""

from __future__ import annotations

from collections.abc import Mapping

INPUT_TYPES = ("query", "document")

QWEN3_DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def qwen3_query_prompt(task: str) -> str:
    """Qwen3-Embedding's instruction; the text follows `Query:` without a space."""
    return f"Instruct: {task}\nQuery:"


QWEN3 = {"query": qwen3_query_prompt(QWEN3_DEFAULT_TASK), "document": ""}
NONE = {"query": "", "document": ""}
EMBEDDING_GEMMA = {"query": "task: search result | query: ", "document": "title: none | text: "}


def resolve_prompts(from_checkpoint: Mapping[str, str] | None, defaults: Mapping[str, str]) -> dict[str, str]:
    """The prompt per input type: the checkpoint's where it names one, else the model family's."""
    from_checkpoint = from_checkpoint or {}
    return {input_type: from_checkpoint.get(input_type, defaults[input_type]) for input_type in INPUT_TYPES}


def apply_prompt(prompts: Mapping[str, str], input_type: str, text: str) -> str:
    return prompts[input_type] + text
