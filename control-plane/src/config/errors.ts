/**
 * A configuration the server cannot start with. The message names the key, the bad value and
 * what is allowed; the CLI prints it and exits with code 2.
 */
export class ConfigError extends Error {
  /** Dotted key path, e.g. `embedding.mlx.batch_size`. */
  readonly key: string;

  constructor(key: string, message: string) {
    super(message);
    this.name = "ConfigError";
    this.key = key;
  }
}
