import type { z } from "zod";
import { configSchema } from "./schema.ts";

/** The value type of a config leaf, which decides how an environment variable is parsed. */
export type LeafKind = "string" | "number" | "integer" | "boolean" | "enum" | "list";

export interface ConfigLeaf {
  /** Key path, e.g. ["embedding", "mlx", "batch_size"]. */
  path: string[];
  kind: LeafKind;
  /** Allowed values of an enum leaf. */
  values: string[];
}

type AnySchema = z.core.$ZodType;

/** Strips the wrappers that only add defaults or optionality. */
function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  for (;;) {
    const def = current._zod.def as { type: string; innerType?: AnySchema };
    if (!def.innerType || !["default", "prefault", "optional", "nullable"].includes(def.type)) return current;
    current = def.innerType;
  }
}

function shapeOf(schema: AnySchema): Record<string, AnySchema> | undefined {
  const def = unwrap(schema)._zod.def as { type: string; shape?: Record<string, AnySchema> };
  return def.type === "object" ? def.shape : undefined;
}

function leafKind(schema: AnySchema): Pick<ConfigLeaf, "kind" | "values"> {
  const def = unwrap(schema)._zod.def as { type: string; format?: string; entries?: Record<string, string> };
  switch (def.type) {
    case "number":
      return { kind: def.format?.includes("int") ? "integer" : "number", values: [] };
    case "boolean":
      return { kind: "boolean", values: [] };
    case "enum":
      return { kind: "enum", values: Object.values(def.entries ?? {}) };
    case "array":
      return { kind: "list", values: [] };
    case "union": {
      // `"auto" | integer`: a number when the value is one, else the text (for the literal).
      const options = (def as unknown as { options: AnySchema[] }).options.map(unwrap);
      const number = options.find((option) => (option._zod.def as { type: string }).type === "number");
      return number ? { kind: leafKind(number).kind, values: [] } : { kind: "string", values: [] };
    }
    default:
      return { kind: "string", values: [] };
  }
}

/**
 * Every settable leaf of the schema, depth first in declaration order. Records (`models`) are
 * not leaves: their keys are user-chosen aliases.
 */
export function configLeaves(schema: AnySchema = configSchema, prefix: string[] = []): ConfigLeaf[] {
  const shape = shapeOf(schema);
  if (!shape) return [];
  return Object.entries(shape).flatMap(([key, child]) => {
    const path = [...prefix, key];
    if (shapeOf(child)) return configLeaves(child, path);
    if ((unwrap(child)._zod.def as { type: string }).type === "record") return [];
    return [{ path, ...leafKind(child) }];
  });
}

/** The keys allowed directly under `path` (an object of the schema), or [] if there is none. */
export function childKeys(path: readonly PropertyKey[], schema: AnySchema = configSchema): string[] {
  let current: AnySchema | undefined = schema;
  for (const segment of path) {
    if (!current) return [];
    const def = unwrap(current)._zod.def as { type: string; valueType?: AnySchema };
    current = def.type === "record" ? def.valueType : shapeOf(current)?.[String(segment)];
  }
  return current ? Object.keys(shapeOf(current) ?? {}) : [];
}

/** Every key path of the schema including sections and the fields of a `models` entry (as `models.<alias>.x`). */
export function allKeyPaths(schema: AnySchema = configSchema, prefix: string[] = []): string[][] {
  const shape = shapeOf(schema);
  if (!shape) return [];
  return Object.entries(shape).flatMap(([key, child]) => {
    const path = [...prefix, key];
    const def = unwrap(child)._zod.def as { type: string; valueType?: AnySchema };
    if (def.type === "record" && def.valueType)
      return [path, ...allKeyPaths(def.valueType, [...path, "<alias>"])];
    return [path, ...allKeyPaths(child, path)];
  });
}
