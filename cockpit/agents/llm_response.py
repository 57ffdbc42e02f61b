"""Reading litellm's answers: the assistant text with a reasoning model's thinking put
back in front, the model's input window, the provider of a model name, and a
provider's Retry-After.
"""

from __future__ import annotations

from typing import Any, Optional


def assistant_text(response: Any) -> str:
    """The assistant text of a ModelResponse ("" when there is none).

    litellm moves a reasoning model's ``<think>...</think>`` block (and the
    ``reasoning_content`` field that DeepSeek-R1, Qwen3 and o-series servers
    send) out of ``content`` into ``message.reasoning_content``. It is put back
    in front, wrapped as ``<think>\n...\n</think>\n``, so that the record keeps
    the reasoning and cockpit.rules.replies splits it off the answer (never parsed
    for edits, never shown as the proposal)."""
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return ""
    content = getattr(message, "content", None) or ""
    reasoning = getattr(message, "reasoning_content", None)
    if isinstance(reasoning, str) and reasoning.strip() and "<think>" not in content:
        return f"<think>\n{reasoning.strip()}\n</think>\n{content}"
    return content if isinstance(content, str) else str(content)


def model_window(litellm: Any, model: str) -> Optional[int]:
    """The model's input window in tokens from litellm's model info, or None if unknown."""
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises for models it does not know
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "default"


def retry_after_s(exc: Exception) -> Optional[float]:
    """The provider's Retry-After header in seconds (numeric form only), if any: from
    litellm's ``litellm_response_headers`` (where litellm keeps the provider's headers;
    its exception's ``response`` is then a stand-in with none), else ``response.headers``."""
    for headers in (getattr(exc, "litellm_response_headers", None),
                    getattr(getattr(exc, "response", None), "headers", None)):
        try:
            value = headers.get("retry-after") if headers is not None else None
            if value is not None:
                return float(value)
        except (TypeError, ValueError, AttributeError):
            continue
    return None
