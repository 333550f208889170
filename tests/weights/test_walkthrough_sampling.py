"""Our sampling reproduces the walkthrough's chapter-5 ``generate`` draw for draw.

The walkthrough loads GPT-2's weights into its ``GPTModel`` and, after
``torch.manual_seed(123)``, samples 25 tokens after "Every effort moves you" with top-k 50 and
temperature 1.5, printing " toward finding an ideal new way to practice something!\\n\\nWhat
makes us want to be on top of that?". Without network the weights are not here, so this test
holds the mechanism on a random model instead: the same weights in the walkthrough's own
package (``llms-from-scratch``, a test-only oracle) and in ours, the same seed, the same ids.
Ours applies temperature before top-k and draws through a KV cache, the walkthrough top-k
first and uncached; the two give the same distribution, and the same draw from one seed.

With GPT-2's weights, ``scratchllm generate --checkpoint gpt2 --prompt "Every effort moves
you" --temperature 1.5 --top-k 50 --max-new-tokens 25 --seed 123`` therefore prints the
walkthrough's text (``generate_with_config``'s seeded generator draws the stream that
``torch.manual_seed(123)`` gives the global one, which the last test checks).
"""

from __future__ import annotations

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.generate import SamplingConfig, generate_tokens, generate_with_config
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import get_tokenizer

try:  # the walkthrough's reference package; installed with --no-deps by `make test`'s setup
    from llms_from_scratch.ch04 import GPTModel
    from llms_from_scratch.ch05 import generate
except ImportError as error:  # pragma: no cover - depends on the environment
    pytest.skip(
        f"the walkthrough's package is not importable ({error}); install it with "
        "`pip install --no-deps llms-from-scratch`",
        allow_module_level=True,
    )

PROMPT = "Every effort moves you"
PROMPT_IDS = [6109, 3626, 6100, 345]  # GPT-2's ids for it
CONTEXT = 64


def walkthrough_model(ours: GPT) -> torch.nn.Module:
    """The walkthrough's ``GPTModel`` holding our weights (its ``load_weights_into_gpt``'s map:
    ``c_attn`` split into ``W_query``/``W_key``/``W_value``, LayerNorm weight/bias as
    ``scale``/``shift``, the head as ``out_head``)."""
    config = ours.config
    theirs = GPTModel(
        {
            "vocab_size": config.vocab_size,
            "context_length": config.context_length,
            "emb_dim": config.n_embd,
            "n_heads": config.n_head,
            "n_layers": config.n_layer,
            "drop_rate": 0.0,
            "qkv_bias": config.qkv_bias,
        }
    )
    state = ours.state_dict()
    mapped = {
        "tok_emb.weight": state["wte.weight"],
        "pos_emb.weight": state["wpe.weight"],
        "final_norm.scale": state["ln_f.weight"],
        "final_norm.shift": state["ln_f.bias"],
        "out_head.weight": state["lm_head.weight"],
    }
    for index in range(config.n_layer):
        ours_, theirs_ = f"h.{index}.", f"trf_blocks.{index}."
        for kind in ("weight", "bias"):
            qkv = state[f"{ours_}attn.c_attn.{kind}"].chunk(3, dim=0)  # (3C, ...) -> q, k, v
            for name, part in zip(("W_query", "W_key", "W_value"), qkv, strict=True):
                mapped[f"{theirs_}att.{name}.{kind}"] = part
            pairs = {
                "attn.c_proj": "att.out_proj",
                "mlp.c_fc": "ff.layers.0",
                "mlp.c_proj": "ff.layers.2",
            }
            for our_name, their_name in pairs.items():
                mapped[f"{theirs_}{their_name}.{kind}"] = state[f"{ours_}{our_name}.{kind}"]
        for norm, their_norm in (("ln_1", "norm1"), ("ln_2", "norm2")):
            mapped[f"{theirs_}{their_norm}.scale"] = state[f"{ours_}{norm}.weight"]
            mapped[f"{theirs_}{their_norm}.shift"] = state[f"{ours_}{norm}.bias"]
    result = theirs.load_state_dict(mapped, strict=False)
    assert result.unexpected_keys == []
    assert all(key.endswith("att.mask") for key in result.missing_keys)  # causal-mask buffers
    return theirs.eval()


@pytest.fixture(scope="module")
def models() -> tuple[GPT, list[int]]:
    """Our random model, and the ids the walkthrough's ``generate`` samples from the same
    weights."""
    # GPT-2's vocabulary and qkv bias, tied head: the shape of the walkthrough's loaded model
    config = GPTConfig(
        vocab_size=50257, context_length=CONTEXT, n_embd=32, n_head=4, n_layer=2, dropout=0.0,
        qkv_bias=True, tie_weights=True,
    )  # fmt: skip
    ours = GPT(config, generator=torch.Generator().manual_seed(7)).eval()
    with torch.no_grad():  # wider weights than the init, so the top 50 are far from uniform
        for name, parameter in ours.named_parameters():
            if "ln_" not in name:
                parameter.mul_(20.0)
    theirs = walkthrough_model(ours)
    with torch.no_grad():
        prompt = torch.tensor([PROMPT_IDS])
        torch.testing.assert_close(theirs(prompt), ours(prompt), atol=1e-4, rtol=1e-5)
    expected = walkthrough_ids(theirs)
    assert len(expected) == 25 and len(set(expected)) > 5  # a real sample, not one token
    return ours, expected


def walkthrough_ids(theirs: torch.nn.Module) -> list[int]:
    torch.manual_seed(123)
    idx = generate(
        model=theirs,
        idx=torch.tensor([PROMPT_IDS]),
        max_new_tokens=25,
        context_size=CONTEXT,
        top_k=50,
        temperature=1.5,
    )
    return idx[0, len(PROMPT_IDS) :].tolist()


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_same_seed_same_weights_same_ids(models, use_cache: bool):
    ours, expected = models
    torch.manual_seed(123)  # the walkthrough's way: torch's global stream (generator=None)
    tokens = generate_tokens(
        ours, PROMPT_IDS, max_new_tokens=25, temperature=1.5, top_k=50, use_cache=use_cache
    )
    assert list(tokens) == expected


def test_the_cli_seed_draws_the_same_stream(models):
    # `scratchllm generate --seed 123` builds SamplingConfig(seed=123): a generator of its own,
    # seeded 123, instead of torch.manual_seed(123) -- the same Mersenne Twister stream
    ours, expected = models
    expected_text = get_tokenizer("gpt2").decode(expected)
    torch.manual_seed(0)  # the global state must not matter
    sampling = SamplingConfig(temperature=1.5, top_k=50, max_new_tokens=25, seed=123)
    text = "".join(generate_with_config(ours, get_tokenizer("gpt2"), PROMPT, sampling))
    assert text == expected_text
