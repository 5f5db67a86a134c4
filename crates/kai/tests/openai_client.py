"""Talks to a running kai node with the official `openai` package, as any OpenAI client would.
Usage: python3 openai_client.py BASE_URL API_TOKEN PERSONA. Exits non-zero on any mismatch."""
import sys

import openai

base, token, persona = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)

models = [m.id for m in client.models.list()]
assert persona in models, models

reply = client.chat.completions.create(model=persona, messages=[{"role": "user", "content": "hello"}])
assert reply.choices[0].message.role == "assistant"
text = reply.choices[0].message.content
assert text, reply
assert reply.usage.total_tokens >= 0

streamed = "".join(
    chunk.choices[0].delta.content or ""
    for chunk in client.chat.completions.create(model=persona, stream=True, messages=[{"role": "user", "content": "hello"}])
    if chunk.choices
)
assert streamed == text, (streamed, text)

emb = client.embeddings.create(model=persona, input=["one", "two"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) > 1

try:
    client.chat.completions.create(model="no-such-persona", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("an unknown model must fail")
except openai.NotFoundError:
    pass

try:
    openai.OpenAI(base_url=base, api_key="kai_" + "A" * 43, max_retries=0).models.list()
    raise SystemExit("a wrong token must fail")
except openai.AuthenticationError:
    pass

print("openai client OK:", text[:40])
