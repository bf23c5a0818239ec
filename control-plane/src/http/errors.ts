import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { components } from "../contract.ts";
import type { AkidbError } from "../errors.ts";

export type ErrorResponse = components["schemas"]["ErrorResponse"];

/** The OpenAI-shaped body of an error: the one place an AkidbError becomes a response body. */
export function errorBody(error: AkidbError): ErrorResponse {
  return { error: { message: error.message, type: error.type, code: error.code, param: error.param } };
}

/** The error's status as the framework types it (the registry only holds 4xx and 5xx). */
export function errorStatus(error: AkidbError): ContentfulStatusCode {
  return error.status as ContentfulStatusCode;
}
