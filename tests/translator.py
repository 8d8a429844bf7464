"""A tiny translation model the tests build and save, so the translate stage runs the real
transformers path offline. It is an M2M100 (NLLB's architecture) with a word-level
tokenizer, trained for a few seconds to copy its input: through it, what the tests check is
structure (languages, segments, timings) and that protected names survive, not quality.
It learns both prompt styles: NLLB's `[src] words </s>` and IndicTrans2's `src tgt words`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

LANGUAGE_TAGS = ["eng_Latn", "hin_Deva", "hin_Latn"]
WORDS = ["raj", "tum", "kahan", "ho", "simran", "ka", "phone", "aaya", "main", "ghar", "ja",
         "raha", "hoon", "yaar", "chalo", "kal", "milte", "hain", "the", "train", "leaves",
         "at", "nine", "please", "come", "home"]
PUNCTUATION = [",", ".", "?", "!", "[", "]", *"123456789"]


# Sentences as the translate stage hands them over (names already masked), unseen in
# training, to be copied token for token.
HELD_OUT = ["[1] tum kahan ho?", "[1] ka phone aaya.", "main ghar ja raha hoon yaar.",
            "[1] [2] chalo kal milte hain."]
# The stage tests' first sentence: "]," is one unknown token to the word-level tokenizer;
# the name comes back only if the copy still starts with the whole placeholder.
WITH_UNKNOWN = "[1], tum kahan ho?"


def build_tiny_translator(folder: Path, steps: int = 1200, seeds: int = 6) -> Path:
    """Train with one seed after another until the model, loaded and prompted exactly as
    the stage's two backends do it, copies every held-out sentence into both target
    languages (training speed and thread count vary by machine, and some seeds do not
    converge in 1,200 steps)."""
    for seed in range(seeds):
        model, tokenizer = train_copy_model(steps, seed)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if copies_through_both_backends(folder):
            return folder
    raise AssertionError(f"no tiny translator learnt to copy in {seeds} seeds")


def copies_through_both_backends(folder: Path) -> bool:
    from bolly_ray.stages.translators import load_translator

    for backend in ("nllb", "indictrans2"):
        translator = load_translator(backend, str(folder), "cpu")
        tokenize = translator.tokenizer.tokenize
        for target in ("eng_Latn", "hin_Deva"):
            *copies, unknown = translator.translate(
                [*HELD_OUT, WITH_UNKNOWN], "hin_Latn", target, batch_size=8, num_beams=1,
                max_new_tokens=48)
            if [tokenize(text) for text in copies] != [tokenize(text) for text in HELD_OUT]:
                return False
            if tokenize(unknown)[:3] != ["[", "1", "]"]:
                return False
    return True


def train_copy_model(steps: int, seed: int) -> tuple[Any, Any]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import (
        M2M100Config,
        M2M100ForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    random.seed(seed)
    torch.manual_seed(seed)
    specials = ["<pad>", "<s>", "</s>", "<unk>", *LANGUAGE_TAGS]
    vocab = {w: i for i, w in enumerate([*specials, *WORDS, *PUNCTUATION])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##")
    # like IndicTrans2's tokenizer, it ends a sentence with </s> when asked for special tokens
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        unk_token="<unk>", additional_special_tokens=LANGUAGE_TAGS)
    config = M2M100Config(
        vocab_size=len(vocab), d_model=64, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
        decoder_ffn_dim=128, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=2, dropout=0.0, scale_embedding=True)
    model = M2M100ForConditionalGeneration(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    pool = [vocab[w] for w in [*WORDS, ",", ".", "?"]]
    placeholders = [[vocab["["], vocab[str(n)], vocab["]"]] for n in range(1, 10)]
    tags = [vocab[t] for t in LANGUAGE_TAGS]
    model.train()
    for _ in range(steps):
        inputs, labels = [], []
        for _ in range(32):
            words: list[int] = []
            for _ in range(random.randint(2, 10)):
                words += random.choice(placeholders) if random.random() < 0.2 else [
                    random.choice(pool)]
            source, target = random.choice(tags), random.choice(tags)
            prompt = [source] if random.random() < 0.5 else [source, target]
            inputs.append([*prompt, *words, 2])
            labels.append([target, *words, 2])
        width = max(map(len, inputs))
        ids = torch.tensor([x + [0] * (width - len(x)) for x in inputs])
        label_width = max(map(len, labels))
        targets = torch.tensor([y + [-100] * (label_width - len(y)) for y in labels])
        loss = model(input_ids=ids, attention_mask=(ids != 0).long(), labels=targets).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model, tokenizer
