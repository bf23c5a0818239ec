// The upsert parser's thread (started by UpsertParser): parses and checks one body per message.
import { parentPort, workerData } from "node:worker_threads";
import { serializeError } from "../errors.ts";
import { parseUpsertBody, type UpsertLimits } from "./upsert-body.ts";
import type { ParsedMessage, ParseMessage } from "./upsert-parser.ts";

const port = parentPort!;
const limits = workerData as UpsertLimits;

port.on("message", ({ call, bytes, dimension }: ParseMessage) => {
  let reply: ParsedMessage;
  let transfer: ArrayBuffer[] = [];
  try {
    const documents = parseUpsertBody(bytes, dimension, limits);
    reply = { call, documents };
    const vectors = documents.find((doc) => doc.vector !== undefined)?.vector;
    if (vectors) transfer = [vectors.buffer as ArrayBuffer];
  } catch (error) {
    reply = { call, error: serializeError(error) };
  }
  port.postMessage(reply, transfer);
});
