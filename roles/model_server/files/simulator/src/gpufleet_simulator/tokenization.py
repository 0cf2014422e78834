"""/tokenize and /detokenize in vLLM's request and response shapes, over the simulator's own vocabulary.

Shapes from vLLM's TokenizeCompletionRequest, TokenizeChatRequest, TokenizeResponse, DetokenizeRequest and
DetokenizeResponse (vllm/entrypoints/serve/tokenize/protocol.py) and ServingTokenization.create_tokenize /
create_detokenize (vllm/entrypoints/serve/tokenize/serving.py). The ids are the simulator's (tokenizer.Vocabulary),
not the served model's: they agree with the prompt_tokens of usage, not with any real tokenizer.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ApiError
from .protocol import render_messages
from .sampling import invalid_body
from .tokenizer import Vocabulary, chat_prompt


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")  # vLLM's OpenAIBaseModel accepts (and logs) unknown fields

    model: str | None = None


class TokenizeCompletionRequest(_Request):
    prompt: str
    add_special_tokens: bool = True  # the simulator's vocabulary has no special tokens to add
    return_token_strs: bool | None = False


class TokenizeChatRequest(_Request):
    messages: list[Any]
    add_generation_prompt: bool = True
    return_token_strs: bool | None = False
    continue_final_message: bool = False
    add_special_tokens: bool = False

    @model_validator(mode="before")
    @classmethod
    def check_generation_prompt(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("continue_final_message") and data.get("add_generation_prompt"):
            raise ValueError("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
        return data


class _TokenizeRequest(BaseModel):
    request: TokenizeCompletionRequest | TokenizeChatRequest  # vLLM's TokenizeRequest union, same order


class DetokenizeRequest(_Request):
    tokens: list[Annotated[int, Field(ge=0, le=2**63 - 1)]]


def _check_model(model: str | None, served_model: str) -> None:
    if model is not None and model != served_model:  # OpenAIServing._check_model
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")


def tokenize_answer(body: dict, served_model: str, max_model_len: int, vocabulary: Vocabulary) -> dict:
    try:
        request = _TokenizeRequest.model_validate({"request": body}).request
    except ValidationError as exc:
        raise invalid_body(exc) from None
    _check_model(request.model, served_model)
    if isinstance(request, TokenizeChatRequest):
        text = chat_prompt(render_messages(request.messages), request.add_generation_prompt)
    else:
        text = request.prompt
    ids, strings = vocabulary.encode(text)
    return {"count": len(ids), "max_model_len": max_model_len, "tokens": ids,
            "token_strs": strings if request.return_token_strs else None}


def detokenize_answer(body: dict, served_model: str, vocabulary: Vocabulary) -> dict:
    try:
        request = DetokenizeRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    _check_model(request.model, served_model)
    try:
        return {"prompt": vocabulary.decode(request.tokens)}
    except KeyError as exc:
        # what vLLM answers depends on the model's tokenizer; the simulator knows only ids it has handed out
        raise ApiError(400, f"Token id {exc.args[0]} is not in the simulator's vocabulary.", "BadRequestError",
                       "tokens") from None
