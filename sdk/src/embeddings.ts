import type { components } from "./generated/schema.d.ts";

type Schemas = components["schemas"];

/** One input's vector; `embedding` is always a Float32Array, whichever wire format was used. */
export interface Embedding {
  object: "embedding";
  index: number;
  embedding: Float32Array;
}

export interface EmbeddingResult {
  object: "list";
  data: Embedding[];
  model: string;
  usage: Schemas["Usage"];
}

/** Decodes the contract's base64 vector (little-endian float32 bytes) without Node built-ins. */
export function decodeBase64Vector(encoded: string): Float32Array {
  const binary = atob(encoded);
  if (binary.length % 4 !== 0)
    throw new Error(`a base64 vector has ${binary.length} bytes, not a multiple of 4`);
  const view = new DataView(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) view.setUint8(i, binary.charCodeAt(i));
  const vector = new Float32Array(binary.length / 4);
  for (let i = 0; i < vector.length; i++) vector[i] = view.getFloat32(i * 4, true);
  return vector;
}

/** Encodes a vector as the contract's base64 (little-endian float32 bytes) without Node built-ins. */
export function encodeBase64Vector(vector: Float32Array): string {
  const view = new DataView(new ArrayBuffer(vector.length * 4));
  for (let i = 0; i < vector.length; i++) view.setFloat32(i * 4, vector[i]!, true);
  let binary = "";
  for (let i = 0; i < view.byteLength; i++) binary += String.fromCharCode(view.getUint8(i));
  return btoa(binary);
}

/** The response with every vector as a Float32Array (base64 decoded, float arrays copied). */
export function decodeEmbeddings(response: Schemas["EmbeddingResponse"]): EmbeddingResult {
  return {
    ...response,
    object: "list",
    data: response.data.map((item) => ({
      object: "embedding",
      index: item.index,
      embedding:
        typeof item.embedding === "string"
          ? decodeBase64Vector(item.embedding)
          : Float32Array.from(item.embedding),
    })),
  };
}
