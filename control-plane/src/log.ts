import { type LevelWithSilent, type Logger, pino } from "pino";

/** The server's logger: JSON lines on stdout, ISO timestamps, no hostname. */
export function createLogger(level: LevelWithSilent = "info"): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

export type { Logger };
