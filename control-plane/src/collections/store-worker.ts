// The collection store's thread (started by WorkerCollectionStore): opens the local store and
// answers one message per call. Nothing here knows HTTP.
import { parentPort, workerData } from "node:worker_threads";
import { serializeError } from "../errors.ts";
import { LocalCollectionStore } from "./local-store.ts";
import type { CallMessage, ReplyMessage, StoreThreadOptions } from "./worker-store.ts";

const port = parentPort!;
const post = (message: ReplyMessage) => port.postMessage(message);

function serve(store: LocalCollectionStore): void {
  port.on("message", async ({ call, method, args }: CallMessage) => {
    try {
      const run = store[method] as (...args: unknown[]) => Promise<unknown>;
      const value = await run.apply(store, args);
      post({ call, value });
    } catch (error) {
      post({ call, error: serializeError(error) });
    }
    // The store is closed: let the thread end.
    if (method === "close") port.close();
  });
  post({ ready: true });
}

try {
  serve(
    await LocalCollectionStore.open({
      ...(workerData as StoreThreadOptions),
      logger: {
        info: (fields, message) => post({ log: { level: "info", fields, message } }),
        error: (fields, message) => post({ log: { level: "error", fields, message } }),
      },
    }),
  );
} catch (error) {
  // The thread ends once the port is closed; the opener rejects with this error.
  post({ failed: serializeError(error) });
  port.close();
}
