"""Tool calling through a kai node with the official `openai` package: the upstream (a fake
server the Rust test scripts) first answers with a tool call, then streams one, then answers
normally; the client sends the tool result back the way OpenAI's documentation shows.
Usage: python3 openai_tools.py BASE_URL API_TOKEN PERSONA. Exits non-zero on any mismatch."""
import json
import sys

import openai

base, token, persona = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]
question = {"role": "user", "content": "What is the weather in Lisbon?"}

first = client.chat.completions.create(model=persona, messages=[question], tools=tools, tool_choice="auto")
choice = first.choices[0]
assert choice.finish_reason == "tool_calls", choice
call = choice.message.tool_calls[0]
assert call.type == "function" and call.function.name == "get_weather", call
assert json.loads(call.function.arguments) == {"city": "Lisbon"}, call.function.arguments

# The same call streamed: argument fragments arrive as tool_call deltas and reassemble.
calls = {}
finish = None
for chunk in client.chat.completions.create(model=persona, messages=[question], tools=tools, stream=True):
    if not chunk.choices:
        continue
    delta = chunk.choices[0].delta
    for d in delta.tool_calls or []:
        c = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
        c["id"] = d.id or c["id"]
        c["name"] = (d.function and d.function.name) or c["name"]
        c["arguments"] += (d.function and d.function.arguments) or ""
    finish = chunk.choices[0].finish_reason or finish
assert finish == "tool_calls", finish
assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Lisbon"}, calls

answer = client.chat.completions.create(
    model=persona,
    tools=tools,
    messages=[
        question,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny", "celsius": 21})},
    ],
)
assert answer.choices[0].finish_reason == "stop", answer
assert answer.choices[0].message.content, answer
print("openai tools OK")
