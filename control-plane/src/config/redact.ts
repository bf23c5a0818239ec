import type { AkidbConfig } from "./schema.ts";

const REDACTED = "<redacted>";

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
