// Validates real HTTP responses against openapi.yaml: the operation exists, the status is one it
// lists, the media type is the one it documents and the body matches its schema (ajv, JSON Schema
// 2020-12 as OpenAPI 3.1 uses). `watchContract` checks every response a test file's fetch gets from
// a server, so end-to-end tests validate all real traffic without changing their calls.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { parse } from "yaml";

interface Operation {
  responses: Record<string, ResponseObject | { $ref: string }>;
}
interface ResponseObject {
  content?: Record<string, { schema?: unknown }>;
}
type PathItem = Record<string, Operation>;

const CONTRACT = parse(readFileSync(path.resolve(import.meta.dirname, "../openapi.yaml"), "utf8")) as {
  paths: Record<string, PathItem>;
  components: { responses: Record<string, ResponseObject> };
};
const CONTRACT_ID = "urn:akidb:openapi";
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: CONTRACT_ID, paths: CONTRACT.paths, components: CONTRACT.components });
const validators = new Map<string, ValidateFunction>();

const pointer = (...parts: string[]) =>
  `#/${parts.map((part) => part.replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;

/** The contract path (template) a served path matches, its item, and the operation for `method`. */
function findOperation(
  servedPath: string,
  method: string,
  prefix: string,
): { template: string; operation: Operation | undefined } | undefined {
  let found: { template: string; operation: Operation | undefined } | undefined;
  for (const [template, item] of Object.entries(CONTRACT.paths)) {
    if (prefix === "" ? template.startsWith("/inference/") : !template.startsWith(`${prefix}/`)) continue;
    const served = template.slice(prefix.length);
    const pattern = new RegExp(
      `^${served.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+")}$`,
    );
    if (!pattern.test(servedPath)) continue;
    if (item[method] !== undefined) return { template, operation: item[method] };
    found = { template, operation: undefined };
  }
  return found;
}

const errorBody = ajv.compile({ $ref: `${CONTRACT_ID}#/components/schemas/ErrorResponse` });

/** A request outside the contract is answered 404 (no such path) or 405 (a method the path does not
 * take), with the contract's error body. */
function outsideViolations(what: string, expected: number, status: number, body: string): string[] {
  if (status !== expected) return [`${what}: outside the contract, expected ${expected}`];
  try {
    if (errorBody(JSON.parse(body))) return [];
  } catch {}
  return [`${what}: not the contract's error body: ${body.slice(0, 200)}`];
}

/** What is wrong with this response according to the contract; an empty list when nothing is.
 * `prefix` is "" for the control plane and "/inference" for the inference process (whose
 * operations are keyed under that prefix in the contract). */
export function contractViolations(
  method: string,
  url: string,
  status: number,
  contentType: string | null,
  body: string,
  prefix = "",
): string[] {
  const servedPath = new URL(url).pathname;
  const lower = method.toLowerCase();
  const what = `${method} ${servedPath} -> ${status}`;
  const found = findOperation(servedPath, lower, prefix);
  if (found === undefined) return outsideViolations(`${what} (no such path)`, 404, status, body);
  const { template, operation } = found;
  if (operation === undefined) return outsideViolations(`${what} (no such method)`, 405, status, body);
  const key = [String(status), `${String(status)[0]}XX`, "default"].find((k) => k in operation.responses);
  if (key === undefined)
    return [`${what}: status not listed (${Object.keys(operation.responses).join(", ")})`];
  let response = operation.responses[key]!;
  let responsePointer = pointer("paths", template, lower, "responses", key);
  if ("$ref" in response) {
    const name = response.$ref.split("/").pop()!;
    response = CONTRACT.components.responses[name]!;
    responsePointer = pointer("components", "responses", name);
  }
  const content = (response as ResponseObject).content;
  if (content === undefined) return body === "" ? [] : [`${what}: the contract documents no body`];
  const mediaType = (contentType ?? "").split(";")[0]!.trim();
  if (!(mediaType in content)) {
    return [`${what}: media type "${mediaType}" is not one of ${Object.keys(content).join(", ")}`];
  }
  if (content[mediaType]!.schema === undefined) return [];
  const schemaRef = `${CONTRACT_ID}${responsePointer}/content/${pointer(mediaType).slice(2)}/schema`;
  let validate = validators.get(schemaRef);
  if (validate === undefined) {
    validate = ajv.compile({ $ref: schemaRef });
    validators.set(schemaRef, validate);
  }
  let value: unknown = body;
  if (mediaType === "application/json") {
    try {
      value = JSON.parse(body);
    } catch {
      return [`${what}: body is not JSON: ${body.slice(0, 200)}`];
    }
  }
  if (validate(value)) return [];
  return [`${what}: ${ajv.errorsText(validate.errors)} in ${body.slice(0, 300)}`];
}

export interface ContractWatch {
  /** Responses checked so far. */
  readonly checked: number;
  /** Waits for the checks of responses received so far and returns every violation found. */
  violations(): Promise<string[]>;
  /** Puts the original fetch back. */
  stop(): void;
}

/** Wraps the global fetch so that every response from the server at `baseUrl()` (undefined until
 * the server is up) is checked against the contract; the test reads the original response, the
 * check reads a clone. Assert `await watch.violations()` is empty in afterAll. */
export function watchContract(baseUrl: () => string | undefined, prefix = ""): ContractWatch {
  const original = globalThis.fetch;
  const pending: Promise<string[]>[] = [];
  let checked = 0;
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const response = await original(input, init);
    const base = baseUrl();
    const url = input instanceof Request ? input.url : String(input);
    if (base !== undefined && url.startsWith(base)) {
      const method = init?.method ?? (input instanceof Request ? input.method : "GET");
      checked++;
      pending.push(
        response
          .clone()
          .text()
          .then(
            (body) =>
              contractViolations(
                method,
                url,
                response.status,
                response.headers.get("content-type"),
                body,
                prefix,
              ),
            // The test aborted the body: nothing complete to check.
            () => [],
          ),
      );
    }
    return response;
  };
  return {
    get checked() {
      return checked;
    },
    violations: async () => (await Promise.all(pending)).flat(),
    stop() {
      globalThis.fetch = original;
    },
  };
}
