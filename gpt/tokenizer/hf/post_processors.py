"""Post-processors: the fourth stage, the model's ids -> the ids with the special tokens a model
expects around a text (``[CLS] ... [SEP]``, ``<s> ...``), when ``add_special_tokens`` is true.
The ``ByteLevel`` post-processor only adjusts offsets, so it changes no id."""
from __future__ import annotations


class PostProcessor:
    def __call__(self, a: list[int], b: list[int] | None = None) -> list[int]:
        raise NotImplementedError


class TemplateProcessing(PostProcessor):
    """``single`` / ``pair``: lists of ``{"SpecialToken": {"id": name}}`` and ``{"Sequence": {"id": "A"|"B"}}``;
    ``special_tokens[name]["ids"]`` are the ids a special token stands for."""

    def __init__(self, spec: dict, where: str) -> None:
        self.special = {name: list(v["ids"]) for name, v in (spec.get("special_tokens") or {}).items()}
        self.single = self._template(spec.get("single"), where)
        self.pair = self._template(spec.get("pair"), where) if spec.get("pair") is not None else None

    def _template(self, items, where: str) -> list[tuple[str, object]]:
        out = []
        for item in items or []:
            if "SpecialToken" in item:
                name = item["SpecialToken"]["id"]
                if name not in self.special:
                    raise ValueError(f"{where}: TemplateProcessing uses the special token {name!r} but does not define its ids")
                out.append(("special", self.special[name]))
            elif "Sequence" in item:
                out.append(("sequence", item["Sequence"]["id"]))
            else:
                raise ValueError(f"{where}: TemplateProcessing item {item!r} is not supported by this reader")
        return out

    def __call__(self, a: list[int], b: list[int] | None = None) -> list[int]:
        template = self.single if b is None else self.pair
        if template is None:
            raise ValueError("this tokenizer's TemplateProcessing has no template for a pair of texts")
        out: list[int] = []
        for kind, value in template:
            out += value if kind == "special" else (a if value == "A" else b)
        return out


class BertProcessing(PostProcessor):
    """``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``."""

    def __init__(self, spec: dict) -> None:
        self.cls, self.sep = int(spec["cls"][1]), int(spec["sep"][1])

    def __call__(self, a, b=None):
        return [self.cls, *a, self.sep] if b is None else [self.cls, *a, self.sep, *b, self.sep]


class RobertaProcessing(BertProcessing):
    """``<s> A </s>`` and ``<s> A </s></s> B </s>``."""

    def __call__(self, a, b=None):
        return [self.cls, *a, self.sep] if b is None else [self.cls, *a, self.sep, self.sep, *b, self.sep]


class Identity(PostProcessor):
    def __call__(self, a, b=None):
        return list(a) if b is None else [*a, *b]


class Sequence(PostProcessor):
    def __init__(self, processors: list[PostProcessor]) -> None:
        self.processors = [p for p in processors if not isinstance(p, Identity)]

    def __call__(self, a, b=None):
        if not self.processors:
            return Identity()(a, b)
        if len(self.processors) > 1:
            raise ValueError("a Sequence of several id-changing post-processors is not supported by this reader")
        return self.processors[0](a, b)


def build(spec: dict | None, where: str) -> PostProcessor | None:
    if spec is None:
        return None
    kind = spec.get("type")
    if kind == "TemplateProcessing":
        return TemplateProcessing(spec, where)
    if kind == "BertProcessing":
        return BertProcessing(spec)
    if kind == "RobertaProcessing":
        return RobertaProcessing(spec)
    if kind == "ByteLevel":
        return Identity()
    if kind == "Sequence":
        parts = [build(p, where) for p in spec["processors"]]
        if sum(not isinstance(p, Identity) for p in parts) > 1:
            raise ValueError(f"{where}: a Sequence of several id-changing post-processors is not supported by this reader")
        return Sequence(parts)
    raise ValueError(f"{where}: the post-processor {kind!r} is not supported by this reader")
