#!/usr/bin/env python3
"""Chat template goldens: renderings of the real chat templates by Python Jinja2, set up the way
transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, json.dumps-based tojson, raise_exception, strftime_now).

  python3 scripts/make_tokenizer_goldens.py ASSET_DIR OUT_DIR

Writes OUT_DIR/chat_templates.json (the Gemma 4, Gemma 3, Llama 3 and Qwen 3 templates with
their sources, so the test runs offline) and OUT_DIR/chat_templates_all.json (every template
shipped in node-llama-cpp's llama.cpp bundle, renderings only; the test needs the cache).
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker: {% generation %}...{% endgeneration %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body).set_lineno(lineno)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["location"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}

CONVERSATIONS = [
    {"name": "single_user", "messages": [{"role": "user", "content": "Hello!"}]},
    {"name": "system_multi_turn", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2+2 equals 4."},
        {"role": "user", "content": "And times three?"},
    ]},
    {"name": "whitespace_unicode", "messages": [
        {"role": "user", "content": "  Ünïcödé 日本語 👩‍👩‍👧 \"quotes\" 'single' <tags> & {braces}  \n\n"},
        {"role": "assistant", "content": "\n  Sure: `code`\n\tdone  "},
        {"role": "user", "content": "Line1\nLine2\n\nLine4"},
    ]},
    {"name": "assistant_with_thinking", "messages": [
        {"role": "user", "content": "Think about it."},
        {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nThe answer is 42.",
         "reasoning_content": "Let me think."},
        {"role": "user", "content": "Why?"},
    ]},
    {"name": "content_parts", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Describe this:"}, {"type": "text", "text": " two parts "}]},
    ]},
    {"name": "tool_call_round_trip", "tools": [WEATHER_TOOL, SEARCH_TOOL], "messages": [
        {"role": "system", "content": "Use tools when needed."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
    ]},
    {"name": "tools_no_system", "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Is it raining in Oslo?"},
    ]},
]

# (conversation, add_generation_prompt, extra context)
VARIANTS = [
    ("single_user", True, {}),
    ("single_user", False, {}),
    ("system_multi_turn", True, {}),
    ("system_multi_turn", False, {}),
    ("system_multi_turn", True, {"enable_thinking": True}),
    ("system_multi_turn", True, {"enable_thinking": False}),
    ("whitespace_unicode", True, {}),
    ("assistant_with_thinking", True, {}),
    ("assistant_with_thinking", True, {"enable_thinking": False}),
    ("content_parts", True, {}),
    ("tool_call_round_trip", True, {}),
    ("tool_call_round_trip", True, {"enable_thinking": True}),
    ("tools_no_system", True, {}),
]

FAMILY_TEMPLATES = {
    "gemma4": "llama.cpp/models/templates/google-gemma-4-31B-it.jinja",
    "gemma4_interleaved": "llama.cpp/models/templates/google-gemma-4-31B-it-interleaved.jinja",
    "gemma3": "gemma3/tokenizer_config.json",
    "llama3_1": "llama.cpp/models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja",
    "llama3_2": "llama.cpp/models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja",
    "llama3_3": "llama.cpp/models/templates/meta-llama-Llama-3.3-70B-Instruct.jinja",
    "qwen3": "qwen3/tokenizer_config.json",
    "qwen3_coder": "llama.cpp/models/templates/Qwen3-Coder.jinja",
}
SPECIAL = {
    "gemma4": ("<bos>", "<eos>"), "gemma4_interleaved": ("<bos>", "<eos>"), "gemma3": ("<bos>", "<eos>"),
    "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"), "llama3_2": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3_3": ("<|begin_of_text|>", "<|eot_id|>"), "qwen3": ("", "<|im_end|>"), "qwen3_coder": ("", "<|im_end|>"),
}


def read_template(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return json.loads(text)["chat_template"]
    return text


def render(env, source, conversation, add_generation_prompt, extra, bos, eos):
    context = {
        "messages": conversation["messages"],
        "tools": conversation.get("tools"),
        "documents": None,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos,
        "eos_token": eos,
        "date_string": "26 Jul 2024",
    }
    context.update(extra)
    try:
        return {"expected": env.from_string(source).render(**context)}
    except Exception as e:  # the C++ side must fail too
        return {"error": type(e).__name__ + ": " + str(e)}


def main():
    asset_dir, out_dir = sys.argv[1], sys.argv[2]
    env = make_env()
    by_name = {c["name"]: c for c in CONVERSATIONS}

    templates = {}
    for name, rel in FAMILY_TEMPLATES.items():
        path = os.path.join(asset_dir, rel)
        if os.path.exists(path):
            templates[name] = read_template(path)
    cases = []
    for name, source in templates.items():
        bos, eos = SPECIAL[name]
        for conv, gen, extra in VARIANTS:
            case = {"template": name, "conversation": conv, "add_generation_prompt": gen, "extra": extra,
                    "bos_token": bos, "eos_token": eos}
            case.update(render(env, source, by_name[conv], gen, extra, bos, eos))
            cases.append(case)
    out = {"oracle": "Python Jinja2 %s, transformers-style environment" % jinja2.__version__,
           "conversations": CONVERSATIONS, "templates": templates, "cases": cases}
    with open(os.path.join(out_dir, "chat_templates.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print("chat_templates.json: %d templates, %d cases (%d errors)" % (
        len(templates), len(cases), sum("error" in c for c in cases)), file=sys.stderr)

    template_dir = os.path.join(asset_dir, "llama.cpp/models/templates")
    all_cases = []
    if os.path.isdir(template_dir):
        for file in sorted(os.listdir(template_dir)):
            if not file.endswith(".jinja"):
                continue
            source = read_template(os.path.join(template_dir, file))
            for conv, gen, extra in VARIANTS[:3] + [VARIANTS[6], VARIANTS[10]]:
                case = {"file": file, "conversation": conv, "add_generation_prompt": gen, "extra": extra,
                        "bos_token": "<s>", "eos_token": "</s>"}
                case.update(render(env, source, by_name[conv], gen, extra, "<s>", "</s>"))
                all_cases.append(case)
    with open(os.path.join(out_dir, "chat_templates_all.json"), "w", encoding="utf-8") as f:
        json.dump({"conversations": CONVERSATIONS, "cases": all_cases}, f, ensure_ascii=False, indent=0)
    print("chat_templates_all.json: %d cases (%d errors)" % (len(all_cases), sum("error" in c for c in all_cases)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
