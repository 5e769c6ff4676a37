"""Drive a running maasctl gateway with the official `openai` client.

Run by tests/gateway/openai_python.rs with MAASCTL_BASE_URL, MAASCTL_KEY and
MAASCTL_MODEL set; the upstream is maasctl's mock (6 streamed pieces,
usage 11 prompt / 7 completion tokens). Exits non-zero on any mismatch.
"""

import os
import sys

try:
    import openai
except ImportError:
    sys.exit("the 'openai' package is not installed for this interpreter: pip install openai")

base = os.environ["MAASCTL_BASE_URL"]
key = os.environ["MAASCTL_KEY"]
model = os.environ["MAASCTL_MODEL"]
messages = [{"role": "user", "content": "hi"}]

client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=30)

# A chat completion.
r = client.chat.completions.create(model=model, messages=messages)
assert r.choices[0].message.content == "Hello from py-mock", r
assert r.usage.prompt_tokens == 11 and r.usage.completion_tokens == 7, r.usage

# A streamed one, piece by piece.
stream = client.chat.completions.create(
    model=model, messages=messages, stream=True, stream_options={"include_usage": True}
)
pieces = []
usage = None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage
assert pieces == [f"piece{i} " for i in range(6)], pieces
assert usage is not None and usage.completion_tokens == 7, usage

# The model list has it.
assert model in [m.id for m in client.models.list()]

# A bad key is an AuthenticationError.
bad = openai.OpenAI(base_url=base, api_key="sk-this-key-does-not-exist", max_retries=0, timeout=30)
try:
    bad.chat.completions.create(model=model, messages=messages)
    sys.exit("a bad key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
    assert "Incorrect API key" in str(e), str(e)

# An unknown model is a NotFoundError.
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    sys.exit("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404
    assert "no-such-model" in str(e), str(e)

print("openai client: all checks passed")
