// The rules every text a client sends must pass, whether it is embedded at once (/v1/embeddings)
// or stored and embedded for a collection (upsert documents, search queries).
import type { AkidbConfig } from "../config/schema.ts";
import { AkidbError } from "../errors.ts";

/** A surrogate code unit without its other half (with the u flag, a valid pair is one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/** One text of a request and the field that names it in an error (`input[2]`, `documents[3].text`). */
export interface InputText {
  param: string;
  text: string;
}

/**
 * Checks that every text is well-formed Unicode (422 AKIDB_ERR_INVALID_REQUEST: a tokenizer cannot
 * read half a pair) and at most `embedding.queue.max_input_chars` long (413 AKIDB_ERR_LIMIT_EXCEEDED),
 * naming the first offending field. The surrogate rule is checked over all texts before the length.
 */
export function checkInputTexts(
  texts: readonly InputText[],
  config: { embedding: { queue: Pick<AkidbConfig["embedding"]["queue"], "max_input_chars"> } },
): void {
  const broken = texts.find(({ text }) => LONE_SURROGATE.test(text));
  if (broken !== undefined) {
    const { param } = broken;
    throw new AkidbError(
      "AKIDB_ERR_INVALID_REQUEST",
      {
        param,
        problem: "contains a lone UTF-16 surrogate (half of a \\uD83D\\uDE00 pair), which is not text",
      },
      { param },
    );
  }
  const maxChars = config.embedding.queue.max_input_chars;
  const long = texts.find(({ text }) => text.length > maxChars);
  if (long !== undefined) {
    const { param } = long;
    throw new AkidbError(
      "AKIDB_ERR_LIMIT_EXCEEDED",
      {
        param,
        what: `${long.text.length} characters`,
        limit: maxChars,
        key: "embedding.queue.max_input_chars",
      },
      { param },
    );
  }
}
