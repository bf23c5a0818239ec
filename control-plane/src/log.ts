import type { Writable } from "node:stream";
import { type LevelWithSilent, type Logger, pino } from "pino";

/**
 * Where the server's log lines go: a stream (stdout) written without ever waiting for its reader.
 * A pipe nobody reads fills; Node then holds further lines in memory. Past `maxQueuedBytes` held,
 * a line is dropped and counted instead: neither memory nor the event loop is given to a stalled
 * reader (pino's default destination held every line and, at exit, retried the write every 100 ms
 * forever, so SIGTERM never ended the process). A file, or a reader that keeps up, loses nothing.
 */
export class LogOutput {
  readonly #stream: Pick<Writable, "write" | "writableLength">;
  readonly #maxQueuedBytes: number;
  #droppedUnreported = 0;
  #onDrop: () => void = () => {};
  #onResume: (dropped: number) => void = () => {};

  constructor(stream: Pick<Writable, "write" | "writableLength">, maxQueuedBytes: number) {
    this.#stream = stream;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** pino's destination interface: one JSON line. */
  write(line: string): void {
    if (this.#stream.writableLength > this.#maxQueuedBytes) {
      this.#droppedUnreported += 1;
      this.#onDrop();
      return;
    }
    if (this.#droppedUnreported > 0) {
      const dropped = this.#droppedUnreported;
      this.#droppedUnreported = 0;
      this.#onResume(dropped);
    }
    this.#stream.write(line);
  }

  /** `count` runs for each line dropped. */
  onDrop(count: () => void): void {
    this.#onDrop = count;
  }

  /** `report` runs before the first line written after some were dropped, with how many were. */
  onResume(report: (dropped: number) => void): void {
    this.#onResume = report;
  }
}

/** The server's logger: JSON lines on `output`, ISO timestamps, no hostname. */
export function createLogger(level: LevelWithSilent, output: LogOutput): Logger {
  const logger = pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    output,
  );
  output.onResume((dropped) => logger.warn({ dropped }, "log lines dropped: stdout was not read"));
  return logger;
}

export type { Logger };
