"""Chat with a model: streaming terminal chat and an OpenAI-compatible server.

>>> from belle_hf.chat import ChatSession, load_chat_model
>>> model, tokenizer = load_chat_model("my-model", adapter="my-lora")
>>> session = ChatSession.from_model(model, tokenizer)
>>> for piece in session.stream_reply("你好"):
...     print(piece, end="", flush=True)
"""

from belle_hf.chat.loading import load_chat_model, prepare_model_folder
from belle_hf.chat.session import ChatSession, ChatSettings, HFBackend, LlamaCppBackend

__all__ = [
    "ChatSession",
    "ChatSettings",
    "HFBackend",
    "LlamaCppBackend",
    "load_chat_model",
    "prepare_model_folder",
]
