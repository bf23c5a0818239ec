import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Logger } from "pino";

/** Python logging level names -> pino methods. */
const LEVELS: Record<string, "trace" | "debug" | "info" | "warn" | "error" | "fatal"> = {
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
};

/** The last lines a child wrote, to explain why it died. */
export class OutputTail {
  readonly #lines: string[] = [];
  readonly #size: number;

  constructor(size = 20) {
    this.#size = size;
  }

  push(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.#size) this.#lines.shift();
  }

  toString(): string {
    return this.#lines.join("\n");
  }
}

/**
 * Re-logs each line of `stream` under `logger` (already bound to `{component: "inference"}`):
 * a JSON line `{time, level, msg, ...fields}` keeps its level and fields, anything else (a
 * traceback, a library's print) is logged as `{msg: line}`. Every line also enters `tail`, if
 * given, and each JSON record goes to `onRecord`. The child's own `pid` field is renamed
 * `inference_pid`, so a line never carries two `pid` keys (the logger's base has this process's).
 */
export function forwardOutput(
  stream: Readable,
  streamName: "stdout" | "stderr",
  logger: Logger,
  { tail, onRecord }: { tail?: OutputTail; onRecord?: (record: Record<string, unknown>) => void } = {},
) {
  createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
    if (line.trim() === "") return;
    const record = parseRecord(line);
    if (!record) {
      tail?.push(line);
      logger.info({ stream: streamName }, line);
      return;
    }
    onRecord?.(record);
    const { time: _time, level, msg, pid, ...rest } = record;
    const fields = pid === undefined ? rest : { ...rest, inference_pid: pid };
    const method = LEVELS[String(level).toLowerCase()] ?? "info";
    tail?.push(`${level}: ${msg}${typeof fields.exception === "string" ? `\n${fields.exception}` : ""}`);
    logger[method](fields, String(msg));
  });
}

function parseRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && "msg" in value
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
