"""Translation backends for the translate stage: NLLB-200 and IndicTrans2, through transformers.

Both are sequence-to-sequence models that take a source-language tag and give the target
language through a forced first token (NLLB: `[src] tokens </s>`; IndicTrans2: the text
`src tgt sentence`). Both use FLORES-200 codes (`hin_Deva`), mapped here from the ISO 639-1
codes of job files. Batches are sorted by length so padding stays small, and run under
`torch.inference_mode`. Names are protected outside the model, by the stage: the model sees
`[1]` where a name was, and the name is put back afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bolly_ray.errors import StageError
from bolly_ray.stages.support.devices import torch_device

FLORES = {
    "en": "eng_Latn", "hi": "hin_Deva", "ur": "urd_Arab", "bn": "ben_Beng", "pa": "pan_Guru",
    "gu": "guj_Gujr", "mr": "mar_Deva", "ta": "tam_Taml", "te": "tel_Telu", "kn": "kan_Knda",
    "ml": "mal_Mlym", "or": "ory_Orya", "as": "asm_Beng", "ne": "npi_Deva", "sa": "san_Deva",
    "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn", "pt": "por_Latn", "it": "ita_Latn",
    "ru": "rus_Cyrl", "ar": "arb_Arab", "fa": "pes_Arab", "zh": "zho_Hans", "ja": "jpn_Jpan",
    "ko": "kor_Hang", "id": "ind_Latn", "ms": "zsm_Latn", "tr": "tur_Latn", "nl": "nld_Latn",
}


def flores_code(language: str, overrides: Mapping[str, str]) -> str:
    """The model's tag for a job's language; a script subtag must agree with it ("hi-Deva"
    is hin_Deva, "ur-Latn" is nothing the table knows)."""
    code = overrides.get(language) or FLORES.get(language.split("-")[0].lower())
    scripts = [p for p in language.split("-")[1:] if len(p) == 4]
    if code is not None and language not in overrides and scripts \
            and not code.lower().endswith("_" + scripts[0].lower()):
        code = None
    if code is None:
        raise StageError(f"translate: no FLORES-200 code known for {language!r}; add it to "
                         "translate.language_codes (e.g. {\"xx\": \"xxx_Latn\"})")
    return code


class Seq2SeqTranslator:
    """A transformers seq2seq model with language tags; `prompt` says how they are given."""

    def __init__(self, model: str, device: str, trust_remote_code: bool = False) -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        source = str(Path(model).expanduser().resolve()) if Path(model).expanduser().is_dir() \
            else model
        self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(
            source, trust_remote_code=trust_remote_code).to(device).eval()
        self.device = device
        self.torch = torch

    def prompt(self, text: str, source: str, target: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [self._token_id(source), *ids, self.tokenizer.eos_token_id]

    def translate(self, texts: Sequence[str], source: str, target: str, batch_size: int,
                  num_beams: int, max_new_tokens: int) -> list[str]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: dict[int, str] = {}
        for first in range(0, len(order), batch_size):
            chunk = order[first:first + batch_size]
            prompts = [self.prompt(texts[i], source, target) for i in chunk]
            for index, text in zip(chunk, self._generate(prompts, target, num_beams,
                                                          max_new_tokens), strict=True):
                results[index] = text
        return [results[i] for i in range(len(texts))]

    def _generate(self, prompts: list[list[int]], target: str, num_beams: int,
                  max_new_tokens: int) -> list[str]:
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        ids = self.torch.tensor([p + [pad] * (width - len(p)) for p in prompts],
                                device=self.device)
        mask = (ids != pad).long()
        with self.torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask,
                                      forced_bos_token_id=self._token_id(target),
                                      num_beams=num_beams, max_new_tokens=max_new_tokens)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _token_id(self, token: str) -> int:
        found = self.tokenizer.convert_tokens_to_ids(token)
        if found is None or found == self.tokenizer.unk_token_id:
            raise StageError(f"translate: the model's tokenizer has no language tag {token!r}")
        return int(found)


class IndicTrans2(Seq2SeqTranslator):
    """AI4Bharat's IndicTrans2: the tags are plain text before the sentence. (Its toolkit's
    script normalisation is not applied: feed it text in the language's own script.)"""

    def __init__(self, model: str, device: str) -> None:
        super().__init__(model, device, trust_remote_code=True)

    def prompt(self, text: str, source: str, target: str) -> list[int]:
        return list(self.tokenizer(f"{source} {target} {text}")["input_ids"])


class LazyTranslator:
    """A translator that loads its model on first use: a worker whose jobs only transliterate
    (hi -> hi-Latn) never loads it, nor needs it on disk."""

    def __init__(self, backend: str, model: str, device: str) -> None:
        """`device` as the settings say it (auto, cpu, cuda): resolved when it loads."""
        self.backend, self.model, self.device = backend, model, device
        self._loaded: Seq2SeqTranslator | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def translate(self, texts: Sequence[str], source: str, target: str, batch_size: int,
                  num_beams: int, max_new_tokens: int) -> list[str]:
        if self._loaded is None:
            self._loaded = load_translator(self.backend, self.model, torch_device(self.device))
        return self._loaded.translate(texts, source, target, batch_size, num_beams,
                                      max_new_tokens)


def load_translator(backend: str, model: str, device: str) -> Seq2SeqTranslator:
    try:
        if backend == "indictrans2":
            return IndicTrans2(model, device)
        return Seq2SeqTranslator(model, device)
    except StageError:
        raise
    except Exception as err:  # hub, config and checkpoint errors come in many types
        raise StageError(f"translate: cannot load {model!r} offline ({type(err).__name__}); "
                         "fetch it with `bolly-ray models pull JOB.json` or set "
                         "translate.model to a local folder") from None

