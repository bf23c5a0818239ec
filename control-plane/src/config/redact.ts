import type { AkidbConfig } from "./schema.ts";

export const REDACTED = "<redacted>";

/** Whether a config path (`["server", "api_keys", 0]`) holds a secret, whose value is never shown. */
export function isSecretPath(path: readonly PropertyKey[]): boolean {
  return path[0] === "server" && (path[1] === "api_keys" || path[1] === "admin_token");
}

/** The config with its secrets (`server.admin_token`, `server.api_keys`) replaced, for display. */
export function redactConfig(config: AkidbConfig): AkidbConfig {
  const { admin_token, api_keys, ...server } = config.server;
  return {
    ...config,
    server: {
      ...server,
      api_keys: api_keys.map(() => REDACTED),
      ...(admin_token === undefined ? {} : { admin_token: REDACTED }),
    },
  };
}
